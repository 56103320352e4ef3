"""timeout= and attempt_timeout=."""

from __future__ import annotations

import asyncio
import time

import pytest

from resilient_routing import (
    InMemoryCooldownTracker,
    InvalidConfigError,
    RoutingError,
    RoutingTimeoutError,
    execute,
    routed,
)
from resilient_routing._routing import route as _route
from resilient_routing.testing import FakeClock


class Down(Exception):
    pass


@pytest.fixture
def deadline_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Drive the deadline clock of sync routing by hand."""
    clock = FakeClock(500.0)
    monkeypatch.setattr(_route, "default_clock", clock)
    return clock


def test_routing_timeout_error_is_a_timeout_error() -> None:
    """RoutingTimeoutError is both a RoutingError and a TimeoutError."""
    assert issubclass(RoutingTimeoutError, RoutingError)
    assert issubclass(RoutingTimeoutError, TimeoutError)


def test_sync_no_attempt_starts_past_the_deadline(deadline_clock: FakeClock) -> None:
    """Sync: an attempt never starts past timeout, the terminus included."""
    calls: list[str] = []

    @routed(providers=["a", "b", "c"], timeout=10, cooldown=None)
    def call(provider: str) -> str:
        calls.append(provider)
        deadline_clock.advance(6)
        raise Down(provider)

    with pytest.raises(RoutingTimeoutError) as info:
        call()
    assert calls == ["a", "b"]
    assert [n for n, _ in info.value.failures] == ["a", "b"]
    assert info.value.timeout == 10
    assert isinstance(info.value.__cause__, Down)
    assert str(info.value) == "routing timed out after 10 s (2 failed attempts)"


def test_sync_within_deadline_succeeds(deadline_clock: FakeClock) -> None:
    """A call that succeeds before the deadline is unaffected by it."""

    def fn(provider: str) -> str:
        deadline_clock.advance(4)
        if provider == "a":
            raise Down()
        return provider

    assert execute(["a", "b"], fn, timeout=10, cooldown=None).provider == "b"


def test_sync_attempt_timeout_refused() -> None:
    """attempt_timeout cannot interrupt sync code: refused with the reason."""
    with pytest.raises(InvalidConfigError, match="attempt_timeout needs an async"):

        @routed(providers=["a"], attempt_timeout=1)
        def call(provider: str) -> str:
            return provider


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "1", True])
def test_timeouts_validated(bad: object) -> None:
    """Timeouts must be positive numbers of seconds."""
    with pytest.raises(InvalidConfigError, match="timeout"):
        routed(providers=["a"], timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="attempt_timeout"):
        routed(providers=["a"], attempt_timeout=bad)  # type: ignore[arg-type]


async def test_async_attempt_timeout_falls_over(clock: FakeClock) -> None:
    """Async: an attempt past attempt_timeout is cancelled and falls over, counted as failed."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, clock=clock)
    cancelled: list[str] = []

    @routed(providers=["slow", "fast"], attempt_timeout=0.02, cooldown=tracker)
    async def call(provider: str) -> str:
        if provider == "slow":
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(provider)
                raise
        return provider

    result = await call.execute()
    assert result.provider == "fast"
    timeout = result.failures[0][1]
    assert isinstance(timeout, TimeoutError)
    assert str(timeout) == "provider 'slow' did not answer within attempt_timeout=0.02 s"
    assert cancelled == ["slow"]
    assert not tracker.is_available("slow")


async def test_attempt_timeout_falls_over_whatever_fallback_on_says(clock: FakeClock) -> None:
    """The route's own limit is not a provider error for fallback_on to judge: it falls over."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, clock=clock)

    class RateLimited(Exception):
        pass

    @routed(
        providers=["slow", "fast"],
        attempt_timeout=0.02,
        cooldown=tracker,
        fallback_on=RateLimited,
    )
    async def call(provider: str) -> str:
        if provider == "slow":
            await asyncio.sleep(60)
        return provider

    assert await call() == "fast"
    assert not tracker.is_available("slow")


async def test_async_attempt_timeout_can_be_kept_out_of_cooldown(clock: FakeClock) -> None:
    """cooldown_on can leave timed-out attempts uncounted."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, clock=clock)

    @routed(
        providers=["slow", "fast"],
        attempt_timeout=0.02,
        cooldown=tracker,
        cooldown_on=lambda e: not isinstance(e, TimeoutError),
    )
    async def call(provider: str) -> str:
        if provider == "slow":
            await asyncio.sleep(60)
        return provider

    assert await call() == "fast"
    assert tracker.is_available("slow")


async def test_async_whole_timeout_raises_and_records_nothing(clock: FakeClock) -> None:
    """Async: running out of timeout cancels the attempt, raises, and records no failure."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, clock=clock)
    calls: list[str] = []

    @routed(providers=["a", "b", "c"], timeout=0.05, cooldown=tracker)
    async def call(provider: str) -> str:
        calls.append(provider)
        if provider == "a":
            raise Down()
        await asyncio.sleep(60)
        return provider

    with pytest.raises(RoutingTimeoutError) as info:
        await call()
    assert calls == ["a", "b"]
    assert [n for n, _ in info.value.failures] == ["a"]
    assert tracker.is_available("b"), "the caller's deadline is not the provider's failure"
    assert not tracker.is_available("a")


async def test_async_provider_timeout_error_is_an_ordinary_failure() -> None:
    """A TimeoutError raised by the provider itself (not our deadline) falls over."""

    @routed(providers=["a", "b"], timeout=5, cooldown=None)
    async def call(provider: str) -> str:
        if provider == "a":
            raise TimeoutError("upstream read timeout")
        return provider

    assert await call() == "b"


async def test_async_attempt_timeout_bounded_by_whole_timeout() -> None:
    """When the call's deadline comes before attempt_timeout, RoutingTimeoutError is raised."""

    @routed(providers=["a", "b"], timeout=0.03, attempt_timeout=10, cooldown=None)
    async def call(provider: str) -> str:
        await asyncio.sleep(60)
        return provider

    with pytest.raises(RoutingTimeoutError):
        await call()


class StalledTracker:
    """An async tracker one of whose methods does not answer (a stalled connection)."""

    def __init__(self, stalls: str) -> None:
        self.inner = InMemoryCooldownTracker()
        self.stalls = stalls

    async def _answer(self, method: str) -> None:
        if method == self.stalls:
            await asyncio.sleep(30)

    async def is_available(self, name: str) -> bool:
        await self._answer("is_available")
        return self.inner.is_available(name)

    async def cooldown_remaining(self, name: str) -> float:
        await self._answer("cooldown_remaining")
        return self.inner.cooldown_remaining(name)

    async def record_failure(self, name: str, exc: BaseException) -> bool:
        await self._answer("record_failure")
        return self.inner.record_failure(name, exc)

    async def record_success(self, name: str) -> None:
        await self._answer("record_success")
        self.inner.record_success(name)

    async def reset(self, name: str | None = None) -> None:
        self.inner.reset(name)


@pytest.mark.parametrize("stalls", ["is_available", "record_failure", "record_success"])
async def test_timeout_bounds_an_async_tracker_that_does_not_answer(stalls: str) -> None:
    """The call ends at its deadline: timed out, or with the answer it had.

    (When only recording that answer's success stalled, the success goes unrecorded.)
    """

    @routed(providers=["a", "b"], timeout=0.2, cooldown=StalledTracker(stalls))
    async def call(provider: str) -> str:
        if provider == "a":
            raise ConnectionError("a is down")
        return provider

    started = time.monotonic()
    async with asyncio.timeout(5):  # the bound the test itself never needs
        if stalls == "record_success":
            assert await call() == "b"
        else:
            with pytest.raises(RoutingTimeoutError):
                await call()
    assert time.monotonic() - started < 1.0


async def test_a_hung_first_choice_cut_by_the_deadline_past_slow_call_cools_down() -> None:
    """Cut by the call's deadline past ``slow_call``: a slow call, recorded.

    The call times out; the next one does not wait on that provider again (as hedged losers).
    """
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=60)
    calls: list[str] = []

    @routed(providers=["a", "b"], timeout=0.2, slow_call=0.05, cooldown=tracker)
    async def call(provider: str) -> str:
        calls.append(provider)
        if provider == "a":
            await asyncio.sleep(30)
        return provider

    with pytest.raises(RoutingTimeoutError):
        await call()
    assert not tracker.is_available("a")
    assert await call() == "b" and calls == ["a", "b"]


async def test_a_first_choice_cut_by_the_deadline_within_slow_call_is_not_recorded() -> None:
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=60)

    @routed(providers=["a", "b"], timeout=0.1, slow_call=5, cooldown=tracker)
    async def call(provider: str) -> str:
        await asyncio.sleep(30)
        return provider

    with pytest.raises(RoutingTimeoutError):
        await call()
    assert tracker.is_available("a")


class LateRecorder(StalledTracker):
    """Records failures only after the call's deadline (a slow backend)."""

    def __init__(self) -> None:
        super().__init__("record_failure")


async def test_a_failure_whose_record_the_deadline_cut_is_still_in_the_timeout_error() -> None:
    @routed(providers=["a", "b"], timeout=0.2, cooldown=LateRecorder())
    async def call(provider: str) -> str:
        raise ConnectionError(f"{provider} is down")

    with pytest.raises(RoutingTimeoutError) as info:
        await call()
    assert [name for name, _ in info.value.failures] == ["a"]
    assert isinstance(info.value.__cause__, ConnectionError)


async def test_a_slow_answer_in_hand_stands_when_its_record_is_cut() -> None:
    @routed(providers=["a", "b"], timeout=0.3, slow_call=0.01, cooldown=LateRecorder())
    async def call(provider: str) -> str:
        await asyncio.sleep(0.05)
        return provider

    assert await call() == "a"
