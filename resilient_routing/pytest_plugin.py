"""pytest fixtures for testing routed code (registered through the ``pytest11`` entry point).

- ``routing_clock``: a :class:`~resilient_routing.testing.FakeClock`.
- ``routing_tracker``: a fresh global configuration for the test (no exempt providers, no
  listeners) whose tracker is an ``InMemoryCooldownTracker`` on ``routing_clock``; the previous
  configuration comes back after the test.
- ``routing_events``: every routing event of the test, an ``EventRecorder`` (a list; a
  global listener).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._config import configure, get_config
from .cooldown._memory import InMemoryCooldownTracker
from .testing import EventRecorder, FakeClock

__all__ = ["routing_clock", "routing_events", "routing_tracker"]


@pytest.fixture
def routing_clock() -> FakeClock:
    """A fake monotonic clock for trackers."""
    return FakeClock()


@pytest.fixture
def routing_tracker(routing_clock: FakeClock) -> Iterator[InMemoryCooldownTracker]:
    """A fresh global configuration around a tracker on ``routing_clock``."""
    saved = get_config()
    tracker = InMemoryCooldownTracker(clock=routing_clock)
    configure(cooldown=tracker, exempt_providers=(), listeners=())
    try:
        yield tracker
    finally:
        configure(
            cooldown=saved.cooldown,
            exempt_providers=saved.exempt_providers,
            logger=saved.logger,
            listeners=saved.listeners,
        )


@pytest.fixture
def routing_events(routing_tracker: InMemoryCooldownTracker) -> EventRecorder:
    """Every routing event of the test, in order: an :class:`~.testing.EventRecorder`."""
    recorder = EventRecorder()
    configure(listeners=[recorder])
    return recorder
