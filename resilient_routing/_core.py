"""The runners: they call providers and trackers, and leave every decision to ``Call``.

``run_sync`` and ``run_async`` read alike line for line; hedged strategies (which run several
attempts at once) have their own pair in ``_hedge``.

The fast path: most calls end with the first provider answering. For routes that allow it
(static providers, no deadline, cap, hooks, hedging or listeners), the runners try that
provider without building the per-call ``Call`` state; at the first thing out of the ordinary
(the provider cooling down, a failure, DEBUG logging, a listener) they hand over to the general
loop, with what they already did, and the ``Call`` decides as always.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import _config
from ._call import Call, _last, first_attempt_result
from ._config import UNSET, AnyTracker, Unset
from ._exceptions import InvalidConfigError
from ._hedge import run_hedged_async, run_hedged_sync
from ._result import RouteResult
from ._route import ExceptionFilter, Route
from ._steps import admit_async, admit_sync, cancelled_check, fail_async, fail_sync
from ._strategies import Strategy

if TYPE_CHECKING:
    from ._events import Listener

__all__ = ["execute", "execute_async", "run_async", "run_sync"]

T = TypeVar("T")

_DEBUG = logging.DEBUG

#: What the fast path hands over: the order it took from the strategy, and its attempt.
#: (None as the order: the strategy's is the list order, which ``Call`` rebuilds if needed.)
_Pending = (
    tuple[Iterable[int] | None, int, Exception, float]
    | tuple[Iterable[int] | None, None, None, float]
)


def _fast_start(route: Route) -> tuple[Iterable[int] | None, int | None, Any]:
    """Return the strategy's order (asked once per call), its first index and the tracker.

    The order is None for a strategy ``in_list_order`` (nothing to ask). The index is None when
    the fast path does not apply: an order that is not a plain list order, an invalid choice
    (the general loop reports it), or DEBUG logging (which wants the general loop's records).
    """
    i: int | None = 0
    order: Iterable[int] | None = None
    if not route.in_list_order:
        providers = route.providers[0]  # type: ignore[index]
        n = len(providers)
        order = route.strategy.order(providers)
        if route.single_attempt:
            first = next(iter(order), None)
            order = () if first is None else (first,)
            i = first if type(first) is int and 0 <= first < n else None
        elif not (
            type(order) is range and order.start == 0 and order.step == 1 and order.stop == n
        ):
            i = None
    if (route.logger or _config._current.logger).isEnabledFor(_DEBUG):
        i = None
    return order, i, route.tracker()


def run_sync(
    route: Route,
    fn: Callable[..., T],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
) -> Any:
    """Route one sync call; return the response, or a RouteResult when ``want_result``."""
    pending: _Pending | None = None
    if route.fast and not _config._current.listeners:
        order, i, tracker = _fast_start(route)
        if i is not None:
            providers, names = route.providers  # type: ignore[misc]
            name = names[i]
            if tracker is None or tracker.is_available(name):
                clock = route.clock
                start = clock()
                try:
                    response = fn(providers[i], *args, **kwargs)
                except Exception as raised:
                    pending = (order, i, raised, clock() - start)
                else:
                    latency = clock() - start
                    if tracker is not None:
                        tracker.record_success(name)
                    won = (route, names, i, response, latency)
                    _last.set(won)
                    return first_attempt_result(won) if want_result else response
        if pending is None:
            pending = (order, None, None, 0.0)
    call = Call(route, None if pending is None else pending[0])
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


def _resume(
    call: Call, pending: _Pending | None
) -> tuple[Iterator[int], tuple[int, Exception, float] | None]:
    """Return the plan, past the fast path's attempt if it made one, and that failed attempt."""
    plan = iter(call.plan())
    if pending is None or pending[1] is None:
        return plan, None
    _, i, raised, latency = pending
    next(plan)  # the index the fast path already tried
    call.attempt = 1
    assert raised is not None
    return plan, (i, raised, latency)


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


async def run_async(
    route: Route,
    fn: Callable[..., Awaitable[T]],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
) -> Any:
    """Route one async call; return the response, or a RouteResult when ``want_result``."""
    pending: _Pending | None = None
    if route.fast and not _config._current.listeners:
        order, i, tracker = _fast_start(route)
        if i is not None:
            providers, names = route.providers  # type: ignore[misc]
            name = names[i]
            if tracker is None or await tracker.is_available(name):
                clock = route.clock
                start = clock()
                try:
                    response = await fn(providers[i], *args, **kwargs)
                except Exception as raised:
                    cancelled_check(raised)
                    pending = (order, i, raised, clock() - start)
                else:
                    latency = clock() - start
                    if tracker is not None:
                        await tracker.record_success(name)
                    won = (route, names, i, response, latency)
                    _last.set(won)
                    return first_attempt_result(won) if want_result else response
        if pending is None:
            pending = (order, None, None, 0.0)
    call = Call(route, None if pending is None else pending[0])
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
