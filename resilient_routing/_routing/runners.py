"""Choosing a route's runner: its driver, sync or async, sequential or hedged, streaming."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from resilient_routing._exceptions import InvalidConfigError

from . import aio, hedge, streams, sync
from .route import Route

__all__ = ["Runner", "awaiting", "runner"]

#: Routes the calls of one route: ``run(fn, args, kwargs, want_result)`` returns the response
#: (or its RouteResult), or for an async route the coroutine of it. A method is routed bound
#: (``fn`` a bound method).
Runner = Callable[..., Any]


def runner(route: Route) -> Runner:
    """Return the runner of ``route``."""
    hedged = route.caps.hedge_delay is not None
    if route.stream:
        if route.is_async:
            # A hedged stream's losers that opened their streams have them closed.
            drive = functools.partial(hedge.drive_async, release=streams.release)
            return streams.async_runner(route, drive if hedged else aio.drive)
        return streams.sync_runner(route, sync.drive)  # a sync stream is never hedged
    if route.is_async:
        return hedge.async_runner(route) if hedged else aio.runner(route)
    return hedge.sync_runner(route) if hedged else sync.runner(route)


def awaiting(fn: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """Wrap ``fn`` so that a result that cannot be awaited is a configuration error."""
    if inspect.iscoroutinefunction(fn):
        return fn

    async def call(provider: Any) -> Any:
        result = fn(provider)
        if not inspect.isawaitable(result):
            raise InvalidConfigError(
                f"execute_async() needs fn(provider) to return an awaitable, {fn!r} returned "
                f"{type(result).__name__}: use execute() for a sync function"
            )
        return await result

    return call
