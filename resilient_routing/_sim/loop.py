"""An asyncio event loop on virtual time: sleeping costs nothing, order is reproducible.

When nothing is ready, the loop jumps its clock to the next timer instead of waiting for it,
so an hour of traffic runs in seconds. Only for code that does no real I/O (the simulator's
providers only sleep).
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

__all__ = ["VirtualTimeLoop"]


class _JumpingSelector(selectors.DefaultSelector):
    """Polls real file descriptors (the loop's wake-up pipe) without waiting; waiting is a jump."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        if timeout is not None and timeout > 0:
            self.now += timeout
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is virtual seconds from 0, jumping over idle waits."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        """Return the virtual time in seconds."""
        return self._jumping.now
