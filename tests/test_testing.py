"""The testing kit: FakeClock, ScriptedProvider, FaultInjector, cooldown helpers, fixtures."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from resilient_routing import InMemoryCooldownTracker, InvalidConfigError, routed
from resilient_routing.events import RoutingEvent
from resilient_routing.testing import (
    Delayed,
    FakeClock,
    Fault,
    FaultInjector,
    InjectedFaultError,
    InjectedTimeoutError,
    ScriptedProvider,
    ScriptExhaustedError,
    assert_available,
    assert_cooling,
    clear_cooldown,
    force_cooldown,
)


def test_fake_clock() -> None:
    """FakeClock moves only when advanced, never backwards."""
    clock = FakeClock(5)
    assert clock() == 5.0
    assert clock.advance(2.5) == 7.5 and clock() == 7.5
    assert repr(clock) == "FakeClock(7.5)"
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="seconds >= 0"):
            clock.advance(bad)


def test_scripted_provider_follows_its_script() -> None:
    """Steps are returned or raised in order; the last step repeats."""
    p = ScriptedProvider("p", TimeoutError, ValueError("bad"), "ok")
    with pytest.raises(TimeoutError):
        p("q")
    with pytest.raises(ValueError, match="bad"):
        p()
    assert p(1, k=2) == "ok" and p() == "ok"
    assert p.call_count == 4 and p.calls[2] == ((1,), {"k": 2})
    assert repr(p) == "ScriptedProvider('p', 3 steps)"


def test_scripted_provider_without_repeat() -> None:
    """repeat=False: a call past the script fails loudly."""
    p = ScriptedProvider("p", "once", repeat=False)
    assert p() == "once"
    with pytest.raises(ScriptExhaustedError, match="called 2 times"):
        p()


def test_scripted_delays_advance_the_fake_clock() -> None:
    """A Delayed step advances the given clock instead of sleeping."""
    clock = FakeClock()
    p = ScriptedProvider("p", Delayed(3, "slow"), Delayed(1, KeyError("k")), clock=clock)
    assert p() == "slow" and clock() == 3
    with pytest.raises(KeyError):
        p()
    assert clock() == 4


async def test_scripted_provider_async() -> None:
    """acall() is the async form, for async routed functions."""
    clock = FakeClock()
    p = ScriptedProvider("p", Delayed(2, "a"), RuntimeError, clock=clock)
    assert await p.acall() == "a" and clock() == 2
    with pytest.raises(RuntimeError):
        await p.acall()
    fast = ScriptedProvider("fast", Delayed(0.001, "b"))
    assert await fast.acall() == "b"
    assert ScriptedProvider("x")() is None


def test_scripted_providers_drive_a_routed_function() -> None:
    """A complete routed test: a flaky provider fails over to a steady one."""
    flaky = ScriptedProvider("flaky", TimeoutError(), "recovered")
    steady = ScriptedProvider("steady", "fine")

    @routed(providers=[flaky, steady], cooldown=None)
    def ask(provider: ScriptedProvider, question: str) -> str:
        return provider(question)

    assert ask.execute("q1").provider == "steady"
    assert ask("q2") == "recovered"
    assert flaky.calls == [(("q1",), {}), (("q2",), {})]


def test_fault_injector_shares_are_reproducible() -> None:
    """A seeded injector fails, times out and slows the given shares of calls."""
    slept: list[float] = []
    chaos = FaultInjector(
        {"a": Fault(failure_rate=0.2, timeout_rate=0.1, timeout_after=5, slow_rate=0.5, slow_by=2)},
        rng=random.Random(42),
        sleep=slept.append,
    )

    @chaos
    def call(provider: str) -> str:
        return provider

    outcomes: Counter[str] = Counter()
    for _ in range(5000):
        try:
            call("a")
            outcomes["ok"] += 1
        except InjectedTimeoutError:
            outcomes["timeout"] += 1
        except InjectedFaultError:
            outcomes["fail"] += 1
    assert outcomes["fail"] / 5000 == pytest.approx(0.2, abs=0.02)
    assert outcomes["timeout"] / 5000 == pytest.approx(0.1, abs=0.02)
    assert slept.count(5.0) == outcomes["timeout"]
    assert slept.count(2.0) / outcomes["ok"] == pytest.approx(0.5, abs=0.03)
    assert call("b") == "b", "providers without a fault are untouched"


def test_fault_injector_custom_error_and_switch() -> None:
    """error= builds the raised exception; disable() lets calls through."""
    chaos = FaultInjector({"a": Fault(failure_rate=1, error=lambda: ConnectionError("reset"))})

    @chaos
    def call(provider: str) -> str:
        return provider

    with pytest.raises(ConnectionError, match="reset"):
        call("a")
    chaos.disable()
    assert call("a") == "a"
    chaos.enable()
    with pytest.raises(ConnectionError):
        call("a")


async def test_fault_injector_async_under_routed() -> None:
    """Below @routed, injected failures make the routing fall over."""
    slept: list[float] = []

    async def no_sleep(seconds: float) -> None:
        slept.append(seconds)

    chaos = FaultInjector(
        {"a": Fault(timeout_rate=1, timeout_after=3), "b": Fault(slow_rate=1, slow_by=1)},
        async_sleep=no_sleep,
    )

    @routed(providers=["a", "b"], cooldown=None)
    @chaos
    async def call(provider: str, x: int) -> str:
        return f"{provider}{x}"

    result = await call.execute(1)
    assert result.response == "b1" and isinstance(result.failures[0][1], InjectedTimeoutError)
    assert slept == [3, 1]


async def test_fault_injector_on_an_async_stream_awaits_its_waits() -> None:
    """An async generator route: the injected waits are awaited, never the loop put to sleep."""
    slept: list[float] = []
    blocked: list[float] = []

    async def no_sleep(seconds: float) -> None:
        slept.append(seconds)

    chaos = FaultInjector(
        {"a": Fault(timeout_rate=1, timeout_after=3), "b": Fault(slow_rate=1, slow_by=1)},
        sleep=blocked.append,
        async_sleep=no_sleep,
    )

    @routed(providers=["a", "b"], cooldown=None)
    @chaos
    async def chat(provider: str) -> AsyncIterator[str]:
        yield f"{provider}1"
        yield f"{provider}2"

    assert [item async for item in chat()] == ["b1", "b2"]
    assert (slept, blocked) == ([3, 1], [])


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"timeout_rate": -0.1}, "timeout_rate"),
        ({"failure_rate": 0.6, "timeout_rate": 0.6}, "<= 1"),
        ({"slow_by": -1}, "slow_by"),
        ({"error": 3}, "error"),
    ],
)
def test_fault_validation(fault: dict[str, object], message: str) -> None:
    """Bad fault settings are refused."""
    with pytest.raises(InvalidConfigError, match=message):
        Fault(**fault)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="must be a Fault"):
        FaultInjector({"a": 0.5})  # type: ignore[dict-item]


def test_cooldown_helpers(clock: FakeClock) -> None:
    """force_cooldown / clear_cooldown / assert_cooling / assert_available."""
    tracker = InMemoryCooldownTracker(clock=clock, max_cooldown=100)
    force_cooldown(tracker, "a", 30)
    assert_cooling(tracker, "a", 30)
    assert_cooling(tracker, "a")
    with pytest.raises(AssertionError, match="cools down for 30 s more, expected 10 s"):
        assert_cooling(tracker, "a", 10)
    with pytest.raises(AssertionError, match="expected it to be available"):
        assert_available(tracker, "a")
    clear_cooldown(tracker, "a")
    assert_available(tracker, "a")
    with pytest.raises(AssertionError, match="expected it to be cooling down"):
        assert_cooling(tracker, "a")


def test_plugin_fixtures(
    routing_tracker: InMemoryCooldownTracker,
    routing_clock: FakeClock,
    routing_events: list[RoutingEvent],
) -> None:
    """The pytest plugin's fixtures: a global tracker on a fake clock, and the events."""
    calls: list[str] = []

    @routed(providers=["a", "b"])
    def call(provider: str) -> str:
        calls.append(provider)
        return provider

    force_cooldown(routing_tracker, "a", 10)
    assert call() == "b"
    assert [e.kind for e in routing_events][:2] == ["call_started", "provider_skipped"]
    routing_clock.advance(10)
    assert call() == "a"
    assert calls == ["b", "a"]


def test_cooldown_helpers_refuse_async_trackers_and_bad_seconds(clock: FakeClock) -> None:
    """The helpers are sync: an async tracker is refused, not silently passed."""

    class AsyncTracker:
        async def is_available(self, name: str) -> bool:
            return True

    for helper, args in [
        (force_cooldown, ("a", 1)),
        (clear_cooldown, ()),
        (assert_cooling, ("a",)),
        (assert_available, ("a",)),
    ]:
        with pytest.raises(TypeError, match="async tracker"):
            helper(AsyncTracker(), *args)  # type: ignore[operator]
    tracker = InMemoryCooldownTracker(clock=clock)
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="seconds > 0"):
            force_cooldown(tracker, "a", bad)


def test_event_recorder_keeps_every_event_in_order() -> None:
    from resilient_routing import routed
    from resilient_routing.testing import EventRecorder

    recorder = EventRecorder()

    @routed(providers=["a", "b"], cooldown=None, listeners=[recorder])
    def call(provider: str) -> str:
        if provider == "a":
            raise RuntimeError("a is down")
        return provider

    assert call() == "b"
    assert recorder.kinds() == [
        ("call_started", None),
        ("attempt_started", "a"),
        ("attempt_failed", "a"),
        ("terminus_used", "b"),
        ("attempt_started", "b"),
        ("attempt_succeeded", "b"),
        ("call_finished", "b"),
    ]
    assert [e.provider for e in recorder.of("attempt_started")] == ["a", "b"]
    assert recorder.last("attempt_failed").classification == "fell_over"
    with pytest.raises(LookupError, match=r"no 'cooldown_started' event among the 7 received"):
        recorder.last("cooldown_started")
    assert isinstance(recorder, list) and len(recorder) == 7


def test_assertions_only_read_a_half_open_tracker() -> None:
    """assert_available after a cooldown leaves the probe to the code under test."""
    clock = FakeClock()
    tracker = InMemoryCooldownTracker(cooldown=30, clock=clock, half_open=True)
    force_cooldown(tracker, "gemini", 30)
    assert_cooling(tracker, "gemini", 30)
    clock.advance(30)
    assert_available(tracker, "gemini")
    assert_available(tracker, "gemini")

    @routed(providers=["gemini", "grok"], cooldown=tracker)
    def generate(provider: str) -> str:
        return provider

    assert generate.execute().provider == "gemini"  # it holds the probe, and it answered
