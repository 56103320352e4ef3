"""The runners: they call providers and trackers; the rules they apply live in ``_call``.

A route's runner is made once (``runner``), from what is fixed for the route. The sync and
async runners read alike line for line; hedged strategies (which run several attempts at
once) have their own pair in ``_hedge``.

The quick path: most calls end with the first provider answering, or the next one after a
failure. For routes that allow it (static providers, no deadline, cap, hooks, hedging or
listeners), the runner serves such calls without building the per-call ``Call`` state,
applying the same rules (``falls_over``, ``counts``); at the first thing out of the ordinary
it hands over to the general loop, with what it already did, and the ``Call`` decides as
always.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from types import MethodType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import _config
from ._call import (
    Call,
    Won,
    _last,
    _last_here,
    counts,
    falls_over,
    judged,
    quick_result,
    running_loop,
)
from ._config import UNSET, AnyTracker, Unset
from ._exceptions import InvalidConfigError
from ._hedge import run_hedged_async, run_hedged_sync
from ._route import UNTRACKED, ExceptionFilter, Route
from ._steps import admit_async, admit_sync, cancelled_check, fail_async, fail_sync
from .strategies._basic import Strategy

if TYPE_CHECKING:
    from ._result import RouteResult
    from .events import Listener

__all__ = ["Runner", "execute", "execute_async", "run_async", "run_sync", "runner"]

T = TypeVar("T")

_DEBUG = logging.DEBUG

#: What the quick path hands over to the general loop: the strategy's order (None: the list
#: order, which ``Call`` rebuilds), how many indices of the plan it used, the failures it took
#: quietly, and the failed attempt it leaves to the general loop (index, exception, latency).
_Pending = tuple[
    Iterable[int] | None,
    int,
    list[tuple[str, Exception]] | None,
    tuple[int, Exception, float] | None,
]


def _strategy_start(route: Route) -> tuple[Iterable[int], int | None]:
    """Ask the strategy its order (once per call); return it and the quick path's first index.

    The index is None when the quick path does not apply: an order that is not the plain
    list order, or an invalid choice (the general loop reports it).
    """
    providers = route.providers[0]  # type: ignore[index]
    n = len(providers)
    order = route.strategy.order(providers)
    if route.single_attempt:
        first = next(iter(order), None)
        return (() if first is None else (first,)), (
            first if type(first) is int and 0 <= first < n else None
        )
    if type(order) is range and order.start == 0 and order.step == 1 and order.stop == n:
        return order, 0
    return order, None


#: What routes the calls of one route: ``runner(fn, args, kwargs, want_result)`` returns the
#: response (or its RouteResult), or for an async route the coroutine of it. A sync runner
#: takes a fifth argument, ``instance``, to call ``fn`` as that instance's method.
Runner = Callable[..., Any]


def runner(route: Route) -> Runner:
    """Return the runner of ``route``, made on first use (routed functions: on decoration)."""
    made: Runner | None = route.runner
    if made is None:
        made = route.runner = (_async_runner if route.is_async else _sync_runner)(route)
    return made


def run_sync(
    route: Route,
    fn: Callable[..., T],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
) -> Any:
    """Route one sync call; return the response, or a RouteResult when ``want_result``."""
    return runner(route)(fn, args, kwargs, want_result)


def _bound(fn: Callable[..., Any], instance: object) -> Callable[..., Any]:
    return fn if instance is None else MethodType(fn, instance)


def _sync_runner(route: Route) -> Runner:
    """Return the sync runner of ``route``: the quick path when the route allows it.

    The quick path serves a call while it stays ordinary: providers tried in list order
    (or the one a single-attempt strategy chose), each available and answering, or failing
    while nothing a failure logs is enabled. At the first thing out of the ordinary (a
    provider cooling down, a failure to log, the last provider failing, DEBUG logging, a
    listener) it hands what it did over to the general loop, whose ``Call`` decides as always.
    What is fixed for the route is read once, here.
    """

    def general(
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        want_result: bool,
        pending: _Pending | None = None,
    ) -> Any:
        call = Call(route, None if pending is None else pending[0])
        try:
            if not call.listeners:
                return _route_sync(call, fn, args, kwargs, want_result, pending)
            started = route.clock()
            call.call_started()
            try:
                result = _route_sync(call, fn, args, kwargs, want_result, pending)
            except BaseException as exc:
                call.call_finished(exc, started)
                raise
            call.call_finished(None, started)
            return result
        finally:
            # A failure's traceback holds the frames it left through, each linked to its
            # caller's: this one must not keep the call (nor the failures it holds).
            del call, pending

    if not route.fast:

        def unhurried(
            fn: Callable[..., Any],
            args: Sequence[Any],
            kwargs: dict[str, Any],
            want_result: bool,
            instance: object = None,
        ) -> Any:
            return general(_bound(fn, instance), args, kwargs, want_result)

        return unhurried
    providers, names = route.providers  # type: ignore[misc]
    clock = route.clock
    last = len(names) - 1
    single = route.single_attempt
    in_list_order = route.in_list_order
    quiet_level = route.quiet_level
    own_logger = route.logger
    own_exempt = route.exempt
    global_tracker = route.uses_cooldown and route.cooldown is UNSET
    fixed = UNTRACKED if global_tracker else route.tracker_forms()

    def quick(
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        want_result: bool,
        instance: object = None,
    ) -> Any:
        # ``instance``: a method's, when ``fn`` is its function (a bound routed method passes
        # it rather than make a bound method per call).
        config = _config._current
        if config.listeners:
            return general(_bound(fn, instance), args, kwargs, want_result)
        order: Iterable[int] | None = None
        i: int | None = 0
        if not in_list_order:
            order, i = _strategy_start(route)
        logger = own_logger or config.logger
        if i is None or logger.isEnabledFor(_DEBUG):
            return general(_bound(fn, instance), args, kwargs, want_result, (order, 0, None, None))
        if global_tracker:
            forms = route._cached
            if forms[0] is not config.cooldown:
                forms = route.forms_of(config.cooldown)
        else:
            forms = fixed
        tracker = forms[1]
        known = forms[3]
        first = i
        failures: list[tuple[str, Exception]] | None = None
        exc: Exception | None = None
        while True:
            name = names[i]
            if (
                tracker is not None
                and (known is None or name in known)
                and not tracker.is_available(name)
            ):
                pending: _Pending = (order, i - first, failures, None)
                break
            start = clock()
            try:
                if instance is not None:
                    response = fn(instance, providers[i], *args, **kwargs)
                elif kwargs:
                    response = fn(providers[i], *args, **kwargs)
                else:
                    response = fn(providers[i], *args)
            except Exception as raised:
                latency = clock() - start
                if single or i == last or logger.isEnabledFor(quiet_level):
                    # Handed over outside this except block: what the general loop raises
                    # must not chain to this failure.
                    pending = (order, i - first, failures, (i, raised, latency))
                    break
                exc = judged(raised)
                if not falls_over(route, exc):
                    raise
                if tracker is not None and counts(
                    route,
                    config.exempt_providers if own_exempt is None else own_exempt,
                    name,
                    exc,
                ):
                    tracker.record_failure(name, exc)
                if failures is None:
                    failures = [(name, exc)]
                else:
                    failures.append((name, exc))
                i += 1
                continue
            latency = clock() - start
            if tracker is not None and (known is None or name in known):
                tracker.record_success(name)
            won: Won = (
                route,
                names,
                i,
                response,
                latency,
                None if failures is None else tuple(failures),
            )
            # _call.remember(won), inlined: a call costs ~5 % of a routed call here.
            if running_loop() is None:
                _last_here.value = won
            else:
                _last.set(won)
            if failures is None:
                return quick_result(won) if want_result else response
            # The failures' tracebacks hold this frame: without its references to them, they
            # are freed now rather than left to the cycle collector.
            result = quick_result(won) if want_result else response
            del won, failures, exc
            return result
        try:
            return general(_bound(fn, instance), args, kwargs, want_result, pending)
        finally:
            # What holds a failure here (whose traceback holds this frame) is dropped.
            del pending, failures, exc

    return quick


def _resume(
    call: Call, pending: _Pending | None
) -> tuple[Iterator[int], tuple[int, Exception, float] | None]:
    """Return the plan, past what the quick path did, and the failed attempt it left over."""
    plan = iter(call.plan())
    if pending is None:
        return plan, None
    _, used, failures, failed = pending
    if failures:
        call.failures = failures
    call.attempt = len(call.failures)
    if failed is not None:
        used += 1
        call.attempt += 1
    for _ in range(used):
        next(plan, None)
    return plan, failed


def _route_sync(
    call: Call,
    fn: Callable[..., T],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
    pending: _Pending | None = None,
) -> Any:
    route = call.route
    if route.hedge_delay is not None:
        return run_hedged_sync(call, fn, args, kwargs, want_result)
    tracker = route.tracker()
    on_end = route.on_attempt_end
    clock = route.clock
    names = call.names
    plan, failed = _resume(call, pending)
    del pending
    try:
        if failed is not None:
            fail_sync(call, tracker, *failed)
        for i in plan:
            if not admit_sync(call, tracker, i):
                continue
            name = names[i]
            call.starting(i)
            ok = False
            start = clock()
            try:
                response = fn(call.providers[i], *args, **kwargs)
                ok = True
            except Exception as raised:
                fail_sync(call, tracker, i, raised, clock() - start)
                continue
            finally:
                if on_end is not None:
                    on_end(name, clock() - start, ok)
            latency = clock() - start
            if tracker is not None:
                tracker.record_success(name)
            return call.succeeded(i, response, latency, want_result)
        raise call.exhausted(
            [tracker.cooldown_remaining(n) for n in names] if tracker is not None else ()
        )
    finally:
        # The failures' tracebacks hold this frame: without its references to them, they
        # are freed with the call rather than left to the cycle collector.
        del call, failed


def run_async(
    route: Route,
    fn: Callable[..., Awaitable[T]],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
) -> Coroutine[Any, Any, Any]:
    """Route one async call; return the coroutine of the response (or its RouteResult)."""
    coroutine: Coroutine[Any, Any, Any] = runner(route)(fn, args, kwargs, want_result)
    return coroutine


def _async_runner(route: Route) -> Runner:
    """The async twin of :func:`_sync_runner`; an in-process tracker is called, not awaited."""

    async def general(
        fn: Callable[..., Awaitable[Any]],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        want_result: bool,
        pending: _Pending | None = None,
    ) -> Any:
        call = Call(route, None if pending is None else pending[0])
        try:
            if not call.listeners:
                return await _route_async(call, fn, args, kwargs, want_result, pending)
            started = route.clock()
            call.call_started()
            try:
                result = await _route_async(call, fn, args, kwargs, want_result, pending)
            except BaseException as exc:
                call.call_finished(exc, started)
                raise
            call.call_finished(None, started)
            return result
        finally:
            del call, pending  # as in the sync runner

    if not route.fast:
        return general
    providers, names = route.providers  # type: ignore[misc]
    clock = route.clock
    last = len(names) - 1
    single = route.single_attempt
    in_list_order = route.in_list_order
    quiet_level = route.quiet_level
    own_logger = route.logger
    own_exempt = route.exempt
    global_tracker = route.uses_cooldown and route.cooldown is UNSET
    fixed = UNTRACKED if global_tracker else route.tracker_forms()

    async def quick(
        fn: Callable[..., Awaitable[Any]],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        want_result: bool,
    ) -> Any:
        config = _config._current
        if config.listeners:
            return await general(fn, args, kwargs, want_result)
        order: Iterable[int] | None = None
        i: int | None = 0
        if not in_list_order:
            order, i = _strategy_start(route)
        logger = own_logger or config.logger
        if i is None or logger.isEnabledFor(_DEBUG):
            return await general(fn, args, kwargs, want_result, (order, 0, None, None))
        if global_tracker:
            forms = route._cached
            if forms[0] is not config.cooldown:
                forms = route.forms_of(config.cooldown)
        else:
            forms = fixed
        _, tracker, local, known = forms
        first = i
        failures: list[tuple[str, Exception]] | None = None
        exc: Exception | None = None
        while True:
            name = names[i]
            if (
                tracker is not None
                and (known is None or name in known)
                and not (
                    local.is_available(name)
                    if local is not None
                    else await tracker.is_available(name)
                )
            ):
                pending: _Pending = (order, i - first, failures, None)
                break
            start = clock()
            try:
                response = await fn(providers[i], *args, **kwargs)
            except Exception as raised:
                cancelled_check(raised)
                latency = clock() - start
                if single or i == last or logger.isEnabledFor(quiet_level):
                    pending = (order, i - first, failures, (i, raised, latency))
                    break
                exc = judged(raised)
                if not falls_over(route, exc):
                    raise
                if tracker is not None and counts(
                    route,
                    config.exempt_providers if own_exempt is None else own_exempt,
                    name,
                    exc,
                ):
                    if local is not None:
                        local.record_failure(name, exc)
                    else:
                        await tracker.record_failure(name, exc)
                if failures is None:
                    failures = [(name, exc)]
                else:
                    failures.append((name, exc))
                i += 1
                continue
            latency = clock() - start
            if tracker is not None and (known is None or name in known):
                if local is not None:
                    local.record_success(name)
                else:
                    await tracker.record_success(name)
            won: Won = (
                route,
                names,
                i,
                response,
                latency,
                None if failures is None else tuple(failures),
            )
            # _call.remember(won), inlined: a call costs ~5 % of a routed call here.
            if running_loop() is None:
                _last_here.value = won
            else:
                _last.set(won)
            if failures is None:
                return quick_result(won) if want_result else response
            # The failures' tracebacks hold this frame: without its references to them, they
            # are freed now rather than left to the cycle collector.
            result = quick_result(won) if want_result else response
            del won, failures, exc
            return result
        try:
            return await general(fn, args, kwargs, want_result, pending)
        finally:
            # What holds a failure here (whose traceback holds this frame) is dropped.
            del pending, failures, exc

    return quick


async def _route_async(
    call: Call,
    fn: Callable[..., Awaitable[T]],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
    pending: _Pending | None = None,
) -> Any:
    route = call.route
    if route.hedge_delay is not None:
        return await run_hedged_async(call, fn, args, kwargs, want_result)
    tracker = route.tracker()
    on_end = route.on_attempt_end
    clock = route.clock
    names = call.names
    plan, failed = _resume(call, pending)
    del pending
    try:
        if failed is not None:
            await fail_async(call, tracker, *failed)
        for i in plan:
            if not await admit_async(call, tracker, i):
                continue
            name = names[i]
            call.starting(i)
            budget = call.attempt_budget()
            scope: asyncio.Timeout | None = None
            ok = False
            start = clock()
            try:
                if budget is None:
                    response = await fn(call.providers[i], *args, **kwargs)
                else:
                    async with asyncio.timeout(budget[0]) as scope:
                        response = await fn(call.providers[i], *args, **kwargs)
                ok = True
            except Exception as raised:
                if scope is not None and scope.expired() and budget is not None and budget[1]:
                    # The caller's deadline, not the provider, ended this attempt: not recorded.
                    raise call.timed_out() from raised
                await fail_async(call, tracker, i, raised, clock() - start)
                continue
            finally:
                if on_end is not None:
                    on_end(name, clock() - start, ok)
            latency = clock() - start
            if tracker is not None:
                await tracker.record_success(name)
            return call.succeeded(i, response, latency, want_result)
        raise call.exhausted(
            [await tracker.cooldown_remaining(n) for n in names] if tracker is not None else ()
        )
    finally:
        del call, failed  # as in _route_sync


def _awaiting(fn: Callable[[Any], Awaitable[T]]) -> Callable[[Any], Awaitable[T]]:
    """Wrap ``fn`` so that a result that cannot be awaited is a configuration error."""

    async def call(provider: Any) -> T:
        result = fn(provider)
        if not inspect.isawaitable(result):
            raise InvalidConfigError(
                f"execute_async() needs fn(provider) to return an awaitable, {fn!r} returned "
                f"{type(result).__name__}: use execute() for a sync function"
            )
        return await result

    return call


def execute(
    providers: object,
    fn: Callable[[Any], T],
    *,
    strategy: str | Strategy = "fallback",
    cooldown: AnyTracker | Literal[Unset.UNSET] | None = UNSET,
    exempt: Iterable[str] | None = None,
    fallback_on: ExceptionFilter = Exception,
    cooldown_on: ExceptionFilter | None = None,
    timeout: float | None = None,
    max_attempts: int | None = None,
    listeners: Iterable[Listener] | None = None,
    logger: logging.Logger | None = None,
) -> RouteResult[T]:
    """Call ``fn(provider)`` across ``providers`` with ``strategy``; return a RouteResult.

    The functional form of :func:`routed`, with the same options and rules. A strategy named
    by string is a fresh instance per call: pass one object (``RoundRobin()``) to rotate
    across calls.

    Raises:
        NoProvidersError: the provider list is empty.
        InvalidConfigError: an option is invalid.
        AllProvidersFailedError: every provider attempted by a multi-attempt strategy failed.
        RoutingTimeoutError: ``timeout`` ran out before a provider succeeded.
    """
    if inspect.iscoroutinefunction(fn):
        raise InvalidConfigError(
            f"execute() calls sync functions; {fn!r} is a coroutine function: "
            "await execute_async() instead"
        )
    route = Route(
        providers=providers,
        strategy=strategy,
        cooldown=cooldown,
        exempt=exempt,
        fallback_on=fallback_on,
        cooldown_on=cooldown_on,
        timeout=timeout,
        max_attempts=max_attempts,
        listeners=listeners,
        logger=logger,
        is_async=False,
        name=getattr(fn, "__qualname__", type(fn).__name__),
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
    fallback_on: ExceptionFilter = Exception,
    cooldown_on: ExceptionFilter | None = None,
    timeout: float | None = None,
    attempt_timeout: float | None = None,
    max_attempts: int | None = None,
    listeners: Iterable[Listener] | None = None,
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
        cooldown_on=cooldown_on,
        timeout=timeout,
        attempt_timeout=attempt_timeout,
        max_attempts=max_attempts,
        listeners=listeners,
        logger=logger,
        is_async=True,
        name=getattr(fn, "__qualname__", type(fn).__name__),
    )
    call = fn if inspect.iscoroutinefunction(fn) else _awaiting(fn)
    result: RouteResult[T] = await run_async(route, call, (), {}, True)
    return result
