"""Exceptions raised by resilient_routing.

The hierarchy::

    Exception
    └── RoutingError
        ├── NoProvidersError          (also a ValueError)
        ├── InvalidConfigError        (also a ValueError)
        ├── AllProvidersFailedError
        └── RoutingTimeoutError       (also a TimeoutError)

Exceptions raised by providers themselves are never wrapped by single-attempt strategies:
they propagate unchanged, with a note naming the provider.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AllProvidersFailedError",
    "InvalidConfigError",
    "NoProvidersError",
    "RoutingError",
    "RoutingTimeoutError",
]


def describe(exc: BaseException) -> str:
    """Return ``str(exc)`` for messages and logs, even when the exception's ``__str__`` fails."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"


def error_text(exc: BaseException, limit: int = 200) -> str:
    """Return ``Type: message`` for a log line, cut to ``limit`` characters.

    Exceptions may carry request data or huge bodies: a log line gets their type and the start
    of their message, never more.
    """
    text = f"{type(exc).__name__}: {describe(exc)}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RoutingError(Exception):
    """Base class of every error raised by resilient_routing itself."""


class NoProvidersError(RoutingError, ValueError):
    """The provider list was empty when the routed call was made."""


class InvalidConfigError(RoutingError, ValueError):
    """An option, a strategy or a provider is not what resilient_routing expects."""


class AllProvidersFailedError(RoutingError):
    """Every provider that was attempted failed.

    Attributes:
        failures: ``(provider name, exception)`` for each failed attempt, in order.
        total: the number of providers in the list (attempted or skipped).
        retry_after: seconds until the first provider of the list leaves its cooldown (skipped
            ones included), or None when none is cooling down. ``wait_for_recovery()`` waits
            exactly that long.
    """

    failures: tuple[tuple[str, Exception], ...]
    total: int
    retry_after: float | None

    def __init__(
        self,
        failures: Sequence[tuple[str, Exception]],
        total: int,
        retry_after: float | None = None,
    ) -> None:
        self.failures = tuple(failures)
        self.total = total
        self.retry_after = retry_after
        if self.failures:
            last = self.failures[-1][1]
            detail = f"{type(last).__name__}: {describe(last)}"
        else:
            detail = "none"
        super().__init__(f"all {total} providers failed (last error: {detail})")

    def __reduce__(self) -> tuple[type[AllProvidersFailedError], tuple[object, ...]]:
        return (type(self), (self.failures, self.total, self.retry_after))


class RoutingTimeoutError(RoutingError, TimeoutError):
    """The routed call ran out of its ``timeout=`` before a provider succeeded.

    Attributes:
        timeout: the seconds the whole call was given.
        failures: ``(provider name, exception)`` for each attempt that failed before.
    """

    timeout: float
    failures: tuple[tuple[str, Exception], ...]

    def __init__(self, timeout: float, failures: Sequence[tuple[str, Exception]] = ()) -> None:
        self.timeout = timeout
        self.failures = tuple(failures)
        super().__init__(
            f"routing timed out after {timeout:g} s ({len(self.failures)} failed attempts)"
        )

    def __reduce__(self) -> tuple[type[RoutingTimeoutError], tuple[object, ...]]:
        return (type(self), (self.timeout, self.failures))
