"""Exceptions raised by resilient_routing.

The hierarchy::

    Exception
    └── RoutingError
        ├── NoProvidersError          (also a ValueError)
        ├── InvalidConfigError        (also a ValueError)
        └── AllProvidersFailedError

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
]


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
    """

    failures: tuple[tuple[str, Exception], ...]
    total: int

    def __init__(self, failures: Sequence[tuple[str, Exception]], total: int) -> None:
        self.failures = tuple(failures)
        self.total = total
        if self.failures:
            last = self.failures[-1][1]
            detail = f"{type(last).__name__}: {last}"
        else:
            detail = "none"
        super().__init__(f"all {total} providers failed (last error: {detail})")

    def __reduce__(self) -> tuple[type[AllProvidersFailedError], tuple[object, ...]]:
        return (type(self), (self.failures, self.total))
