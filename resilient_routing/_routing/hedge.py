"""The hedged drivers: several attempts in flight, the first answer wins.

They perform the same steps as the sequential drivers, plus ``WAIT`` (wait for an outcome of
the attempts in flight, at most ``d.wait`` seconds); when to start another attempt beside the
running ones is the decision's. Outcomes that land together are reported in launch order.

Async: the losing attempts are cancelled and awaited before the call returns. Sync: attempts
run on a thread pool; the losers are abandoned (a running thread cannot be stopped), not waited
for, and their outcomes are not recorded. Either way a loser that ran past ``slow_call``
without an answer (async: when it was stopped; sync: when it ends) is recorded as a slow call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from resilient_routing import _config
from resilient_routing._exceptions import SlowCallError

from . import report
from .decision import ATTEMPT, RAISE, RETURN, WAIT, Decision
from .route import Route
from .steps import (
    Args,
    AsyncFn,
    Fn,
    Kwargs,
    ask_tracker,
    ask_tracker_within,
    cancelling,
)

__all__ = ["async_runner", "default_executor", "drive_async", "sync_runner"]

#: What an attempt in flight gives back: whether it answered, its response or exception, its
#: latency, and whether its time budget ran out.
Outcome = tuple[bool, Any, float, bool]
#: A sync attempt's outcome, in a box its reader empties. The pool thread's frame that ran the
#: attempt keeps what it returned, and a failure's traceback keeps that frame (Python links a
#: kept frame to its caller's): a bare outcome would make a reference cycle of each failure.
Boxed = list[Outcome]

_A = TypeVar("_A")  # an attempt in flight: a future, a task

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


class _InFlight(Generic[_A]):
    """The attempts in flight: each running one's provider index and start time, and those landed.

    Outcomes that land together are reported in launch order.
    """

    __slots__ = ("landed", "running")

    def __init__(self) -> None:
        self.running: dict[_A, tuple[int, float]] = {}
        self.landed: list[_A] = []

    def land(self, done: set[_A]) -> None:
        """The attempts of ``done`` ended: report them next, in the order they started."""
        launched = list(self.running)
        self.landed = sorted(done, key=launched.index)

    def next(self) -> tuple[_A, int, float]:
        """Return the next landed attempt, its provider's index and start (it no longer runs)."""
        attempt = self.landed.pop(0)
        i, start = self.running.pop(attempt)
        return attempt, i, start


def _attempt_sync(
    fn: Fn, provider: Any, args: Args, kwargs: Kwargs, clock: Callable[[], float]
) -> Boxed:
    start = clock()
    try:
        response = fn(provider, *args, **kwargs)
    except Exception as exc:
        return [(False, exc, clock() - start, False)]
    return [(True, response, clock() - start, False)]


def sync_runner(route: Route) -> Callable[..., Any]:
    """Return the runner of a sync hedged route (attempts on a thread pool)."""

    def run(fn: Fn, args: Args, kwargs: Kwargs, want_result: bool) -> Any:
        context = route.context_of(_config._current)
        # The decision is no local here: a failure's traceback holds this frame, and the
        # decision (which holds the failures) would make a cycle of it.
        return _drive_sync(Decision(route, context, want_result), context.tracker, fn, args, kwargs)

    return run


def _drive_sync(d: Decision, tracker: Any, fn: Fn, args: Args, kwargs: Kwargs) -> Any:
    executor = d.route.caps.executor or default_executor()
    clock = d.route.clock
    providers = d.providers
    flight: _InFlight[concurrent.futures.Future[Boxed]] = _InFlight()
    # Cleared at the end: a failure raised from here keeps this frame in its traceback.
    future: concurrent.futures.Future[Boxed] | None = None
    value: Any = None
    step: int | None = None  # RETURN when the call ends: it won
    try:
        step = d.start()
        while True:
            if step is ATTEMPT:
                i = d.index
                # In a copy of the caller's context, so contextvars (tracing spans) follow it.
                context = contextvars.copy_context()
                attempt = functools.partial(_attempt_sync, fn, providers[i], args, kwargs, clock)
                try:
                    future = executor.submit(context.run, attempt)
                except RuntimeError:
                    # It takes no more work (shut down; after the main thread ended, every
                    # pool): the attempt runs here, as a sequential route's would.
                    started = clock()
                    try:
                        future = _ran(context.run(attempt))
                    except BaseException:  # an interruption propagates at once
                        d.abandoned(i, clock() - started)
                        raise
                flight.running[future] = (i, clock())
                step = d.started_attempt()
            elif step is WAIT:
                if not _landed_sync(flight, d.wait):
                    step = d.waited()
                    continue
                future, i, start = flight.next()
                try:
                    ok, value, latency, _ = future.result().pop()
                except BaseException:  # raised past Exception in its thread: not judged
                    d.abandoned(i, clock() - start)
                    raise
                step = d.succeeded(i, value, latency) if ok else d.failed(i, value, latency)
            elif step is RAISE:
                raise d.error
            elif step is RETURN:
                return d.value
            else:
                step = ask_tracker(d, step, tracker)
    except BaseException as exc:
        d.finish(exc)
        raise
    finally:
        won = step is RETURN
        # An attempt still queued never calls its provider: the call is over. The losers
        # that run go on: when each ends, the strategy hears of it (nothing is recorded, but
        # that it was slower than slow_call).
        if flight.running:
            d = d.detached()
        for future, (i, start) in flight.running.items():
            if future.cancel():
                d.abandoned(i, clock() - start)
            else:
                future.add_done_callback(_abandoned(d, i, start, tracker, won))
        del d
        future = value = None


def _landed_sync(flight: _InFlight[concurrent.futures.Future[Boxed]], wait: float | None) -> bool:
    """Whether an attempt has landed, waiting up to ``wait`` seconds for one (None: no limit)."""
    if not flight.landed:
        done, _ = concurrent.futures.wait(
            flight.running, timeout=wait, return_when="FIRST_COMPLETED"
        )
        flight.land(done)
    return bool(flight.landed)


def _ran(outcome: Boxed) -> concurrent.futures.Future[Boxed]:
    """Return the outcome of an attempt that ran in the caller's thread, as a future's."""
    future: concurrent.futures.Future[Boxed] = concurrent.futures.Future()
    future.set_result(outcome)
    return future


def _abandoned(
    d: Decision, i: int, start: float, tracker: Any, won: bool
) -> Callable[[concurrent.futures.Future[Boxed]], None]:
    def done(future: concurrent.futures.Future[Boxed]) -> None:
        if future.cancelled() or future.exception() is not None:
            d.abandoned(i, d.route.clock() - start)  # cancelled by its executor, or interrupted
            return
        ok, _, latency, _ = future.result().pop()
        d.abandoned(i, latency, ok)
        error = d.outran(i, latency) if won else None
        if error is not None:  # beaten, and slower than slow_call: a slow call
            name = d.names[i]
            started = tracker.record_failure(name, error)
            d.outran_recorded(i, started, tracker.cooldown_remaining(name) if started else 0)

    return done


async def _attempt_async(
    fn: AsyncFn,
    provider: Any,
    args: Args,
    kwargs: Kwargs,
    clock: Callable[[], float],
    budget: float | None,
) -> Outcome:
    scope: asyncio.Timeout | None = None
    start = clock()
    try:
        if budget is None:
            response = await fn(provider, *args, **kwargs)
        else:
            async with asyncio.timeout(budget) as scope:
                response = await fn(provider, *args, **kwargs)
    except Exception as exc:
        expired = scope is not None and scope.expired()
        if expired:
            exc.__traceback__ = None  # as in aio.drive
        return (False, exc, clock() - start, expired)
    finally:
        scope = None  # its Timeout holds this task, whose result holds the failure
    return (True, response, clock() - start, False)


async def _landed_async(flight: _InFlight[asyncio.Task[Outcome]], wait: float | None) -> bool:
    """Whether an attempt has landed, waiting up to ``wait`` seconds for one (None: no limit)."""
    if not flight.landed:
        done, _ = await asyncio.wait(flight.running, timeout=wait, return_when="FIRST_COMPLETED")
        flight.land(done)
    return bool(flight.landed)


def async_runner(route: Route) -> Callable[..., Awaitable[Any]]:
    """Return the runner of an async hedged route: attempts are tasks, the losers cancelled."""

    async def run(fn: AsyncFn, args: Args, kwargs: Kwargs, want_result: bool) -> Any:
        context = route.context_of(_config._current)
        # The decision is no local, as in the sync runner.
        return await drive_async(
            Decision(route, context, want_result), context.tracker, fn, args, kwargs
        )

    return run


async def drive_async(
    d: Decision,
    tracker: Any,
    fn: AsyncFn,
    args: Args,
    kwargs: Kwargs,
    release: Callable[[Any], Awaitable[None]] | None = None,
) -> Any:
    """Perform the steps of ``d``, attempts as tasks; return what the first answer returns.

    ``release``: awaited with the response of each attempt that answered but lost (a stream
    opened by a losing provider, to close).
    """
    clock = d.route.clock
    providers = d.providers
    flight: _InFlight[asyncio.Task[Outcome]] = _InFlight()
    task: asyncio.Task[Outcome] | None = None  # these two: as in the sync driver
    value: Any = None
    step: int | None = None  # RETURN when the call ends: it won
    memory = report.remembered()
    try:
        step = d.start()
        while True:
            if step is ATTEMPT:
                i = d.index
                task = asyncio.ensure_future(
                    _attempt_async(fn, providers[i], args, kwargs, clock, d.budget)
                )
                flight.running[task] = (i, clock())
                step = d.started_attempt()
            elif step is WAIT:
                if not await _landed_async(flight, d.wait):
                    step = d.waited()
                    continue
                task, i, start = flight.next()
                try:
                    ok, value, latency, expired = task.result()
                except BaseException:  # cancelled on its own, or past Exception: not judged
                    d.abandoned(i, clock() - start)
                    raise
                if ok:
                    step = d.succeeded(i, value, latency)
                    continue
                if not expired and cancelling(value):  # an attempt's own timeout is no cancel
                    d.abandoned(i, latency)
                    raise asyncio.CancelledError() from value
                step = d.failed(i, value, latency, expired)
            elif step is RAISE:
                raise d.error
            elif step is RETURN:
                return d.value
            else:
                step = await ask_tracker_within(d, step, tracker)
    except BaseException as exc:
        d.finish(exc)
        raise
    finally:
        won = step is RETURN
        running = flight.running
        if running:
            # The losers (or every attempt, when the call itself is cancelled) end before
            # return. Shielded: cancelled again meanwhile, the caller leaves at once, and the
            # losers still end, are released (an opened stream closed) and reported.
            settling = asyncio.ensure_future(_settle(d, tracker, running, won, release))
            _settling.add(settling)
            settling.add_done_callback(_settling.discard)
            try:
                await asyncio.shield(settling)
            except BaseException:
                if won:  # cancelled as the losers settled: the call raises, last_route() as before
                    report.restore(memory, d)
                raise
        del d
        task = value = None


#: Settling tasks cancelled callers left behind: held until done (the loop holds tasks weakly).
_settling: set[asyncio.Task[None]] = set()


async def _settle(
    d: Decision,
    tracker: Any,
    running: dict[asyncio.Task[Outcome], tuple[int, float]],
    won: bool,
    release: Callable[[Any], Awaitable[None]] | None,
) -> None:
    """End the attempts still running; release those that answered; record the slow losers."""
    clock = d.route.clock
    for task in running:
        task.cancel()
    await asyncio.wait(running)
    outran: list[tuple[int, SlowCallError]] = []
    for task, (i, start) in running.items():
        answered = not task.cancelled() and task.exception() is None and task.result()[0]
        d.abandoned(i, clock() - start, answered)
        if answered and release is not None:
            await release(task.result()[1])
        elif won and task.cancelled():
            # Beaten, and unanswered past slow_call: a slow call, whatever it would answer.
            error = d.outran(i, clock() - start)
            if error is not None:
                outran.append((i, error))
    for i, error in outran:
        name = d.names[i]
        started = await tracker.record_failure(name, error)
        d.outran_recorded(i, started, await tracker.cooldown_remaining(name) if started else 0)
