"""A clock that moves only when told to."""

from __future__ import annotations

import math
import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A monotonic clock that only moves when told to; pass it as a tracker's ``clock``.

    Args:
        start: the initial reading, in seconds.
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current reading, in seconds."""
        return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new reading.

        Raises:
            ValueError: ``seconds`` is negative or not finite (a monotonic clock never goes
                back).
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"FakeClock.advance() takes seconds >= 0, got {seconds!r}")
        with self._lock:
            self._now += seconds
            return self._now
