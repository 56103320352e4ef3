"""The steps every driver performs the same way: asking the tracker, and asyncio's state."""

from __future__ import annotations

import asyncio
from typing import Any

from .decision import CHECK, RECORD, TALLY, Decision

__all__ = ["ask_tracker", "ask_tracker_async", "cancelling"]


def ask_tracker(d: Decision, step: int, tracker: Any) -> int:
    """Perform a tracker step of ``d`` (``CHECK``, ``RECORD`` or ``TALLY``); return the next."""
    names = d.names
    if step is CHECK:
        name = names[d.index]
        if tracker.is_available(name):
            return d.available()
        return d.cooling(tracker.cooldown_remaining(name))
    if step is RECORD:
        name = names[d.index]
        started = tracker.record_failure(name, d.judged)
        return d.recorded(started, tracker.cooldown_remaining(name) if started else 0.0)
    assert step is TALLY
    return d.tallied([tracker.cooldown_remaining(n) for n in names])


async def ask_tracker_async(d: Decision, step: int, tracker: Any) -> int:
    """The async twin of :func:`ask_tracker` (the tracker's methods are awaited)."""
    names = d.names
    if step is CHECK:
        name = names[d.index]
        if await tracker.is_available(name):
            return d.available()
        return d.cooling(await tracker.cooldown_remaining(name))
    if step is RECORD:
        name = names[d.index]
        started = await tracker.record_failure(name, d.judged)
        return d.recorded(started, await tracker.cooldown_remaining(name) if started else 0.0)
    assert step is TALLY
    return d.tallied([await tracker.cooldown_remaining(n) for n in names])


def cancelling() -> bool:
    """Whether the running task is being cancelled.

    Some client wrappers turn ``CancelledError`` into an ordinary exception; taking that for a
    provider failure (and falling over) would defeat the cancellation.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
