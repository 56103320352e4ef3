"""Tracker backends under test, seen through one synchronous interface.

Each backend builds a fresh tracker on a FakeClock so the contract suite can run against every
backend alike; async backends are driven through an event loop of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from resilient_routing import InMemoryCooldownTracker
from resilient_routing.testing import FakeClock


class SyncTracker(Protocol):
    def is_available(self, name: str) -> bool: ...
    def cooldown_remaining(self, name: str) -> float: ...
    def record_failure(self, name: str, exc: BaseException) -> bool: ...
    def record_success(self, name: str) -> None: ...
    def reset(self, name: str | None = None) -> None: ...


@dataclass
class Backend:
    """Builds trackers of one kind: ``make(clock, wall_clock, **policy) -> SyncTracker``."""

    name: str
    make: Callable[..., SyncTracker]
    close: Callable[[], None] = lambda: None


def memory_backend() -> Backend:
    def make(clock: FakeClock, wall_clock: Callable[[], float], **policy: Any) -> SyncTracker:
        return InMemoryCooldownTracker(clock=clock, wall_clock=wall_clock, **policy)

    return Backend("memory", make)
