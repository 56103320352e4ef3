"""The async driver: the sync driver's twin, awaiting providers and the tracker.

Its fast lane calls an in-process sync tracker without awaiting it; each attempt is bounded by
the budget the decision gives it (``attempt_timeout``, the call's ``timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from resilient_routing import _config

from . import report
from .decision import ATTEMPT, RAISE, RETURN, Decision
from .route import Route
from .steps import (
    Args,
    AsyncFn,
    Kwargs,
    ask_tracker_within,
    cancelling,
    init_decision,
    new_decision,
)

__all__ = ["drive", "runner"]

_DEBUG = logging.DEBUG

#: What an async route's runner is: ``run(fn, args, kwargs, want_result)`` returns the
#: coroutine of the response (or of its RouteResult).
Runner = Callable[..., Awaitable[Any]]


def runner(route: Route) -> Runner:
    """Return the runner of an async, sequential route."""
    clock = route.clock
    plan_of = route.plan
    rest = route.rest
    static = route.lane
    providers, names = static or ((), ())

    async def run(fn: AsyncFn, args: Args, kwargs: Kwargs, want_result: bool) -> Any:
        config = _config._current
        context = route.context
        if context.config is not config:
            context = route.resolve(config)
        local, tracker, asks = context.local, context.tracker, context.asks
        if (
            static is not None
            and not context.listeners
            # Quiet at DEBUG: a verdict the logger cached saves asking it (see Context.levels).
            and (context.levels.get(_DEBUG) is False or not context.logger.isEnabledFor(_DEBUG))
        ):
            plan = None if rest is not None else plan_of(providers)
            i = 0 if plan is None else next(plan)
            name = names[i]
            ask = name in asks
            if ask and not (
                local.is_available(name) if local is not None else await tracker.is_available(name)
            ):
                attempted, raised = 0, None
                seconds = (
                    local.cooldown_remaining(name)
                    if local is not None
                    else await tracker.cooldown_remaining(name)
                )
            else:
                outer = sys.exception()  # see cancelling()
                start = clock()
                try:
                    if kwargs:
                        response = await fn(providers[i], *args, **kwargs)
                    elif len(args) == 1:  # as in the sync driver
                        response = await fn(providers[i], args[0])
                    else:
                        response = await fn(providers[i], *args)
                except Exception as exc:
                    if cancelling(exc, outer):
                        raise asyncio.CancelledError() from exc
                    attempted, raised, seconds = 1, exc, clock() - start  # as in the sync lane
                else:
                    latency = clock() - start
                    if ask:
                        if local is not None:
                            local.record_success(name)
                        else:
                            await tracker.record_success(name)
                    last = (route, i, response, latency)
                    report.last_here.value = last  # as Decision.returns() does
                    if report.running_loop() is not None:
                        report.last_in_task.set(last)
                    return report.quick_result(*last) if want_result else response
            d = new_decision(Decision)  # as in the sync lane
            init_decision(d, route, context, want_result, static, plan, i, attempted)
        else:
            d = Decision(route, context, want_result)
            raised = seconds = None
        try:
            # What the lane saw of its first choice is the decision's first step.
            if seconds is None:
                step = None
            elif raised is None:
                step = d.cooling(seconds)
            else:
                step = d.failed(i, raised, seconds)
            return await drive(d, tracker, fn, args, kwargs, step)
        finally:
            del d, raised  # as in the sync driver

    return run


async def drive(
    d: Decision,
    tracker: Any,
    fn: AsyncFn,
    args: Args,
    kwargs: Kwargs,
    step: int | None = None,
) -> Any:
    """Perform the steps of ``d`` until the call returns or raises; return what it returns.

    Each attempt is bounded by ``d.budget``. ``step``: the first step, when a fast lane handed
    the call over (None: ``d.start()``).
    """
    clock = d.route.clock
    try:
        if step is None:
            step = d.start()
        providers = d.providers
        while True:
            if step is ATTEMPT:
                i = d.index
                budget = d.budget
                scope: asyncio.Timeout | None = None
                outer = sys.exception()
                start = clock()
                try:
                    if budget is None:
                        response = await fn(providers[i], *args, **kwargs)
                    else:
                        async with asyncio.timeout(budget) as scope:
                            response = await fn(providers[i], *args, **kwargs)
                except Exception as exc:
                    expired = scope is not None and scope.expired()  # ours: no cancellation
                    if expired:
                        # Its traceback holds Timeout.__aexit__'s frame: the Timeout, its task.
                        exc.__traceback__ = None
                    if not expired and cancelling(exc, outer):
                        d.abandoned(i, clock() - start)
                        raise asyncio.CancelledError() from exc
                    step = d.failed(i, exc, clock() - start, expired)
                    continue
                except BaseException:
                    d.abandoned(i, clock() - start)
                    raise
                step = d.succeeded(i, response, clock() - start)
            if step is RAISE:
                raise d.error
            if step is RETURN:
                return d.value
            step = await ask_tracker_within(d, step, tracker)
    except BaseException as exc:
        d.finish(exc)
        raise
    finally:
        del d  # as in the runner
        scope = None  # an asyncio.Timeout holds its task, which holds the call
