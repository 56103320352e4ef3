"""When a provider's failures start a cooldown, and for how long: shared by every tracker."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import tenacity
from tenacity.wait import wait_base

from resilient_routing._exceptions import InvalidConfigError

from ._retry_after import retry_after_seconds

__all__ = ["CooldownPolicy"]

#: Consecutive cooldowns after which the schedule stops growing on its own.
_MAX_LEVELS = 32


def is_count(value: object) -> bool:
    """Return whether ``value`` is an int >= 1 (and not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_number(
    name: str, value: object, *, allow_zero: bool = True, unit: str = " of seconds"
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidConfigError(f"{name} must be a finite number{unit}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidConfigError(f"{name} must be {bound}, got {value!r}")
    return float(value)


class CooldownPolicy:
    """The rules every tracker applies; the trackers differ only in where they keep state.

    Args:
        failure_threshold: consecutive failures that start a cooldown (>= 1).
        cooldown: seconds of the first cooldown.
        max_cooldown: no cooldown lasts longer, whatever the growth or a server's Retry-After.
        growth: each consecutive cooldown (the provider reached the threshold again without a
            success since its previous cooldown) lasts ``growth`` times longer (>= 1).
        backoff: a tenacity wait strategy giving the length of the N-th consecutive cooldown
            as its ``attempt_number``; replaces ``cooldown`` and ``growth`` when given
            (``tenacity.wait_random_exponential`` for jitter, say).
        wall_clock: Unix time, to read an HTTP-date ``Retry-After``.
    """

    __slots__ = (
        "_fixed",
        "backoff",
        "cooldown",
        "failure_threshold",
        "growth",
        "max_cooldown",
        "wall_clock",
    )

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        max_cooldown: float = 300.0,
        growth: float = 2.0,
        backoff: wait_base | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not is_count(failure_threshold):
            raise InvalidConfigError(
                f"failure_threshold must be an int >= 1, got {failure_threshold!r}"
            )
        self.failure_threshold = failure_threshold
        self.cooldown = _positive_number("cooldown", cooldown, allow_zero=False)
        self.max_cooldown = _positive_number("max_cooldown", max_cooldown)
        if self.max_cooldown < self.cooldown:
            raise InvalidConfigError(
                f"max_cooldown ({max_cooldown!r}) must be >= cooldown ({cooldown!r})"
            )
        self.growth = _positive_number("growth", growth, unit=" (a factor)")
        if self.growth < 1:
            raise InvalidConfigError(f"growth must be >= 1, got {growth!r}")
        if backoff is not None and not callable(backoff):
            raise InvalidConfigError(
                f"backoff must be a tenacity wait strategy (callable), got {backoff!r}"
            )
        self.backoff: wait_base = backoff or tenacity.wait_exponential(
            multiplier=self.cooldown, exp_base=self.growth, max=self.max_cooldown
        )
        if not callable(wall_clock):
            raise InvalidConfigError(
                f"wall_clock must be a callable returning Unix time, got {wall_clock!r}"
            )
        self.wall_clock = wall_clock
        # The default schedule is deterministic: compute it once. A user's backoff may draw
        # random jitter, so it is asked every time.
        self._fixed: tuple[float, ...] | None = None
        if backoff is None:
            self._fixed = self.schedule()

    def cooldown_for(self, level: int) -> float:
        """Return the seconds of the ``level``-th consecutive cooldown (1-based), capped."""
        fixed = self._fixed
        if fixed is not None:
            return fixed[min(max(level, 1), len(fixed)) - 1]
        return self._ask_backoff(level)

    def _ask_backoff(self, level: int) -> float:
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = max(1, level)
        return max(0.0, min(float(self.backoff(state)), self.max_cooldown))

    def schedule(self) -> tuple[float, ...]:
        """Return the cooldown lengths for levels 1, 2, ...; the last one repeats from there.

        Backends that compute cooldowns server-side (Redis) take this table.
        """
        lengths: list[float] = []
        for level in range(1, _MAX_LEVELS + 1):
            lengths.append(self._ask_backoff(level))
            if lengths[-1] >= self.max_cooldown:
                break
        return tuple(lengths)

    def hinted(self, exc: BaseException) -> float | None:
        """Return the cooldown a server asked for through Retry-After, capped, if any."""
        seconds = retry_after_seconds(exc, self.wall_clock)
        return None if seconds is None else min(seconds, self.max_cooldown)
