"""Helpers for testing routed code: fake time, scripted providers, faults, cooldowns, events.

Example::

    from resilient_routing import InMemoryCooldownTracker, configure
    from resilient_routing.testing import FakeClock, force_cooldown

    clock = FakeClock()
    tracker = InMemoryCooldownTracker(cooldown=30, clock=clock)
    configure(cooldown=tracker)
    force_cooldown(tracker, "gemini", 30)   # gemini is skipped now
    clock.advance(30)                       # and available again, without sleeping

With pytest, the ``routing_tracker``, ``routing_clock`` and ``routing_events`` fixtures are
available once resilient_routing is installed (see :mod:`resilient_routing.pytest_plugin`).
"""

from __future__ import annotations

import inspect
import math

from resilient_routing.cooldown._protocol import CooldownTracker

from ._clock import FakeClock
from ._events import EventRecorder
from ._faults import Fault, FaultInjector, InjectedFaultError, InjectedTimeoutError
from ._scripted import Delayed, ScriptedProvider, ScriptExhaustedError

__all__ = [
    "Delayed",
    "EventRecorder",
    "FakeClock",
    "Fault",
    "FaultInjector",
    "InjectedFaultError",
    "InjectedTimeoutError",
    "ScriptExhaustedError",
    "ScriptedProvider",
    "assert_available",
    "assert_cooling",
    "clear_cooldown",
    "force_cooldown",
]


class _Forced(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"forced cooldown of {seconds} s")
        self.retry_after = seconds


def _sync(tracker: object) -> None:
    if inspect.iscoroutinefunction(getattr(tracker, "is_available", None)):
        raise TypeError(
            f"{type(tracker).__name__} is an async tracker: these helpers take sync trackers "
            "(InMemoryCooldownTracker, RedisCooldownTracker)"
        )


def force_cooldown(tracker: CooldownTracker, name: str, seconds: float) -> None:
    """Put ``name`` into cooldown for ``seconds`` (capped at the tracker's max_cooldown).

    Works on any tracker that honours Retry-After, through its public methods.

    Raises:
        ValueError: ``seconds`` is not a finite number > 0.
        TypeError: the tracker is async.
    """
    _sync(tracker)
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"force_cooldown() takes seconds > 0 (finite), got {seconds!r}")
    tracker.reset(name)
    tracker.record_failure(name, _Forced(seconds))


def clear_cooldown(tracker: CooldownTracker, name: str | None = None) -> None:
    """Forget the cooldown state of ``name``, or of every provider."""
    _sync(tracker)
    tracker.reset(name)


def assert_cooling(
    tracker: CooldownTracker, name: str, seconds: float | None = None, *, tolerance: float = 1e-6
) -> None:
    """Assert that ``name`` is cooling down (for ``seconds`` more, when given).

    Raises:
        AssertionError: it is available, or its remaining cooldown differs.
        TypeError: the tracker is async.
    """
    _sync(tracker)
    # cooldown_remaining only reads: is_available would claim a half-open tracker's probe.
    remaining = tracker.cooldown_remaining(name)
    if remaining <= 0:
        raise AssertionError(f"provider {name!r} is available, expected it to be cooling down")
    if seconds is not None and abs(remaining - seconds) > tolerance:
        raise AssertionError(
            f"provider {name!r} cools down for {remaining:g} s more, expected {seconds:g} s"
        )


def assert_available(tracker: CooldownTracker, name: str) -> None:
    """Assert that ``name`` is not cooling down.

    Raises:
        AssertionError: it is cooling down.
        TypeError: the tracker is async.
    """
    _sync(tracker)
    remaining = tracker.cooldown_remaining(name)  # a read: see assert_cooling
    if remaining > 0:
        raise AssertionError(
            f"provider {name!r} is cooling down for {remaining:g} s more, expected it to be "
            "available"
        )
