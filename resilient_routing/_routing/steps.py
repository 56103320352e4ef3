"""The steps every driver performs alike: asking the tracker, and telling a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from resilient_routing.cooldown._policy import PROBE
from resilient_routing.cooldown._protocol import telling_admit

from .decision import CHECK, CLEAR, RECORD, TALLY, Decision

__all__ = [
    "Args",
    "AsyncFn",
    "Fn",
    "Kwargs",
    "ask_tracker",
    "ask_tracker_async",
    "ask_tracker_within",
    "cancelling",
    "init_decision",
    "new_decision",
]

#: What drivers call: the provider function (async: a coroutine function), and the arguments
#: after the provider.
Fn = Callable[..., Any]
AsyncFn = Callable[..., Awaitable[Any]]
Args = Sequence[Any]
Kwargs = dict[str, Any]

#: ``Decision(...)`` in two steps, for the fast lanes' hand-over: ``d = new_decision(Decision)``
#: then ``init_decision(d, ...)``. Calling the class costs ~60 ns more than the ``__init__`` it
#: runs (CPython 3.11's ``type.__call__``), on every call whose first choice fails. (A test
#: that replaces ``Decision`` in a driver replaces ``new_decision`` there too: both lanes
#: build through it.)
new_decision = object.__new__
init_decision = Decision.__init__


def ask_tracker(d: Decision, step: int, tracker: Any) -> int:
    """Perform a tracker step of ``d`` (CHECK, RECORD, CLEAR or TALLY); return the next."""
    names = d.names
    if step is CHECK:
        name = names[d.index]
        # Listeners hear of half-open probes: a tracker that can tell is asked with admit().
        admit = telling_admit(tracker) if d.listeners else None
        if admit is not None:
            admitted = admit(name)
            if admitted:
                return d.available(admitted == PROBE)
        elif tracker.is_available(name):
            return d.available()
        return d.cooling(tracker.cooldown_remaining(name))
    if step is RECORD:
        name = names[d.index]
        started = tracker.record_failure(name, d.judged)
        return d.recorded(started, tracker.cooldown_remaining(name) if started else 0.0)
    if step is CLEAR:
        tracker.record_success(names[d.winner])
        return d.returns()
    assert step is TALLY
    return d.tallied([tracker.cooldown_remaining(n) for n in names])


async def ask_tracker_async(d: Decision, step: int, tracker: Any) -> int:
    """The async twin of :func:`ask_tracker` (the tracker's methods are awaited)."""
    names = d.names
    if step is CHECK:
        name = names[d.index]
        admit = telling_admit(tracker) if d.listeners else None
        if admit is not None:
            admitted = await admit(name)
            if admitted:
                return d.available(admitted == PROBE)
        elif await tracker.is_available(name):
            return d.available()
        return d.cooling(await tracker.cooldown_remaining(name))
    if step is RECORD:
        name = names[d.index]
        started = await tracker.record_failure(name, d.judged)
        return d.recorded(started, await tracker.cooldown_remaining(name) if started else 0.0)
    if step is CLEAR:
        await tracker.record_success(names[d.winner])
        return d.returns()
    assert step is TALLY
    return d.tallied([await tracker.cooldown_remaining(n) for n in names])


async def ask_tracker_within(d: Decision, step: int, tracker: Any) -> int:
    """:func:`ask_tracker_async` within the call's ``timeout``, when it has one.

    An async tracker that does not answer (a stalled connection) must not hold the call past
    its deadline: what the decision makes of that is :meth:`Decision.tracker_late`.
    """
    if d.route.plain or d.deadline is None or (step is RECORD and d.cut):
        # (A slow call the deadline cut is recorded after it: within the tracker's own limits.)
        return await ask_tracker_async(d, step, tracker)
    try:
        async with asyncio.timeout(max(d.deadline - d.route.clock(), 0.0)) as scope:
            return await ask_tracker_async(d, step, tracker)
    except TimeoutError:
        if not scope.expired():
            raise  # the tracker's own
        return d.tracker_late(step)


def cancelling(exc: BaseException | None = None, outer: BaseException | None = None) -> bool:
    """Whether the running task is being cancelled (and ``exc``, if given, stands for that).

    Some client wrappers turn ``CancelledError`` into an ordinary exception; taking that for a
    provider failure (and falling over) would defeat the cancellation. Such an exception was
    raised while a ``CancelledError`` was handled: it is in its chain, before ``outer`` (what
    the caller was handling when the attempt began: a cleanup after a cancellation it took).
    A task's count of cancellations alone says too much: Python 3.11's TaskGroup leaves it
    raised after a child's plain failure, and so does such a cleanup.
    """
    task = asyncio.current_task()
    if task is None or task.cancelling() == 0:
        return False
    if exc is None:
        return True
    return _stands_for_a_cancel(exc, outer, set())


def _stands_for_a_cancel(exc: BaseException | None, outer: object, seen: set[int]) -> bool:
    while exc is not None and exc is not outer and id(exc) not in seen:
        if isinstance(exc, asyncio.CancelledError):
            return True
        seen.add(id(exc))
        if isinstance(exc, BaseExceptionGroup) and any(
            _stands_for_a_cancel(inner, outer, seen) for inner in exc.exceptions
        ):
            return True  # a TaskGroup's child that turned its cancellation into an error
        exc = exc.__cause__ or exc.__context__
    return False
