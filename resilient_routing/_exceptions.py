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
from typing import TypeVar

__all__ = [
    "AllProvidersFailedError",
    "InvalidConfigError",
    "NoProvidersError",
    "RoutingError",
    "RoutingTimeoutError",
    "SlowCallError",
    "UnpicklableFailure",
    "portable",
]


def describe(exc: BaseException) -> str:
    """Return ``str(exc)`` for messages and logs, even when the exception's ``__str__`` fails."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: str() failed>"


def bounded(text: str, limit: int) -> str:
    """Return ``text`` cut to ``limit`` characters (``...`` marks the cut)."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def error_text(exc: BaseException, limit: int = 200) -> str:
    """Return ``Type: message`` for a log line, cut to ``limit`` characters.

    Exceptions may carry request data or huge bodies: a log line gets their type and the start
    of their message, never more.
    """
    return bounded(f"{type(exc).__name__}: {describe(exc)}", limit)


class RoutingError(Exception):
    """Base class of every error raised by resilient_routing itself."""


class NoProvidersError(RoutingError, ValueError):
    """The provider list was empty when the routed call was made."""


class InvalidConfigError(RoutingError, ValueError):
    """An option, a strategy or a provider is not what resilient_routing expects."""


class UnpicklableFailure(Exception):
    """Stands for a provider's exception that could not cross processes (pickling).

    An error's ``failures`` keep it in its place when they are pickled (a
    ``ProcessPoolExecutor`` worker raising ``AllProvidersFailedError``): some clients'
    exceptions (httpx, openai) cannot be rebuilt from their pickle. Its message is the
    original's type and (bounded) message; ``type_name`` the original's qualified type.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.type_name, self.message), self.__dict__)


class AllProvidersFailedError(RoutingError):
    """Every provider that was attempted failed.

    Its message tells what happened: ``all N providers failed (last error: ...)`` when every
    provider of the list was attempted, else how many failed, were skipped while cooling down
    and were not attempted (``max_attempts``), e.g. ``2 of 4 providers failed, 2 not attempted
    (max_attempts=2) (last error: ...)``.

    Attributes:
        failures: ``(provider name, exception)`` for each failed attempt, in order.
        total: the number of providers in the list (attempted or not).
        retry_after: seconds until the first provider of the list leaves its cooldown (skipped
            ones included), or None when none is cooling down. ``wait_for_recovery()`` waits
            exactly that long.
        skipped: the names of the providers skipped because they were cooling down.
        not_attempted: how many providers of the list were neither attempted nor skipped
            (left out by ``max_attempts``, or by a strategy that did not choose them).
        max_attempts: the cap of the call, if it had one.
    """

    failures: tuple[tuple[str, Exception], ...]
    total: int
    retry_after: float | None
    skipped: tuple[str, ...]
    not_attempted: int
    max_attempts: int | None

    def __init__(
        self,
        failures: Sequence[tuple[str, Exception]],
        total: int,
        retry_after: float | None = None,
        skipped: Sequence[str] = (),
        max_attempts: int | None = None,
    ) -> None:
        self.failures = tuple(failures)
        self.total = total
        self.retry_after = retry_after
        self.skipped = tuple(skipped)
        self.not_attempted = max(total - len(self.failures) - len(self.skipped), 0)
        self.max_attempts = max_attempts
        if self.failures:
            last = self.failures[-1][1]
            if isinstance(last, UnpicklableFailure):  # the same message, after a pickle
                detail = f"{last.type_name.rpartition('.')[2]}: {last.message}"
            else:
                detail = f"{type(last).__name__}: {describe(last)}"
        else:
            detail = "none"
        failed = len(self.failures)
        if failed == total:
            summary = f"all {total} providers failed"
        else:
            summary = f"{failed} of {total} providers failed"
            if self.skipped:
                summary += f", {len(self.skipped)} skipped in cooldown"
            if self.not_attempted:
                cap = "" if max_attempts is None else f" (max_attempts={max_attempts})"
                summary += f", {self.not_attempted} not attempted{cap}"
        super().__init__(f"{summary} (last error: {detail})")

    def __reduce__(self) -> tuple[object, ...]:
        failures = portable(self.failures)
        args = (failures, self.total, self.retry_after, self.skipped, self.max_attempts)
        return (type(self), args, {**self.__dict__, "failures": failures})

    def __copy__(self) -> AllProvidersFailedError:
        args = (self.failures, self.total, self.retry_after, self.skipped, self.max_attempts)
        return _copied(self, args)


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

    def __reduce__(self) -> tuple[object, ...]:
        failures = portable(self.failures)
        return (type(self), (self.timeout, failures), {**self.__dict__, "failures": failures})

    def __copy__(self) -> RoutingTimeoutError:
        return _copied(self, (self.timeout, self.failures))


class SlowCallError(RoutingError):
    """What a call slower than ``slow_call=`` is recorded as (its response still returned).

    A provider degraded to minutes per call cools down like one that errors. The tracker
    receives it as the failure (``cooldown_on`` judges it); the caller never sees it raised.

    Attributes:
        provider: the provider that answered slowly.
        latency: the seconds its call took (for a stream: its time to first item).
        limit: the route's ``slow_call``.
    """

    provider: str
    latency: float
    limit: float

    def __init__(self, provider: str, latency: float, limit: float) -> None:
        self.provider = provider
        self.latency = latency
        self.limit = limit
        super().__init__(
            f"provider {provider!r} answered in {latency:.3g} s, slower than slow_call={limit:g} s"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.provider, self.latency, self.limit), self.__dict__)


_E = TypeVar("_E", bound=BaseException)


def _copied(error: _E, args: tuple[object, ...]) -> _E:
    """A shallow copy of ``error``, its failures as they are (pickling makes them portable)."""
    made = type(error)(*args)
    made.__dict__.update(error.__dict__)
    return made


def portable(failures: tuple[tuple[str, Exception], ...]) -> tuple[tuple[str, Exception], ...]:
    """Return ``failures`` with each exception that does not survive pickling replaced.

    Called only as an error is pickled: each exception is pickled and rebuilt once to know.
    """
    import pickle  # here: only an error being pickled needs it (it costs import time)

    kept: list[tuple[str, Exception]] = []
    for name, exc in failures:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            kind = type(exc)
            text = bounded(describe(exc), 500)
            exc = UnpicklableFailure(f"{kind.__module__}.{kind.__qualname__}", text)
        kept.append((name, exc))
    return tuple(kept)
