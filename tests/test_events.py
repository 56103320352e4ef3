"""Routing events and listeners."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    InvalidConfigError,
    configure,
    routed,
)
from resilient_routing.events import (
    AttemptFailed,
    CallFinished,
    CooldownStarted,
    ProviderSkipped,
    RoutingEvent,
    RoutingExhausted,
    TerminusUsed,
)
from resilient_routing.testing import EventRecorder

from .harness import Harness


class Down(Exception):
    pass


def test_events_of_a_fallback(h: Harness, tracker: InMemoryCooldownTracker) -> None:
    """A call that skips, fails over and ends on the terminus emits each step in order."""
    tracker.record_failure("a", Down())
    rec = EventRecorder()
    h.routed({"b": Down("b")}, providers=["a", "b", "t"], cooldown=tracker, listeners=[rec])()
    assert rec.kinds() == [
        ("call_started", None),
        ("provider_skipped", "a"),
        ("attempt_started", "b"),
        ("attempt_failed", "b"),
        ("cooldown_started", "b"),
        ("terminus_used", "t"),
        ("attempt_started", "t"),
        ("attempt_succeeded", "t"),
        ("call_finished", "t"),
    ]
    by_kind = {e.kind: e for e in rec}
    failed = by_kind["attempt_failed"]
    assert isinstance(failed, AttemptFailed)
    assert failed.classification == "counted" and isinstance(failed.exception, Down)
    assert failed.attempt == 1
    cooldown = by_kind["cooldown_started"]
    assert isinstance(cooldown, CooldownStarted) and cooldown.duration == pytest.approx(60)
    skipped = by_kind["provider_skipped"]
    assert isinstance(skipped, ProviderSkipped) and skipped.cooldown_remaining == pytest.approx(60)
    terminus = by_kind["terminus_used"]
    assert isinstance(terminus, TerminusUsed) and terminus.in_cooldown is False
    finished = by_kind["call_finished"]
    assert isinstance(finished, CallFinished) and finished.outcome == "success"
    assert len({e.call_id for e in rec}) == 1
    assert all(e.function.endswith("call") for e in rec)
    times = [e.time for e in rec]
    assert times == sorted(times)


def test_classification_of_failures(h: Harness, tracker: InMemoryCooldownTracker) -> None:
    """Failures are told apart: propagated, fell over, counted toward a cooldown."""
    rec = EventRecorder()
    call = h.routed(
        {"a": TimeoutError(), "b": Down(), "t": KeyError("bad")},
        providers=["a", "b", "t"],
        cooldown=tracker,
        fallback_on=(TimeoutError, Down),
        cooldown_on=Down,
        listeners=[rec],
    )
    with pytest.raises(KeyError):
        call()
    failed = [e for e in rec if isinstance(e, AttemptFailed)]
    assert [(e.provider, e.classification) for e in failed] == [
        ("a", "fell_over"),
        ("b", "counted"),
        ("t", "propagated"),
    ]
    assert isinstance(rec[-1], CallFinished) and rec[-1].outcome == "propagated"


def test_exhausted_event(h: Harness, tracker: InMemoryCooldownTracker) -> None:
    """All failing: routing_exhausted with the failures, then call_finished 'exhausted'."""
    rec = EventRecorder()
    with pytest.raises(AllProvidersFailedError):
        h.routed(
            {"a": Down(), "t": Down()}, providers=["a", "t"], cooldown=tracker, listeners=[rec]
        )()
    exhausted = [e for e in rec if isinstance(e, RoutingExhausted)]
    assert len(exhausted) == 1 and [n for n, _ in exhausted[0].failures] == ["a", "t"]
    assert exhausted[0].retry_after == pytest.approx(60)
    assert rec[-1].kind == "call_finished" and rec[-1].outcome == "exhausted"  # type: ignore[attr-defined]


async def test_cancelled_call_finishes() -> None:
    """A cancelled async call still emits call_finished, with outcome 'cancelled'."""
    rec = EventRecorder()
    entered = asyncio.Event()

    @routed(providers=["a"], cooldown=None, listeners=[rec])
    async def call(provider: str) -> str:
        entered.set()
        await asyncio.sleep(60)
        return provider

    task = asyncio.create_task(call())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec[-1].kind == "call_finished" and rec[-1].outcome == "cancelled"  # type: ignore[attr-defined]


def test_global_and_function_listeners_both_hear(h: Harness) -> None:
    """Global listeners (configure) and a function's own both receive every event."""
    mine, everyone = EventRecorder(), EventRecorder()
    configure(listeners=[everyone])
    h.routed(providers=["a"], cooldown=None, listeners=[mine])()
    h.routed(providers=["a"], cooldown=None)()
    assert len(mine) == 4
    assert len(everyone) == 8


def test_a_listener_given_twice_hears_each_event_once(h: Harness) -> None:
    """Globally and to the function, or twice in one list: once (a span opened once)."""
    both = EventRecorder()
    configure(listeners=[both, both])
    h.routed(providers=["a"], cooldown=None, listeners=[both, both])()
    assert [e.kind for e in both] == [
        "call_started",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]


def test_each_new_broken_listener_is_logged_once_to_the_calls_logger(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Listeners made and dropped one after another are each logged (ids are reused)."""
    logger = logging.getLogger("resilient_routing.tests.listeners")

    class Broken:
        def on_event(self, event: RoutingEvent) -> None:
            raise RuntimeError("listener bug")

    caplog.set_level(logging.ERROR, logger.name)
    for _ in range(20):
        call = h.routed(providers=["a"], cooldown=None, listeners=[Broken()], logger=logger)
        call()
        call()
        del call
    errors = [r for r in caplog.records if r.message.startswith("routing listener failed")]
    assert len(errors) == 20
    assert {r.name for r in errors} == {logger.name}


def test_raising_listener_never_breaks_a_call(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """A listener that raises is logged once; the call and other listeners go on."""

    class Broken:
        def on_event(self, event: RoutingEvent) -> None:
            raise RuntimeError("listener bug")

    rec = EventRecorder()
    caplog.set_level(logging.ERROR, "resilient_routing")
    call = h.routed(providers=["a"], cooldown=None, listeners=[Broken(), rec])
    assert call().response == "ok:a"
    assert call().response == "ok:a"
    errors = [r for r in caplog.records if r.message.startswith("routing listener failed")]
    assert len(errors) == 1 and errors[0].error == "listener bug"  # type: ignore[attr-defined]
    assert len(rec) == 8


def test_no_listener_no_event_work(h: Harness) -> None:
    """Without listeners, calls carry no call id (nothing is built for events)."""
    from resilient_routing._routing import report

    seen: list[Any] = []
    original = report._emit
    report._emit = lambda *a, **k: seen.append(a)  # type: ignore[assignment]
    try:
        h.routed({"a": Down()}, providers=["a", "b"], cooldown=None)()
    finally:
        report._emit = original  # type: ignore[assignment]
    assert seen == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([object()], "on_event"),
        ("x", "list of listeners"),
        (3, "list of listeners"),
        (EventRecorder(), r"got the listener \[\] itself: pass \[it\]"),
        ([EventRecorder], "got the class"),
    ],
)
def test_bad_listeners_refused(bad: object, message: str) -> None:
    """Listeners must be objects with on_event, in a list (a bare EventRecorder is a list)."""
    with pytest.raises(InvalidConfigError, match=message):
        routed(providers=["a"], listeners=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match=message):
        configure(listeners=bad)  # type: ignore[arg-type]


def test_hedged_events_name_parallel_attempts() -> None:
    """Hedged attempts emit attempt events too, each provider once."""
    import threading

    from resilient_routing.strategies import Hedged

    rec = EventRecorder()
    release = threading.Event()

    @routed(
        providers=["slow", "fast", "t"], strategy=Hedged(delay=0.01), cooldown=None, listeners=[rec]
    )
    def call(provider: str) -> str:
        if provider == "slow":
            release.wait(5)
        return provider

    assert call() == "fast"
    release.set()
    started = [e.provider for e in rec if e.kind == "attempt_started"]
    assert started == ["slow", "fast"]


@dataclasses.dataclass(frozen=True)
class EqualSink:
    """Listeners that compare equal (a frozen dataclass) are still distinct listeners."""

    label: str = "audit"

    def on_event(self, event: RoutingEvent) -> None:
        raise RuntimeError(f"{self.label} sink is down")


class UnhashableSink:
    def __hash__(self) -> int:
        raise AttributeError("no key yet")

    def on_event(self, event: RoutingEvent) -> None:
        raise RuntimeError("down")


def test_each_failing_listener_object_is_logged_whatever_it_equals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Logged once per object: equal ones apart, and one whose hash raises breaks nothing."""
    first, second = EqualSink(), EqualSink()
    assert first == second
    calls = [
        routed(providers=["a"], cooldown=None, listeners=[listener])(lambda provider: provider)
        for listener in (first, second, UnhashableSink())
    ]
    with caplog.at_level(logging.ERROR, logger="resilient_routing"):
        assert [call() for call in calls] == ["a", "a", "a"]
    failed = [r for r in caplog.records if "routing listener failed" in r.getMessage()]
    assert len(failed) == 3
