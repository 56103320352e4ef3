"""Waiting for a provider to recover, as a tenacity wait strategy."""

from __future__ import annotations

import math

import tenacity
from tenacity.wait import wait_base

from ._exceptions import AllProvidersFailedError, InvalidConfigError

__all__ = ["wait_for_recovery"]


class wait_for_recovery(wait_base):
    """A tenacity wait: sleep until the first provider leaves its cooldown.

    Put ``@retry(wait=wait_for_recovery(), stop=...)`` above ``@routed``: when a call fails
    with :class:`AllProvidersFailedError` whose ``retry_after`` is known, the retry waits
    exactly that long instead of hammering providers that are cooling down.

    Args:
        fallback: the wait used when the failure says nothing about recovery (another error,
            or no provider cooling down). Default: no wait.
        max: never wait longer than this many seconds.
    """

    def __init__(self, *, fallback: wait_base | None = None, max: float = math.inf) -> None:
        if isinstance(max, bool) or not isinstance(max, (int, float)) or not max >= 0:
            raise InvalidConfigError(f"max must be a number of seconds >= 0, got {max!r}")
        if fallback is not None and not callable(fallback):
            raise InvalidConfigError(
                f"fallback must be a tenacity wait such as wait_fixed(5), got {fallback!r}"
            )
        self.fallback = fallback or tenacity.wait_none()
        self.max = float(max)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        """Return the seconds to wait before the next attempt."""
        outcome = retry_state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            if isinstance(exc, AllProvidersFailedError) and exc.retry_after is not None:
                return min(exc.retry_after, self.max)
        return min(float(self.fallback(retry_state)), self.max)
