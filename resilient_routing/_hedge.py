"""Runners for hedged strategies: several attempts in flight, the first success wins.

A hedged strategy sets ``hedge_delay`` (seconds to wait for an attempt before starting the
next provider beside it) and ``max_hedges`` (how many extra attempts may run at once). A
failure starts the next provider at once. The rules (order, skips, the terminus, recording,
errors) are the same ``Call`` decisions as for sequential routing.

Async: the losing attempts are cancelled and awaited before the call returns. Sync: attempts
run on a thread pool; the losers are abandoned (a running thread cannot be stopped), not waited
for, and their outcomes are not recorded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from ._call import Call
from ._steps import admit_async, admit_sync, fail_async, fail_sync

__all__ = ["run_hedged_async", "run_hedged_sync"]

_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def default_executor() -> concurrent.futures.Executor:
    """Return the shared pool of sync hedged attempts (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(64, (os.cpu_count() or 1) * 8),
                thread_name_prefix="resilient_routing-hedge",
            )
        return _pool


def _wait_for(call: Call, in_flight: int) -> float | None:
    """Seconds to wait for an outcome before hedging or timing out; None: until one."""
    route = call.route
    wait = route.hedge_delay if in_flight <= route.max_hedges else None
    if call.deadline is not None:
        left = max(call.deadline - route.clock(), 0.0)
        wait = left if wait is None else min(wait, left)
    return wait


def _timed_sync(
    call: Call, fn: Callable[..., Any], i: int, args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[Any, float]:
    on_end = call.route.on_attempt_end
    clock = call.route.clock
    ok = False
    start = clock()
    try:
        response = fn(call.providers[i], *args, **kwargs)
        ok = True
        return response, clock() - start
    finally:
        if on_end is not None:
            on_end(call.names[i], clock() - start, ok)


def run_hedged_sync(
    call: Call,
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
) -> Any:
    """Route one sync call with hedging (see the module docstring)."""
    route = call.route
    tracker = route.tracker()
    executor: concurrent.futures.Executor = (
        getattr(route.strategy, "executor", None) or default_executor()
    )
    names = call.names
    plan: Iterator[int] = iter(call.plan())
    running: dict[concurrent.futures.Future[tuple[Any, float]], tuple[int, float]] = {}
    hedges: list[str] = []

    def launch() -> bool:
        for i in plan:
            if not admit_sync(call, tracker, i):
                continue
            call.starting(i)
            if running:
                hedges.append(names[i])
            # In a copy of the caller's context, so contextvars (tracing spans) follow it.
            context = contextvars.copy_context()
            future = executor.submit(context.run, _timed_sync, call, fn, i, args, kwargs)
            running[future] = (i, route.clock())
            return True
        return False

    launch()
    while running:
        done, _ = concurrent.futures.wait(
            running, timeout=_wait_for(call, len(running)), return_when="FIRST_COMPLETED"
        )
        if not done:
            if call.deadline is not None and route.clock() >= call.deadline:
                raise call.timed_out()
            launch()
            continue
        # In launch order, so that outcomes landing together are judged reproducibly.
        for future in sorted(done, key=running.__getitem__):
            i, start = running.pop(future)
            name = names[i]
            raised = future.exception()
            if raised is None:
                response, latency = future.result()
                if tracker is not None:
                    tracker.record_success(name)
                call.hedges = tuple(hedges)
                return call.succeeded(i, response, latency, want_result)
            if not isinstance(raised, Exception):
                raise raised
            fail_sync(call, tracker, i, raised, route.clock() - start)
        if len(running) <= route.max_hedges:
            launch()  # a failure falls over at once, without waiting for the hedge delay
    raise call.exhausted(
        [tracker.cooldown_remaining(n) for n in names] if tracker is not None else ()
    )


async def _timed_async(
    call: Call,
    fn: Callable[..., Awaitable[Any]],
    i: int,
    args: Sequence[Any],
    kwargs: dict[str, Any],
) -> tuple[Any, float]:
    on_end = call.route.on_attempt_end
    limit = call.route.attempt_timeout
    clock = call.route.clock
    ok = False
    start = clock()
    try:
        if limit is None:
            response = await fn(call.providers[i], *args, **kwargs)
        else:
            async with asyncio.timeout(limit):
                response = await fn(call.providers[i], *args, **kwargs)
        ok = True
        return response, clock() - start
    finally:
        if on_end is not None:
            on_end(call.names[i], clock() - start, ok)


async def run_hedged_async(
    call: Call,
    fn: Callable[..., Awaitable[Any]],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    want_result: bool,
) -> Any:
    """Route one async call with hedging (see the module docstring)."""
    route = call.route
    tracker = route.tracker()
    names = call.names
    plan: Iterator[int] = iter(call.plan())
    running: dict[asyncio.Task[tuple[Any, float]], tuple[int, float]] = {}
    hedges: list[str] = []

    async def launch() -> bool:
        for i in plan:
            if not await admit_async(call, tracker, i):
                continue
            call.starting(i)
            if running:
                hedges.append(names[i])
            task = asyncio.ensure_future(_timed_async(call, fn, i, args, kwargs))
            running[task] = (i, route.clock())
            return True
        return False

    try:
        await launch()
        while running:
            done, _ = await asyncio.wait(
                running, timeout=_wait_for(call, len(running)), return_when="FIRST_COMPLETED"
            )
            if not done:
                if call.deadline is not None and route.clock() >= call.deadline:
                    raise call.timed_out()
                await launch()
                continue
            for task in sorted(done, key=running.__getitem__):
                i, start = running.pop(task)
                name = names[i]
                raised = task.exception()
                if raised is None:
                    response, latency = task.result()
                    if tracker is not None:
                        await tracker.record_success(name)
                    call.hedges = tuple(hedges)
                    return call.succeeded(i, response, latency, want_result)
                if not isinstance(raised, Exception):
                    raise raised
                await fail_async(call, tracker, i, raised, route.clock() - start)
            if len(running) <= route.max_hedges:
                await launch()  # a failure falls over at once, without waiting for the delay
        raise call.exhausted(
            [await tracker.cooldown_remaining(n) for n in names] if tracker is not None else ()
        )
    finally:
        # The losers (or every attempt, when the call itself is cancelled) end before return.
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
