"""Half-open recovery: one probe after a cooldown, on every tracker (and one per fleet on Redis).

The rules run on a FakeClock against every backend: in memory, and Redis (sync and async, with
the local view kept by pub/sub or asking Redis at every check). The fleet rule (one probe
across several trackers sharing a prefix) runs against the real server with many threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilient_routing import InMemoryCooldownTracker, InvalidConfigError, routed
from resilient_routing.cooldown import CooldownPolicy, RedisCooldownTracker
from resilient_routing.testing import EventRecorder, FakeClock

from . import redis_support
from .trackers import Backend, SyncTracker, memory_backend


class Boom(Exception):
    pass


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("429")
        self.retry_after = retry_after


@pytest.fixture(params=["memory", "redis", "redis-async", "redis-poll", "redis-async-poll"])
def any_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield memory_backend()
        return
    made = redis_support.backend(request.param)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def make(
    any_backend: Backend, clock: FakeClock, wall_clock: Callable[[], float]
) -> Callable[..., SyncTracker]:
    def make(**policy: Any) -> SyncTracker:
        policy.setdefault("failure_threshold", 1)
        policy.setdefault("cooldown", 10.0)
        policy.setdefault("max_cooldown", 300.0)
        policy.setdefault("half_open", True)
        policy.setdefault("probe_timeout", 5.0)
        return any_backend.make(clock=clock, wall_clock=wall_clock, **policy)

    return make


def cooled(make: Callable[..., SyncTracker], clock: FakeClock, **policy: Any) -> SyncTracker:
    """A tracker whose provider "a" cooled down once and whose cooldown just ended."""
    t = make(**policy)
    while not t.record_failure("a", Boom()):
        pass
    clock.advance(10.0)
    return t


def test_the_first_caller_after_a_cooldown_claims_the_probe(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    t = cooled(make, clock)
    assert t.is_available("a") is True  # the probe
    assert [t.is_available("a") for _ in range(5)] == [False] * 5  # everyone else waits
    assert t.cooldown_remaining("a") == pytest.approx(5.0, abs=0.01)  # the probe's claim


def test_a_probe_that_succeeds_closes_the_provider_for_everyone(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    t = cooled(make, clock)
    assert t.is_available("a") is True
    t.record_success("a")
    assert [t.is_available("a") for _ in range(3)] == [True] * 3
    assert t.cooldown_remaining("a") == 0.0
    assert t.record_failure("a", Boom()) is True  # a fresh start: level 1 again
    assert t.cooldown_remaining("a") == pytest.approx(10.0, abs=0.01)


def test_a_probe_that_fails_starts_the_next_grown_cooldown_at_once(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    t = cooled(make, clock, failure_threshold=3)
    assert t.is_available("a") is True
    assert t.record_failure("a", Boom()) is True  # one failure, whatever the threshold
    assert t.is_available("a") is False
    assert t.cooldown_remaining("a") == pytest.approx(20.0, abs=0.01)  # level 2: grown


def test_an_unanswered_probe_is_claimed_again_after_probe_timeout(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    t = cooled(make, clock)
    assert t.is_available("a") is True
    clock.advance(4.9)
    assert t.is_available("a") is False
    clock.advance(0.2)  # the claim ran out without an outcome
    assert [t.is_available("a") for _ in range(4)] == [True, False, False, False]


def test_a_claim_outliving_a_failed_probe_does_not_delay_the_next_recovery(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    t = cooled(make, clock, probe_timeout=60.0)
    assert t.is_available("a") is True
    clock.advance(1.0)
    assert t.record_failure("a", Boom()) is True  # next cooldown: 20 s
    clock.advance(20.0)  # the old claim (60 s) would still run: it was dropped
    assert t.is_available("a") is True
    assert t.is_available("a") is False


def test_a_retry_after_cooldown_also_recovers_through_a_probe(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    t = make(failure_threshold=3)
    assert t.record_failure("a", RateLimited(7.0)) is True
    clock.advance(7.0)
    assert [t.is_available("a") for _ in range(3)] == [True, False, False]


def test_failures_below_the_threshold_need_no_probe(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    t = make(failure_threshold=3)
    assert t.record_failure("a", Boom()) is False
    assert [t.is_available("a") for _ in range(3)] == [True] * 3


def test_without_half_open_everyone_may_call_when_the_cooldown_ends(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    t = cooled(make, clock, half_open=False)
    assert [t.is_available("a") for _ in range(3)] == [True] * 3


def test_providers_probe_independently(make: Callable[..., SyncTracker], clock: FakeClock) -> None:
    t = make()
    t.record_failure("a", Boom())
    t.record_failure("b", Boom())
    clock.advance(10.0)
    assert t.is_available("a") is True
    assert t.is_available("b") is True
    assert t.is_available("a") is False and t.is_available("b") is False


def test_probe_timeout_is_checked() -> None:
    with pytest.raises(InvalidConfigError, match="probe_timeout"):
        InMemoryCooldownTracker(half_open=True, probe_timeout=0)
    with pytest.raises(InvalidConfigError, match="half_open"):
        CooldownPolicy(half_open="yes")  # type: ignore[arg-type]


# -- routing over a half-open tracker ------------------------------------------------------


def test_routing_sends_one_probe_and_the_others_fall_over(clock: FakeClock) -> None:
    tracker = InMemoryCooldownTracker(
        failure_threshold=1, cooldown=10, half_open=True, probe_timeout=5, clock=clock
    )
    calls: list[str] = []
    down = {"a"}

    @routed(providers=["a", "b"], cooldown=tracker)
    def call(provider: str) -> str:
        calls.append(provider)
        if provider in down:
            raise Boom(provider)
        return provider

    assert call() == "b"
    clock.advance(10.0)
    calls.clear()
    assert [call() for _ in range(4)] == ["b"] * 4
    assert calls == ["a", "b", "b", "b", "b"]  # one probe of a, which failed
    clock.advance(20.0)  # the grown cooldown
    down.clear()
    calls.clear()
    assert [call() for _ in range(3)] == ["a"] * 3  # the probe succeeded: a is back
    assert calls == ["a", "a", "a"]


# -- the fleet: one probe across trackers sharing a prefix ---------------------------------


@pytest.fixture
def fleet() -> Iterator[Callable[..., list[RedisCooldownTracker]]]:
    url = redis_support.require_redis()
    prefix = redis_support.unique_prefix("fleet")
    made: list[tuple[RedisCooldownTracker, Any]] = []

    def build(n: int, clock: FakeClock, **policy: Any) -> list[RedisCooldownTracker]:
        trackers = []
        for _ in range(n):
            client = redis_support.sync_client(url, timeout=2.0)
            tracker = RedisCooldownTracker(
                client,
                prefix=prefix,
                clock=clock,
                failure_threshold=1,
                cooldown=10,
                half_open=True,
                **policy,
            )
            assert tracker.wait_synced(5.0)
            made.append((tracker, client))
            trackers.append(tracker)
        return trackers

    yield build
    for tracker, client in made:
        tracker.close()
        client.close()
    redis_support.delete_prefix(prefix, url)


def _race(trackers: list[RedisCooldownTracker], per_tracker: int) -> int:
    """Threads on every tracker ask at once; return how many were admitted."""
    admitted = 0
    lock = threading.Lock()
    start = threading.Barrier(len(trackers) * per_tracker)

    def ask(tracker: RedisCooldownTracker) -> None:
        nonlocal admitted
        start.wait()
        if tracker.is_available("a"):
            with lock:
                admitted += 1

    threads = [
        threading.Thread(target=ask, args=(t,)) for t in trackers for _ in range(per_tracker)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return admitted


def test_one_probe_across_the_fleet(
    fleet: Callable[..., list[RedisCooldownTracker]], clock: FakeClock
) -> None:
    """Eight trackers on one prefix, eight threads each, asking at once: one probe granted."""
    trackers = fleet(8, clock, probe_timeout=5)
    assert trackers[0].record_failure("a", Boom()) is True
    clock.advance(10.0)
    assert _race(trackers, 8) == 1
    assert _race(trackers, 8) == 0  # still out
    clock.advance(5.0)  # its claim ran out with no outcome: granted again, once
    assert _race(trackers, 8) == 1
    trackers[3].record_success("a")
    for tracker in trackers:  # the success reaches every process's view
        for _ in range(200):
            if tracker.is_available("a"):
                break
            threading.Event().wait(0.01)
        else:
            raise AssertionError("a tracker never saw the probe's success")


def test_the_probe_is_claimed_without_a_round_trip_by_the_losers(clock: FakeClock) -> None:
    """Only the transition to probing asks Redis; the refusals after it are local."""
    url = redis_support.require_redis()
    prefix = redis_support.unique_prefix("rtt")
    client, sent = redis_support.counting_client(url)
    tracker = RedisCooldownTracker(
        client, prefix=prefix, clock=clock, failure_threshold=1, cooldown=10, half_open=True
    )
    try:
        assert tracker.wait_synced(5.0)
        tracker.record_failure("a", Boom())
        clock.advance(10.0)
        before = sent()
        assert tracker.is_available("a") is True  # the claim: one round trip
        assert sent() == before + 1
        assert [tracker.is_available("a") for _ in range(10)] == [False] * 10
        assert tracker.is_available("b") is True  # never failed
        assert sent() == before + 1
    finally:
        tracker.close()
        client.close()
        redis_support.delete_prefix(prefix, url)


def _gone(client: Any, key: str) -> bool:
    """Wait (real time: Redis expires keys on its own clock) until ``key`` is gone."""
    deadline = time.monotonic() + 5.0
    while client.exists(key):
        assert time.monotonic() < deadline, f"{key} never expired"
        time.sleep(0.01)
    return True


def test_a_tracker_loading_the_prefix_takes_an_expired_state_for_clean(clock: FakeClock) -> None:
    """A cooldown whose state expired in Redis leaves no probe to claim: it costs no request.

    The expired provider's entry may linger in the cooling index (a failure prunes it as it
    passes): loading the prefix must not take it for a cooldown over, waiting for its probe.
    """
    url = redis_support.require_redis()
    prefix = redis_support.unique_prefix("expired")
    policy: dict[str, Any] = {"failure_threshold": 1, "cooldown": 0.01, "half_open": True}
    writer = redis_support.sync_client(url)
    client, sent = redis_support.counting_client(url)
    first = RedisCooldownTracker(writer, prefix=prefix, clock=clock, state_ttl=0.05, **policy)
    loader = None
    try:
        assert first.record_failure("a", Boom()) is True
        clock.advance(1.0)
        assert _gone(writer, redis_support.state_key(prefix, "a"))
        loader = RedisCooldownTracker(client, prefix=prefix, clock=clock, **policy)
        assert loader.wait_synced(5.0)
        before = sent()
        assert [loader.is_available("a") for _ in range(3)] == [True] * 3
        assert sent() == before  # no claim: nothing to claim
    finally:
        first.close()
        if loader is not None:
            loader.close()
        writer.close()
        client.close()
        redis_support.delete_prefix(prefix, url)


@pytest.mark.parametrize("elsewhere", [False, True], ids=["alone", "a failure elsewhere"])
def test_a_claimed_probe_keeps_its_provider_known_while_the_claim_lasts(
    clock: FakeClock, elsewhere: bool
) -> None:
    """A claim extends a state about to expire: the prefix still lists it until the claim ends.

    Operators see the provider (``states()``, ``status``), and a tracker loading the prefix
    meanwhile is refused like everyone else instead of taking it for clean; also after a
    failure of another provider, which prunes old cooldowns (never one whose probe is out).
    """
    url = redis_support.require_redis()
    prefix = redis_support.unique_prefix("claimed")
    policy: dict[str, Any] = {"failure_threshold": 1, "cooldown": 0.01, "half_open": True}
    writer = redis_support.sync_client(url)
    prober = RedisCooldownTracker(
        writer, prefix=prefix, clock=clock, state_ttl=0.05, probe_timeout=30.0, **policy
    )
    loader = None
    try:
        assert prober.record_failure("a", Boom()) is True
        clock.advance(1.0)
        assert prober.is_available("a") is True  # the probe, claimed for 30 s
        time.sleep(0.2)  # past the state's own expiry (Redis's real time: 10 ms + 50 ms)
        if elsewhere:
            assert prober.record_failure("b", Boom()) is True  # prunes what ended before
        state = {s.name: s for s in prober.states()}["a"]
        assert state.probe_remaining > 20.0
        loader = RedisCooldownTracker(writer, prefix=prefix, clock=clock, **policy)
        assert loader.wait_synced(5.0)
        assert loader.is_available("a") is False
    finally:
        prober.close()
        if loader is not None:
            loader.close()
        writer.close()
        redis_support.delete_prefix(prefix, url)


def test_the_prefix_indexes_outlive_a_probes_claim(clock: FakeClock) -> None:
    """A claim longer than any cooldown and its keep: a failure elsewhere keeps the indexes.

    ``reset()`` and ``states()`` walk the names index: it must not expire under a claim.
    """
    url = redis_support.require_redis()
    prefix = redis_support.unique_prefix("indexes")
    client = redis_support.sync_client(url)
    tracker = RedisCooldownTracker(
        client,
        prefix=prefix,
        clock=clock,
        failure_threshold=1,
        cooldown=0.01,
        max_cooldown=0.2,
        state_ttl=0.1,
        half_open=True,
        probe_timeout=30.0,
    )
    try:
        assert tracker.record_failure("a", Boom()) is True
        clock.advance(1.0)
        assert tracker.is_available("a") is True  # the probe, claimed for 30 s
        assert tracker.record_failure("b", Boom()) is True
        for index in ("names", "cooling"):
            assert client.pttl(redis_support.key(prefix, index)) > 29_000, index
        tracker.reset()
        assert tracker.is_available("a") is True and tracker.states() == []
    finally:
        tracker.close()
        client.close()
        redis_support.delete_prefix(prefix, url)


# -- events --------------------------------------------------------------------------------


def probes(rec: EventRecorder) -> list[tuple[str, str | None]]:
    return [(kind, name) for kind, name in rec.kinds() if kind.startswith("probe")]


def test_listeners_hear_of_probes(clock: FakeClock) -> None:
    tracker = InMemoryCooldownTracker(
        failure_threshold=1, cooldown=10, half_open=True, probe_timeout=5, clock=clock
    )
    rec = EventRecorder()
    down = {"a"}

    @routed(providers=["a", "b"], cooldown=tracker, listeners=[rec])
    def call(provider: str) -> str:
        if provider in down:
            raise Boom(provider)
        return provider

    call()
    assert probes(rec) == []  # a's first failure: no probe yet
    clock.advance(10.0)
    call()
    call()  # refused while the probe is out: no event
    assert probes(rec) == [("probe_started", "a"), ("probe_failed", "a")]
    clock.advance(20.0)
    down.clear()
    call()
    assert probes(rec)[2:] == [("probe_started", "a"), ("probe_succeeded", "a")]


async def test_async_listeners_hear_of_probes_on_redis(clock: FakeClock) -> None:
    url = redis_support.require_redis()
    prefix = redis_support.unique_prefix("probe-events")
    client = redis_support.async_client(url)
    from resilient_routing.cooldown import AsyncRedisCooldownTracker

    tracker = AsyncRedisCooldownTracker(
        client, prefix=prefix, clock=clock, failure_threshold=1, cooldown=10, half_open=True
    )
    rec = EventRecorder()

    @routed(providers=["a", "b"], cooldown=tracker, listeners=[rec])
    async def call(provider: str) -> str:
        return provider

    try:
        await tracker.record_failure("a", Boom())
        clock.advance(10.0)
        assert await call() == "a"
        assert probes(rec) == [("probe_started", "a"), ("probe_succeeded", "a")]
        assert await tracker.is_available("a")  # closed again for everyone
    finally:
        await tracker.aclose()
        await client.aclose()
        redis_support.delete_prefix(prefix, url)


def test_a_probe_answering_too_slowly_failed(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """slow_call and half-open: a slow probe is heard as failed, and its cooldown starts."""
    from resilient_routing._routing import route as route_module

    monkeypatch.setattr(route_module, "default_clock", clock)
    tracker = InMemoryCooldownTracker(
        failure_threshold=1, cooldown=10, half_open=True, probe_timeout=60, clock=clock
    )
    rec = EventRecorder()

    @routed(providers=["a", "b"], cooldown=tracker, listeners=[rec], slow_call=1.0)
    def call(provider: str) -> str:
        if provider == "a":
            clock.advance(2.0)
        return provider

    tracker.record_failure("a", Boom())
    clock.advance(10.0)
    assert call() == "a"  # the probe's slow answer still comes back
    assert probes(rec) == [("probe_started", "a"), ("probe_failed", "a")]
    assert not tracker.is_available("a")  # its next cooldown started


def test_a_healthy_provider_costs_no_write_when_polling(clock: FakeClock) -> None:
    """Half-open, polling Redis: each check is one round trip, a success of a clean one none."""
    url = redis_support.require_redis()
    prefix = redis_support.unique_prefix("poll")
    client, sent = redis_support.counting_client(url)
    tracker = RedisCooldownTracker(
        client, prefix=prefix, clock=clock, failure_threshold=1, half_open=True, listen=False
    )
    try:
        assert tracker.is_available("a") is True  # loads the scripts (NOSCRIPT, then retried)
        tracker.record_success("a")
        before = sent()
        for _ in range(5):
            assert tracker.is_available("a") is True
            tracker.record_success("a")
        assert sent() - before == 5  # the checks; no CLEAR
    finally:
        tracker.close()
        client.close()
        redis_support.delete_prefix(prefix, url)
