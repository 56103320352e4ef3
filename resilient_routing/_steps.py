"""The I/O steps every runner shares: admitting a provider, and taking a failure.

Each exists as a sync and an async twin (the async one awaits the tracker); the decisions
inside are ``Call``'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._call import Call

__all__ = ["admit_async", "admit_sync", "cancelled_check", "fail_async", "fail_sync"]


def admit_sync(call: Call, tracker: Any, i: int) -> bool:
    """Return whether provider ``i`` is called now (its slot, its cooldown, the terminus)."""
    if not call.admits(i):
        return False
    if tracker is None:
        return True
    name = call.names[i]
    return tracker.is_available(name) or call.admit_cooling(i, tracker.cooldown_remaining(name))


async def admit_async(call: Call, tracker: Any, i: int) -> bool:
    """The async twin of :func:`admit_sync`."""
    if not call.admits(i):
        return False
    if tracker is None:
        return True
    name = call.names[i]
    return await tracker.is_available(name) or call.admit_cooling(
        i, await tracker.cooldown_remaining(name)
    )


def fail_sync(call: Call, tracker: Any, i: int, raised: Exception, latency: float) -> None:
    """Judge, log and record a failed attempt; raise when the routing must stop here.

    Raises:
        Exception: ``raised`` itself, when it must propagate (outside ``fallback_on``) or the
            strategy makes a single attempt.
    """
    exc = call.classify(i, raised, latency)
    if exc is None:
        raise raised
    name = call.names[i]
    counted = tracker is not None and call.records(i, exc)
    started = counted and tracker.record_failure(name, exc)
    single = call.failed(i, raised, exc, counted, latency)
    if started:
        call.cooling_started(i, tracker.cooldown_remaining(name))
    if single:
        raise raised


def cancelled_check(raised: Exception) -> None:
    """Stop the routing when the task is being cancelled, whatever the provider raised.

    Some client wrappers turn ``CancelledError`` into an ordinary exception; counting that as a
    provider failure (and falling over) would defeat the cancellation.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from raised


async def fail_async(call: Call, tracker: Any, i: int, raised: Exception, latency: float) -> None:
    """The async twin of :func:`fail_sync` (the tracker's methods are awaited).

    Raises:
        asyncio.CancelledError: the task is being cancelled (nothing is recorded).
    """
    cancelled_check(raised)
    exc = call.classify(i, raised, latency)
    if exc is None:
        raise raised
    name = call.names[i]
    counted = tracker is not None and call.records(i, exc)
    started = counted and await tracker.record_failure(name, exc)
    single = call.failed(i, raised, exc, counted, latency)
    if started:
        call.cooling_started(i, await tracker.cooldown_remaining(name))
    if single:
        raise raised
