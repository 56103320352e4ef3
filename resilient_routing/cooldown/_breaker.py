"""A breaker of a tracker's own: after an error of its backend, stop asking it for a while."""

from __future__ import annotations

import logging
import threading
import time

from resilient_routing._exceptions import error_text

__all__ = ["Breaker"]


class Breaker:
    """After a Redis error, stop asking Redis for ``interval`` seconds; log each transition once.

    When the interval is over, ONE caller is let through as a probe (the others keep failing
    open until it answers), so a hung server costs one client timeout per interval.

    Args:
        interval: seconds to fail open after an error, between probes.
        logger: where the loss and the recovery are told.
        label: names the tracker in the log lines.
        unreachable: the errors that mean the server could not be reached at all (after
            others, only a request's success, not a bare ping, proves recovery).
    """

    __slots__ = (
        "_down_since",
        "_lock",
        "_reopen_at",
        "_unreachable",
        "down",
        "interval",
        "label",
        "logger",
        "unreachable",
    )

    def __init__(
        self,
        interval: float,
        logger: logging.Logger,
        label: str,
        unreachable: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError),
    ) -> None:
        self.unreachable = unreachable
        self.interval = interval
        self.logger = logger
        self.label = label
        self.down = False
        self._down_since = 0.0
        self._reopen_at = 0.0
        self._unreachable = False
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Return whether to ask Redis now."""
        if not self.down:
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._reopen_at:
                return False
            self._reopen_at = now + self.interval
            return True

    def wait_time(self) -> float:
        """Return the seconds before the next probe is allowed."""
        return max(0.0, self._reopen_at - time.monotonic()) if self.down else 0.0

    def failed(self, exc: BaseException) -> None:
        """Redis did not answer: fail open for ``interval`` seconds."""
        now = time.monotonic()
        with self._lock:
            self._reopen_at = now + self.interval
            # A server that answers PING may still refuse scripts (out of memory, a read-only
            # replica, no channel permission): then only a script's success proves recovery.
            self._unreachable = isinstance(exc, self.unreachable)
            if self.down:
                return
            self.down = True
            self._down_since = now
        self.logger.warning(
            "%s lost Redis (%s): providers count as available and failures are not recorded "
            "until it answers again (next attempt in %g s)",
            self.label,
            error_text(exc),
            self.interval,
            extra={"error_type": type(exc).__name__, "redis_tracker": self.label},
        )

    def succeeded(self, since: float, *, ping: bool = False) -> None:
        """Redis answered a request sent at ``since`` (time.monotonic()).

        Args:
            since: when the request was sent.
            ping: it was only a PING, which proves the server reachable, not usable.
        """
        if not self.down:
            return
        with self._lock:
            # An answer to a request sent before the outage was noticed proves nothing.
            if not self.down or since < self._down_since or (ping and not self._unreachable):
                return
            self.down = False
        self.logger.info(
            "%s reached Redis again: tracking cooldowns again",
            self.label,
            extra={"redis_tracker": self.label},
        )
