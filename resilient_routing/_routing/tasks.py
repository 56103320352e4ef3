"""What the async drivers ask of asyncio."""

from __future__ import annotations

import asyncio

__all__ = ["cancelling"]


def cancelling() -> bool:
    """Whether the running task is being cancelled.

    Some client wrappers turn ``CancelledError`` into an ordinary exception; taking that for a
    provider failure (and falling over) would defeat the cancellation.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
