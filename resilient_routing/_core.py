"""The two runners: they call providers and trackers, and leave every decision to ``Call``.

``run_sync`` and ``run_async`` read alike line for line; hedged strategies (which run several
attempts at once) have their own pair in ``_hedge``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

from ._call import Call
from ._config import UNSET, AnyTracker, Unset
from ._events import Listener
from ._hedge import run_hedged_async, run_hedged_sync
from ._result import RouteResult
from ._route import ExceptionFilter, Route
from ._strategies import Strategy

__all__ = ["execute", "execute_async", "run_async", "run_sync"]

T = TypeVar("T")


def run_sync(
    route: Route,
    fn: Callable[..., T],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
) -> Any:
    """Route one sync call; return the response, or a RouteResult when ``want_result``."""
    call = Call(route)
    if not call.listeners:
        return _route_sync(call, fn, args, kwargs, want_result)
    started = route.clock()
    call.call_started()
    try:
        result = _route_sync(call, fn, args, kwargs, want_result)
    except BaseException as exc:
        call.call_finished(exc, started)
        raise
    call.call_finished(None, started)
    return result


def _route_sync(
    call: Call,
    fn: Callable[..., T],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
) -> Any:
    route = call.route
    if route.hedge_delay is not None:
        return run_hedged_sync(call, fn, args, kwargs, want_result)
    tracker = route.tracker()
    on_end = route.on_attempt_end
    clock = route.clock
    names = call.names
    for i in call.plan():
        name = names[i]
        if not call.admits(i) or (
            tracker is not None
            and not tracker.is_available(name)
            and not call.admit_cooling(i, tracker.cooldown_remaining(name))
        ):
            continue
        call.starting(i)
        ok = False
        start = clock()
        try:
            response = fn(call.providers[i], *args, **kwargs)
            ok = True
        except Exception as raised:
            latency = clock() - start
            exc = call.classify(i, raised, latency)
            if exc is None:
                raise
            counted = tracker is not None and call.records(i, exc)
            started = counted and tracker.record_failure(name, exc)
            single = call.failed(i, raised, exc, counted, latency)
            if started:
                call.cooling_started(i, tracker.cooldown_remaining(name))
            if single:
                raise
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
    call = Call(route)
    if not call.listeners:
        return await _route_async(call, fn, args, kwargs, want_result)
    started = route.clock()
    call.call_started()
    try:
        result = await _route_async(call, fn, args, kwargs, want_result)
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
) -> Any:
    route = call.route
    if route.hedge_delay is not None:
        return await run_hedged_async(call, fn, args, kwargs, want_result)
    tracker = route.tracker()
    on_end = route.on_attempt_end
    clock = route.clock
    names = call.names
    for i in call.plan():
        name = names[i]
        if not call.admits(i) or (
            tracker is not None
            and not await tracker.is_available(name)
            and not call.admit_cooling(i, await tracker.cooldown_remaining(name))
        ):
            continue
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
            latency = clock() - start
            exc = call.classify(i, raised, latency)
            if exc is None:
                raise
            counted = tracker is not None and call.records(i, exc)
            started = counted and await tracker.record_failure(name, exc)
            single = call.failed(i, raised, exc, counted, latency)
            if started:
                call.cooling_started(i, await tracker.cooldown_remaining(name))
            if single:
                raise
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

    The functional form of :func:`routed`, with the same options and rules.

    Raises:
        NoProvidersError: the provider list is empty.
        InvalidConfigError: an option is invalid.
        AllProvidersFailedError: every provider attempted by a multi-attempt strategy failed.
        RoutingTimeoutError: ``timeout`` ran out before a provider succeeded.
    """
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
    result: RouteResult[T] = await run_async(route, fn, (), {}, True)
    return result
