"""The routing core: the rules live once here, the sync and async runners call providers.

``Route`` holds what is resolved when a routed function is decorated (strategy, providers,
classification). ``_Call`` is the decision state of one call: which provider comes next,
what a skip, a success or a failure means, what to log, what to return or raise. The two
runners only do the I/O (call the provider, ask the tracker) and read alike.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from time import perf_counter
from typing import Any, Literal, TypeVar

import tenacity

from . import _config
from ._config import UNSET, AnyTracker, Unset
from ._exceptions import AllProvidersFailedError, InvalidConfigError
from ._providers import read_providers, snapshot_providers
from ._registry import get_strategy
from ._result import RouteResult
from ._strategies import Strategy
from ._tracker import AsyncCooldownTracker, CooldownTracker

__all__ = ["FallbackOn", "Route", "judged"]

T = TypeVar("T")

#: What ``fallback_on=`` accepts.
FallbackOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[Exception], bool]

_DEBUG = logging.DEBUG
_INFO = logging.INFO
_WARNING = logging.WARNING


def judged(exc: Exception) -> Exception:
    """Return the exception a failure is judged by: a tenacity.RetryError's last one."""
    if isinstance(exc, tenacity.RetryError):
        last = exc.last_attempt
        if last.failed:
            inner = last.exception()
            if isinstance(inner, Exception):
                return inner
    return exc


def _predicate(fallback_on: object) -> Callable[[Exception], bool]:
    if isinstance(fallback_on, type) and issubclass(fallback_on, BaseException):
        cls = fallback_on
        return lambda exc: isinstance(exc, cls)
    if isinstance(fallback_on, tuple):
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in fallback_on):
            raise InvalidConfigError(
                f"fallback_on tuple must hold exception types only, got {fallback_on!r}"
            )
        types = fallback_on
        return lambda exc: isinstance(exc, types)
    if callable(fallback_on) and not isinstance(fallback_on, type):
        return fallback_on
    raise InvalidConfigError(
        "fallback_on must be an exception type, a tuple of them or a predicate "
        f"exc -> bool, got {fallback_on!r}"
    )


class _AsyncAdapter:
    """Lets the async runner await an in-process (non-blocking) sync tracker."""

    __slots__ = ("_t",)

    def __init__(self, tracker: CooldownTracker) -> None:
        self._t = tracker

    async def is_available(self, name: str) -> bool:
        return self._t.is_available(name)

    async def cooldown_remaining(self, name: str) -> float:
        return self._t.cooldown_remaining(name)

    async def record_failure(self, name: str, exc: BaseException) -> bool:
        return self._t.record_failure(name, exc)

    async def record_success(self, name: str) -> None:
        self._t.record_success(name)


def _is_async_tracker(tracker: object) -> bool:
    return inspect.iscoroutinefunction(getattr(tracker, "is_available", None))


def _tracker_for(tracker: AnyTracker, is_async: bool, origin: str) -> Any:
    """Return ``tracker`` in the form the runner awaits or calls, or refuse it."""
    if _is_async_tracker(tracker):
        if not is_async:
            raise InvalidConfigError(
                f"{origin} {type(tracker).__name__} is an async tracker, but the routed function "
                "is sync: give it a sync CooldownTracker (InMemoryCooldownTracker, "
                "RedisCooldownTracker)"
            )
        return tracker
    if not is_async:
        return tracker
    if getattr(tracker, "blocking_io", False):
        raise InvalidConfigError(
            f"{origin} {type(tracker).__name__} blocks on I/O and would stall the event loop of "
            "an async routed function: use AsyncRedisCooldownTracker (or another "
            "AsyncCooldownTracker) there"
        )
    return _AsyncAdapter(tracker)  # type: ignore[arg-type]


class Route:
    """Everything about a routed function that is resolved once, at decoration time."""

    __slots__ = (
        "_cached",
        "cooldown",
        "exempt",
        "failure_level",
        "failure_message",
        "fallback_on",
        "is_async",
        "logger",
        "providers",
        "single_attempt",
        "strategy",
        "uses_cooldown",
    )

    def __init__(
        self,
        *,
        providers: object,
        strategy: str | Strategy,
        cooldown: AnyTracker | Unset | None,
        exempt: Iterable[str] | None,
        fallback_on: FallbackOn,
        logger: logging.Logger | None,
        is_async: bool,
    ) -> None:
        if isinstance(strategy, str):
            strategy = get_strategy(strategy)
        elif not callable(getattr(strategy, "order", None)):
            raise InvalidConfigError(
                f"strategy must be a registered strategy name or an object with an "
                f"order(providers) method, got {strategy!r}"
            )
        self.strategy: Strategy = strategy
        self.single_attempt = bool(getattr(strategy, "single_attempt", False))
        self.uses_cooldown = bool(getattr(strategy, "uses_cooldown", True))
        self.failure_message = str(getattr(strategy, "failure_message", "provider failed"))
        self.failure_level = int(getattr(strategy, "failure_level", _WARNING))
        self.providers = snapshot_providers(providers)
        self.is_async = is_async
        if cooldown is not UNSET:
            cooldown = _config.check_tracker(cooldown, "cooldown=")
            if cooldown is not None:
                _tracker_for(cooldown, is_async, "cooldown=")
        self.cooldown = cooldown
        self.exempt = None if exempt is None else _config.check_names(exempt, "exempt=")
        self.fallback_on = _predicate(fallback_on)
        self.logger = None if logger is None else _config.check_logger(logger, "logger=")
        self._cached: tuple[object, Any] = (None, None)

    def tracker(self) -> Any:
        """Return the tracker of this call in runner form, or None when not tracking."""
        if not self.uses_cooldown:
            return None
        tracker = self.cooldown
        if tracker is UNSET:
            tracker = _config.current().cooldown
        if tracker is None:
            return None
        seen, ready = self._cached
        if seen is not tracker:
            # Validated once per tracker object, not per call: the global one may change.
            ready = _tracker_for(tracker, self.is_async, "the global cooldown tracker")
            self._cached = (tracker, ready)
        return ready


class _Call:
    """The decision state of one routed call."""

    __slots__ = (
        "attempt",
        "exempt",
        "failures",
        "logger",
        "n",
        "names",
        "providers",
        "route",
        "skipped",
    )

    def __init__(self, route: Route) -> None:
        self.route = route
        self.providers, self.names = read_providers(route.providers)
        self.n = len(self.providers)
        self.logger = route.logger or _config._current.logger
        self.attempt = 0
        self.failures: list[tuple[str, Exception]] = []
        self.skipped: list[str] = []
        self.exempt: frozenset[str] | None = None

    def plan(self) -> Iterable[int]:
        """Return the indices to consider, each once, the terminus last (lazily: the happy
        path must not pay for providers it never reaches)."""
        route = self.route
        n = self.n
        order = route.strategy.order(self.providers)
        if route.single_attempt:
            for i in order:
                return (self._checked(i),)
            raise InvalidConfigError(f"strategy {route.strategy!r} chose no provider")
        if type(order) is range and order.start == 0 and order.step == 1 and order.stop == n:
            # Already every index once, in order, ending on the terminus.
            return order
        return self._deduplicated(order)

    def _checked(self, i: object) -> int:
        if type(i) is not int or not 0 <= i < self.n:
            raise InvalidConfigError(
                f"strategy {self.route.strategy!r} chose index {i!r}, "
                f"outside the {self.n} providers of this call"
            )
        return i

    def _deduplicated(self, order: Iterable[int]) -> Iterator[int]:
        terminus = self.n - 1
        seen: set[int] = set()
        for i in order:
            if self._checked(i) != terminus and i not in seen:
                seen.add(i)
                yield i
        yield terminus

    def is_terminus(self, i: int) -> bool:
        return i == self.n - 1 and not self.route.single_attempt

    def _log(self, level: int, message: str, i: int, **fields: object) -> None:
        logger = self.logger
        if logger.isEnabledFor(level):
            fields["provider"] = self.names[i]
            fields["is_terminus"] = self.is_terminus(i)
            logger.log(level, message, extra=fields)

    def admit_cooling(self, i: int, remaining: float) -> bool:
        """A provider is cooling down: return whether to call it anyway (the terminus)."""
        if self.is_terminus(i):
            self._log(
                _INFO,
                "attempting terminus provider despite cooldown",
                i,
                cooldown_remaining=remaining,
                attempt=self.attempt + 1,
            )
            return True
        self.skipped.append(self.names[i])
        self._log(_DEBUG, "skipping provider in cooldown", i, cooldown_remaining=remaining)
        return False

    def starting(self, i: int) -> None:
        self.attempt += 1
        if self.logger.isEnabledFor(_DEBUG):
            self._log(_DEBUG, "attempting provider", i, attempt=self.attempt)

    def classify(self, i: int, exc: Exception) -> Exception | None:
        """Return the exception to record, or None when it must propagate at once."""
        judged_exc = judged(exc)
        if not self.route.fallback_on(judged_exc):
            return None
        return judged_exc

    def records(self, i: int) -> bool:
        """Whether a failure of provider ``i`` is recorded (it is not exempt)."""
        exempt = self.exempt
        if exempt is None:
            exempt = self.route.exempt
            if exempt is None:
                exempt = _config.current().exempt_providers
            self.exempt = exempt
        return self.names[i] not in exempt

    def cooling_started(self, i: int, remaining: float) -> None:
        self._log(
            _WARNING,
            "provider entering cooldown",
            i,
            attempt=self.attempt,
            cooldown_remaining=remaining,
        )

    def failed(self, i: int, raised: Exception, exc: Exception) -> bool:
        """Log a failed attempt; return True when the runner must re-raise it as it is.

        ``raised`` is what the provider raised, ``exc`` what it is judged by (they differ for
        a tenacity.RetryError): a single-attempt strategy re-raises the former.
        """
        route = self.route
        name = self.names[i]
        self._log(
            route.failure_level,
            route.failure_message,
            i,
            attempt=self.attempt,
            error_type=type(exc).__name__,
            error=str(exc),
        )
        if route.single_attempt:
            note = f"resilient_routing: raised by provider {name!r}"
            if note not in getattr(raised, "__notes__", ()):
                raised.add_note(note)
            return True
        self.failures.append((name, exc))
        return False

    def succeeded(
        self, i: int, response: T, latency: float, want_result: bool
    ) -> T | RouteResult[T]:
        if self.failures:
            self._log(
                _INFO, "succeeded on fallback provider", i, attempt=self.attempt, latency=latency
            )
        if not want_result:
            return response
        return RouteResult(
            response=response,
            provider=self.names[i],
            latency=latency,
            attempt=self.attempt,
            was_terminus=self.is_terminus(i),
            failures=tuple(self.failures),
            skipped=tuple(self.skipped),
        )

    def exhausted(self) -> AllProvidersFailedError:
        error = AllProvidersFailedError(self.failures, self.n)
        error.__cause__ = self.failures[-1][1] if self.failures else None
        error.__suppress_context__ = True
        return error


def run_sync(
    route: Route,
    fn: Callable[..., T],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
) -> Any:
    """Route one sync call; return the response, or a RouteResult when ``want_result``."""
    call = _Call(route)
    tracker: CooldownTracker | None = route.tracker()
    names = call.names
    for i in call.plan():
        name = names[i]
        if (
            tracker is not None
            and not tracker.is_available(name)
            and not call.admit_cooling(i, tracker.cooldown_remaining(name))
        ):
            continue
        call.starting(i)
        start = perf_counter()
        try:
            response = fn(call.providers[i], *args, **kwargs)
        except Exception as raised:
            exc = call.classify(i, raised)
            if exc is None:
                raise
            single = call.failed(i, raised, exc)
            if tracker is not None and call.records(i) and tracker.record_failure(name, exc):
                call.cooling_started(i, tracker.cooldown_remaining(name))
            if single:
                raise
            continue
        latency = perf_counter() - start
        if tracker is not None:
            tracker.record_success(name)
        return call.succeeded(i, response, latency, want_result)
    raise call.exhausted()


async def run_async(
    route: Route,
    fn: Callable[..., Awaitable[T]],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
) -> Any:
    """Route one async call; return the response, or a RouteResult when ``want_result``."""
    call = _Call(route)
    tracker: AsyncCooldownTracker | None = route.tracker()
    names = call.names
    for i in call.plan():
        name = names[i]
        if (
            tracker is not None
            and not await tracker.is_available(name)
            and not call.admit_cooling(i, await tracker.cooldown_remaining(name))
        ):
            continue
        call.starting(i)
        start = perf_counter()
        try:
            response = await fn(call.providers[i], *args, **kwargs)
        except Exception as raised:
            exc = call.classify(i, raised)
            if exc is None:
                raise
            single = call.failed(i, raised, exc)
            if tracker is not None and call.records(i) and await tracker.record_failure(name, exc):
                call.cooling_started(i, await tracker.cooldown_remaining(name))
            if single:
                raise
            continue
        latency = perf_counter() - start
        if tracker is not None:
            await tracker.record_success(name)
        return call.succeeded(i, response, latency, want_result)
    raise call.exhausted()


def execute(
    providers: object,
    fn: Callable[[Any], T],
    *,
    strategy: str | Strategy = "fallback",
    cooldown: AnyTracker | Literal[Unset.UNSET] | None = UNSET,
    exempt: Iterable[str] | None = None,
    fallback_on: FallbackOn = Exception,
    logger: logging.Logger | None = None,
) -> RouteResult[T]:
    """Call ``fn(provider)`` across ``providers`` with ``strategy``; return a RouteResult.

    The functional form of :func:`routed`, with the same options and rules.

    Raises:
        NoProvidersError: the provider list is empty.
        InvalidConfigError: an option is invalid.
        AllProvidersFailedError: every provider attempted by a multi-attempt strategy failed.
    """
    route = Route(
        providers=providers,
        strategy=strategy,
        cooldown=cooldown,
        exempt=exempt,
        fallback_on=fallback_on,
        logger=logger,
        is_async=False,
    )
    result: RouteResult[T] = run_sync(route, fn, (), {}, True)
    return result


async def execute_async(
    providers: object,
    fn: Callable[[Any], Awaitable[T]],
    *,
    strategy: str | Strategy = "fallback",
    cooldown: AnyTracker | Literal[Unset.UNSET] | None = UNSET,
    exempt: Iterable[str] | None = None,
    fallback_on: FallbackOn = Exception,
    logger: logging.Logger | None = None,
) -> RouteResult[T]:
    """Await ``fn(provider)`` across ``providers`` with ``strategy``; return a RouteResult.

    The async functional form of :func:`routed`; see :func:`execute`.
    """
    route = Route(
        providers=providers,
        strategy=strategy,
        cooldown=cooldown,
        exempt=exempt,
        fallback_on=fallback_on,
        logger=logger,
        is_async=True,
    )
    result: RouteResult[T] = await run_async(route, fn, (), {}, True)
    return result
