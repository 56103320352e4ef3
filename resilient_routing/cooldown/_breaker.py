"""A breaker of a tracker's own: after an error of its backend, stop asking it for a while."""

from __future__ import annotations

import logging
import threading
import time
from typing import Literal

from resilient_routing._exceptions import error_text

__all__ = ["Breaker", "Proof"]

#: What an answer proves: ``"ping"``, the server is reachable; ``"read"``, it runs scripts;
#: ``"write"``, it runs scripts that write (memory, replica role and permissions allow it).
Proof = Literal["ping", "read", "write"]


class Breaker:
    """After a Redis error, stop asking Redis for ``interval`` seconds; log each transition once.

    When the interval is over, ONE request is let through as a probe (the others keep failing
    open until it answers), so a hung server costs one client timeout per interval. What
    closes the breaker depends on what opened it: after the server could not be reached, any
    answer does; after it refused a request while reachable (out of memory, a read-only
    replica, a permission), only a write that succeeds does, so reads and pings neither close
    it nor use up the probe.

    The WARNING that tells the loss is logged before any caller can see the breaker open, and
    the INFO that tells the recovery before any caller can see it closed.

    Args:
        interval: seconds to fail open after an error, between probes.
        logger: where the loss and the recovery are told.
        label: names the tracker in the log lines.
        unreachable: the errors that mean the server could not be reached at all.
    """

    __slots__ = (
        "_down_since",
        "_lock",
        "_reopen_at",
        "_up_since",
        "down",
        "interval",
        "label",
        "logger",
        "needs_write",
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
        #: The server refused a request while reachable: only a write proves it recovered.
        self.needs_write = False
        self._down_since = 0.0
        self._reopen_at = 0.0
        #: When the request that proved the last recovery was sent.
        self._up_since = 0.0
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def allow(self, writes: bool = True) -> bool:
        """Return whether a request (one that ``writes``, or only reads) may ask Redis now."""
        if not self.down:
            return True
        if self.needs_write and not writes:
            return False  # it could not prove the recovery: leave the probe to a write
        now = time.monotonic()
        with self._lock:
            if now < self._reopen_at:
                return False
            self._reopen_at = now + self.interval
            return True

    def wait_time(self) -> float:
        """Return the seconds before the next probe is allowed."""
        return max(0.0, self._reopen_at - time.monotonic()) if self.down else 0.0

    def failed(self, exc: BaseException, since: float | None = None) -> bool:
        """Redis did not answer a request sent at ``since``: fail open for ``interval`` seconds.

        A request sent before the last recovery was proved is old news (a client timeout
        longer than ``interval`` outlasts the probe that closed the breaker): its failure
        leaves the breaker closed.

        Args:
            exc: what the request raised.
            since: when it was sent (``time.monotonic()``); None: no request's, a connection
                that broke (a subscription), which always counts.

        Returns:
            Whether this failure opened the breaker (the tracker then drops the idle
            connections of its pool, which the same fault most likely broke too).
        """
        now = time.monotonic()
        with self._lock:
            if not self.down and since is not None and since < self._up_since:
                return False
            self._reopen_at = now + self.interval
            self.needs_write = not isinstance(exc, self.unreachable)
            if self.down:
                return False
            self.logger.warning(
                "%s lost Redis (%s): providers count as available and failures are not "
                "recorded until it answers again (next attempt in %g s)",
                self.label,
                error_text(exc),
                self.interval,
                extra={"error_type": type(exc).__name__, "redis_tracker": self.label},
            )
            self._down_since = now
            self.down = True
            return True

    def succeeded(self, since: float, proof: Proof) -> None:
        """Redis answered a request sent at ``since`` (``time.monotonic()``).

        Args:
            since: when the request was sent.
            proof: what the answer proves (see :data:`Proof`).
        """
        if not self.down:
            return
        with self._lock:
            # An answer to a request sent before the outage was noticed proves nothing.
            if not self.down or since < self._down_since:
                return
            if self.needs_write and proof != "write":
                return
            self.logger.info(
                "%s reached Redis again: tracking cooldowns again",
                self.label,
                extra={"redis_tracker": self.label},
            )
            self._up_since = since
            self.down = False
