"""slow_call: a slow answer is returned, and recorded as the provider's failure."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import AsyncIterator, Iterator

import pytest

from resilient_routing import (
    InMemoryCooldownTracker,
    InvalidConfigError,
    SlowCallError,
    routed,
)
from resilient_routing._routing import route as route_module
from resilient_routing.events import RoutingEvent
from resilient_routing.strategies import Hedged
from resilient_routing.testing import EventRecorder, FakeClock


class Down(Exception):
    pass


@pytest.fixture
def routing_clock(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock of latencies: a provider "takes" as long as the test advances it."""
    monkeypatch.setattr(route_module, "default_clock", clock)
    return clock


@pytest.fixture
def cooling(clock: FakeClock) -> InMemoryCooldownTracker:
    return InMemoryCooldownTracker(failure_threshold=1, cooldown=60, clock=clock)


def test_a_slow_answer_is_returned_and_cools_the_provider(
    routing_clock: FakeClock, cooling: InMemoryCooldownTracker
) -> None:
    @routed(providers=["a", "b"], cooldown=cooling, slow_call=10.0)
    def call(provider: str) -> str:
        if provider == "a":
            routing_clock.advance(12.5)
        return provider

    assert call() == "a"  # the caller still gets the slow answer
    assert not cooling.is_available("a")
    assert call() == "b"  # the next call skips it


def test_an_answer_within_the_limit_is_a_success(
    routing_clock: FakeClock, cooling: InMemoryCooldownTracker
) -> None:
    cooling.record_failure("a", Down())
    routing_clock.advance(60.0)

    @routed(providers=["a", "b"], cooldown=cooling, slow_call=10.0)
    def call(provider: str) -> str:
        routing_clock.advance(9.0)
        return provider

    assert call() == "a"
    assert cooling.states() == []  # the success cleared a's failures


def test_slow_call_error_says_what_happened() -> None:
    error = SlowCallError("a", 12.5, 10.0)
    assert str(error) == "provider 'a' answered in 12.5 s, slower than slow_call=10 s"
    assert (error.provider, error.latency, error.limit) == ("a", 12.5, 10.0)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.provider, copy.latency, copy.limit) == ("a", 12.5, 10.0)


def test_the_tracker_receives_a_slow_call_error(routing_clock: FakeClock) -> None:
    seen: list[BaseException] = []

    class Spy(InMemoryCooldownTracker):
        def record_failure(self, name: str, exc: BaseException) -> bool:
            seen.append(exc)
            return super().record_failure(name, exc)

    @routed(providers=["a", "b"], cooldown=Spy(), slow_call=1.0)
    def call(provider: str) -> str:
        routing_clock.advance(3.0)
        return provider

    call()
    (error,) = seen
    assert isinstance(error, SlowCallError) and error.latency == pytest.approx(3.0)


def test_exempt_and_cooldown_on_leave_a_slow_answer_uncounted(
    routing_clock: FakeClock, cooling: InMemoryCooldownTracker, caplog: pytest.LogCaptureFixture
) -> None:
    def slow(provider: str) -> str:
        routing_clock.advance(5.0)
        return provider

    exempt = routed(providers=["a", "b"], cooldown=cooling, slow_call=1.0, exempt={"a"})(slow)
    lenient = routed(
        providers=["a", "b"],
        cooldown=cooling,
        slow_call=1.0,
        cooldown_on=lambda e: not isinstance(e, SlowCallError),
    )(slow)
    assert exempt() == "a" and lenient() == "a"
    assert cooling.is_available("a")
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("provider answered slowly: 'a' in 5 s (slow_call=1 s), not counted") == 2


def test_a_slow_answer_is_logged_and_heard(
    routing_clock: FakeClock, cooling: InMemoryCooldownTracker, caplog: pytest.LogCaptureFixture
) -> None:
    rec = EventRecorder()

    @routed(providers=["a", "b"], cooldown=cooling, slow_call=2.0, listeners=[rec])
    def call(provider: str) -> str:
        routing_clock.advance(4.0)
        return provider

    assert call() == "a"
    assert "provider answered slowly: 'a' in 4 s (slow_call=2 s)" in [
        r.getMessage() for r in caplog.records
    ]
    (slow,) = rec.of("slow_call")
    assert (slow.latency, slow.limit, slow.counted) == (4.0, 2.0, True)
    assert rec.kinds()[-4:] == [
        ("attempt_succeeded", "a"),
        ("slow_call", "a"),
        ("cooldown_started", "a"),
        ("call_finished", "a"),
    ]
    assert rec.of("call_finished")[0].outcome == "success"


async def test_async_slow_answer(clock: FakeClock, cooling: InMemoryCooldownTracker) -> None:
    @routed(providers=["a", "b"], cooldown=cooling, slow_call=0.02)
    async def call(provider: str) -> str:
        await asyncio.sleep(0.05)
        return provider

    assert await call() == "a"
    assert not cooling.is_available("a")


async def test_hedged_winner_that_was_slow_is_recorded(cooling: InMemoryCooldownTracker) -> None:
    @routed(providers=["a", "b"], cooldown=cooling, slow_call=0.02, strategy=Hedged(delay=0.5))
    async def call(provider: str) -> str:
        await asyncio.sleep(0.05)
        return provider

    assert await call() == "a"
    assert not cooling.is_available("a")


async def test_a_stream_slow_to_its_first_item(cooling: InMemoryCooldownTracker) -> None:
    @routed(providers=["a", "b"], cooldown=cooling, slow_call=0.02)
    async def chat(provider: str) -> AsyncIterator[str]:
        await asyncio.sleep(0.05)
        yield provider
        yield "!"

    assert [item async for item in chat()] == ["a", "!"]  # the stream is the consumer's
    assert not cooling.is_available("a")  # its time to first item counted against it


def test_a_sync_stream_slow_to_its_first_item(
    routing_clock: FakeClock, cooling: InMemoryCooldownTracker
) -> None:
    @routed(providers=["a", "b"], cooldown=cooling, slow_call=1.0)
    def chat(provider: str) -> Iterator[str]:
        routing_clock.advance(2.0)
        yield provider
        routing_clock.advance(10.0)  # later items take what they take
        yield "!"

    assert list(chat()) == ["a", "!"]
    assert not cooling.is_available("a")


def test_slow_call_is_checked() -> None:
    with pytest.raises(InvalidConfigError, match="slow_call"):
        routed(providers=["a"], slow_call=0)
    with pytest.raises(InvalidConfigError, match="slow_call"):
        routed(providers=["a"], slow_call="10")  # type: ignore[arg-type]


async def test_a_hedge_loser_unanswered_past_slow_call_is_recorded_slow(
    cooling: InMemoryCooldownTracker,
) -> None:
    """Beaten by a hedge and stopped past slow_call: slow, whatever it would have answered."""
    rec = EventRecorder()

    @routed(
        providers=["a", "b"],
        cooldown=cooling,
        slow_call=0.03,
        strategy=Hedged(delay=0.05),
        listeners=[rec],
    )
    async def call(provider: str) -> str:
        if provider == "a":
            await asyncio.sleep(30)  # hangs
        return provider

    assert await call() == "b"
    assert not cooling.is_available("a")
    (slow,) = rec.of("slow_call")
    assert slow.provider == "a" and slow.latency > 0.03


async def test_a_hedge_loser_within_slow_call_is_not_recorded(
    cooling: InMemoryCooldownTracker,
) -> None:
    @routed(providers=["a", "b"], cooldown=cooling, slow_call=5.0, strategy=Hedged(delay=0.02))
    async def call(provider: str) -> str:
        if provider == "a":
            await asyncio.sleep(30)
        await asyncio.sleep(0.01)
        return provider

    assert await call() == "b"
    assert cooling.is_available("a")


def test_a_sync_hedge_loser_that_ends_past_slow_call_is_recorded_slow() -> None:
    import threading

    release = threading.Event()
    cooled = threading.Event()
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=60)
    rec = EventRecorder()

    class Cooled:
        def on_event(self, event: RoutingEvent) -> None:
            if event.kind == "cooldown_started":
                cooled.set()

    @routed(
        providers=["a", "b"],
        cooldown=tracker,
        slow_call=0.02,
        strategy=Hedged(delay=0.02),
        listeners=[rec, Cooled()],
    )
    def call(provider: str) -> str:
        if provider == "a":
            release.wait(10)  # runs on until the test lets it go
        return provider

    assert call() == "b"
    release.set()
    # The loser ends in its thread, past slow_call: recorded, its cooldown reported there.
    assert cooled.wait(10)
    assert [e.provider for e in rec.of("cooldown_started")] == ["a"]
    assert not tracker.is_available("a")


def test_a_provider_raising_slow_call_error_is_a_failure_like_any(
    cooling: InMemoryCooldownTracker,
) -> None:
    """SlowCallError is public: a provider (or a wrapper of its) may raise one. It falls over."""

    @routed(providers=["a", "b"], cooldown=cooling)
    def call(provider: str) -> str:
        if provider == "a":
            raise SlowCallError("upstream", 2.0, 1.0)
        return provider

    result = call.execute()
    assert (result.provider, result.response) == ("b", "b")
    assert [(name, type(exc)) for name, exc in result.failures] == [("a", SlowCallError)]
    assert not cooling.is_available("a")


class Broken(InMemoryCooldownTracker):
    """A tracker whose writes fail (a backend of the user's own, down)."""

    def record_failure(self, name: str, exc: BaseException) -> bool:
        raise RuntimeError("tracker down")


def test_a_slow_first_item_whose_recording_fails_closes_the_stream(
    routing_clock: FakeClock, clock: FakeClock
) -> None:
    closed: list[str] = []

    @routed(providers=["a", "b"], cooldown=Broken(clock=clock), slow_call=1.0)
    def chat(provider: str) -> Iterator[str]:
        try:
            routing_clock.advance(2.0)
            yield provider
            yield "!"
        finally:
            closed.append(provider)

    stream = chat()
    with pytest.raises(RuntimeError, match="tracker down"):
        next(stream)
    assert closed == ["a"]  # closed at once, not when the garbage collector gets to it


async def test_async_slow_first_item_whose_recording_fails_closes_the_stream(
    clock: FakeClock,
) -> None:
    closed: list[str] = []

    @routed(providers=["a", "b"], cooldown=Broken(clock=clock), slow_call=0.01)
    async def chat(provider: str) -> AsyncIterator[str]:
        try:
            await asyncio.sleep(0.03)
            yield provider
            yield "!"
        finally:
            closed.append(provider)

    stream = chat()
    with pytest.raises(RuntimeError, match="tracker down"):
        await stream.__anext__()
    assert closed == ["a"]
