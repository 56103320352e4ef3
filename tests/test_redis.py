"""What is particular to the Redis trackers: keys, scripts, the local view, cost, lifecycle.

The shared rules are the contract suite's (tests/test_tracker_contract.py); outages are in
tests/test_redis_outage.py, several processes in tests/test_redis_processes.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import tenacity

from resilient_routing import InvalidConfigError, execute_async, routed
from resilient_routing.cooldown import AsyncRedisCooldownTracker, RedisCooldownTracker, RedisCounter
from resilient_routing.strategies import RoundRobin
from resilient_routing.testing import FakeClock

from .redis_support import (
    REDIS_URL,
    RedisServer,
    async_client,
    counting_client,
    delete_prefix,
    free_port,
    key,
    require_redis,
    run_async,
    state_key,
    sync_client,
    unique_prefix,
)

pytestmark = pytest.mark.redis

LISTENER = "resilient_routing-redis-listener"


class Down(Exception):
    pass


class RateLimited(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__("429")
        self.retry_after = seconds


def listener_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(LISTENER)]


@pytest.fixture(autouse=True)
def no_leaked_listeners() -> Iterator[None]:
    """Every test closes what it opens: no listener thread outlives it."""
    yield
    deadline = time.monotonic() + 2.0
    while listener_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert listener_threads() == []


@pytest.fixture
def url() -> str:
    return require_redis()


@pytest.fixture
def prefix(url: str) -> Iterator[str]:
    name = unique_prefix("unit")
    yield name
    delete_prefix(name, url)


@pytest.fixture
def client(url: str) -> Iterator[redis.Redis]:
    made = sync_client(url)
    yield made
    made.close()


@pytest.fixture
def make(
    client: redis.Redis, prefix: str, clock: FakeClock
) -> Iterator[Callable[..., RedisCooldownTracker]]:
    """Build sync trackers sharing one prefix (as separate processes would), closed after."""
    made: list[RedisCooldownTracker] = []
    clients: list[redis.Redis] = []

    def build(**options: Any) -> RedisCooldownTracker:
        options.setdefault("prefix", prefix)
        options.setdefault("clock", clock)
        own = sync_client()
        clients.append(own)
        tracker = RedisCooldownTracker(own, **options)
        made.append(tracker)
        if tracker._listen:
            assert tracker.wait_synced(5.0)
        return tracker

    yield build
    for tracker in made:
        tracker.close()
    for own in clients:
        own.close()


def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll a condition that another thread or process makes true; bounded."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


# --- keys and scripts ------------------------------------------------------------------


def test_every_key_is_namespaced_and_expires(
    make: Callable[..., RedisCooldownTracker], client: redis.Redis, prefix: str
) -> None:
    """Every key the tracker writes lives under its prefix and carries a TTL."""
    tracker = make(failure_threshold=2, cooldown=30, state_ttl=600)
    tracker.record_failure("a", Down())
    tracker.record_failure("b", Down())
    tracker.record_failure("b", Down())
    tracker.record_failure("c", RateLimited(5))
    keys = sorted(k.decode() for k in client.scan_iter(match=key(prefix, "*")))
    assert keys == sorted(
        [
            key(prefix, "cooling"),
            key(prefix, "names"),
            state_key(prefix, "a"),
            state_key(prefix, "b"),
            state_key(prefix, "c"),
            key(prefix, "seq"),
        ]
    )
    ttls = {k: client.pttl(k) for k in keys}
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    # A provider with failures only keeps its state state_ttl; one cooling down, that much more.
    assert 590_000 < ttls[state_key(prefix, "a")] <= 600_000
    assert 620_000 < ttls[state_key(prefix, "b")] <= 630_000
    channel = key(prefix, f"events:{client.connection_pool.connection_kwargs.get('db', 0)}")
    assert client.pubsub_numsub(channel) == [(channel.encode(), 1)]


def test_a_success_removes_the_providers_keys(
    make: Callable[..., RedisCooldownTracker], client: redis.Redis, prefix: str
) -> None:
    """record_success and reset(name) delete the provider's state, reset() everything."""
    tracker = make(failure_threshold=1)
    for name in "abc":
        tracker.record_failure(name, Down())
    tracker.record_success("a")
    tracker.reset("b")
    assert client.exists(state_key(prefix, "a"), state_key(prefix, "b")) == 0
    assert client.exists(state_key(prefix, "c")) == 1
    tracker.reset()
    assert [k for k in client.scan_iter(match=key(prefix, "*")) if not k.endswith(b":seq")] == []


def test_scripts_survive_a_script_flush(
    make: Callable[..., RedisCooldownTracker], client: redis.Redis
) -> None:
    """Scripts are called by SHA and reloaded when the server forgot them (a restart)."""
    tracker = make(failure_threshold=1)
    client.script_flush()
    assert tracker.record_failure("a", Down()) is True
    client.script_flush()
    tracker.reset()
    assert tracker.is_available("a")


def test_server_time_is_used_without_a_clock(
    make: Callable[..., RedisCooldownTracker], client: redis.Redis, prefix: str
) -> None:
    """Without an injected clock the cooldown's end is stamped with the server's TIME."""
    tracker = make(clock=None, failure_threshold=1, cooldown=30)
    assert tracker.record_failure("a", Down()) is True
    seconds, micros = client.time()
    server_ms = seconds * 1000 + micros // 1000
    ends = int(client.hget(state_key(prefix, "a"), "u") or 0)
    assert 29_000 < ends - server_ms <= 30_000
    assert 29.0 < tracker.cooldown_remaining("a") <= 30.0


def test_names_with_separators_and_unicode(make: Callable[..., RedisCooldownTracker]) -> None:
    """Provider names are opaque: separators, spaces and non-ASCII survive events."""
    a = make(failure_threshold=1)
    b = make(failure_threshold=1)
    name = "weird|name:{x} é 🚀"
    assert a.record_failure(name, Down()) is True
    assert eventually(lambda: not b.is_available(name))
    b.record_success(name)
    assert eventually(lambda: a.is_available(name))


def test_decoded_responses_client(prefix: str, clock: FakeClock) -> None:
    """A client created with decode_responses=True works the same."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=0.5)
    tracker = RedisCooldownTracker(client, prefix=prefix, clock=clock, failure_threshold=1)
    try:
        assert tracker.wait_synced(5.0)
        assert tracker.record_failure("a", Down()) is True
        assert tracker.cooldowns() == {"a": pytest.approx(30.0)}
    finally:
        tracker.close()
        client.close()


def test_cooldowns_lists_current_cooldowns(
    make: Callable[..., RedisCooldownTracker], clock: FakeClock
) -> None:
    """cooldowns() reads every provider cooling down under the prefix, with time left."""
    tracker = make(failure_threshold=1, cooldown=10)
    tracker.record_failure("a", Down())
    clock.advance(4)
    tracker.record_failure("b", RateLimited(20))
    assert tracker.cooldowns() == {"a": pytest.approx(6.0), "b": pytest.approx(20.0)}
    clock.advance(6)
    assert tracker.cooldowns() == {"b": pytest.approx(14.0)}


def test_backoff_strategy_is_used(
    make: Callable[..., RedisCooldownTracker], clock: FakeClock
) -> None:
    """A tenacity wait strategy sets the consecutive cooldowns, computed on the server."""
    tracker = make(failure_threshold=1, max_cooldown=100, backoff=tenacity.wait_fixed(7))
    for _ in range(3):
        assert tracker.record_failure("a", Down()) is True
        assert tracker.cooldown_remaining("a") == pytest.approx(7.0)
        clock.advance(7)


# --- the local view and its events -----------------------------------------------------


def test_a_cooldown_started_by_one_tracker_is_seen_by_another(
    make: Callable[..., RedisCooldownTracker],
) -> None:
    """Trackers sharing a prefix share cooldowns through events, without asking Redis."""
    a = make(failure_threshold=2, cooldown=30)
    b = make(failure_threshold=2, cooldown=30)
    a.record_failure("p", Down())
    assert b.record_failure("p", Down()) is True
    assert eventually(lambda: not a.is_available("p"))
    assert a.cooldown_remaining("p") == pytest.approx(30.0, abs=0.01)
    # A failure during the shared cooldown starts nothing anywhere.
    assert a.record_failure("p", Down()) is False


def test_trackers_of_one_process_see_each_others_cooldowns_at_once(
    make: Callable[..., RedisCooldownTracker], url: str, prefix: str
) -> None:
    """In one process, what a tracker's reply taught, the others know before the event comes.

    Sync trackers with clients of their own, and async ones in one event loop (whose
    listener tasks cannot run before the next check).
    """
    for n in range(20):
        a, b = make(failure_threshold=1, cooldown=30), make(failure_threshold=1, cooldown=30)
        assert a.record_failure(f"p{n}", Down()) is True
        assert not b.is_available(f"p{n}") and b.cooldown_remaining(f"p{n}") > 0
        a.record_success(f"p{n}")
        assert b.is_available(f"p{n}")

    async def scenario() -> None:
        clients = [async_client(url), async_client(url)]
        a, b = (AsyncRedisCooldownTracker(c, prefix=prefix, failure_threshold=1) for c in clients)
        try:
            await a.wait_synced()
            await b.wait_synced()
            for n in range(20):
                assert await a.record_failure(f"q{n}", Down()) is True
                assert not await b.is_available(f"q{n}")
            await a.reset()
            assert await b.is_available("q0")
        finally:
            for tracker in (a, b):
                await tracker.aclose()
            for client in clients:
                await client.aclose()

    run_async(scenario)


def test_a_success_elsewhere_clears_failures_here(
    make: Callable[..., RedisCooldownTracker],
) -> None:
    """Failures recorded by one tracker are cleared by a success seen by another."""
    a = make(failure_threshold=2)
    b = make(failure_threshold=2)
    a.record_failure("p", Down())
    assert eventually(lambda: "p" in b._view.dirty)
    b.record_success("p")
    assert a.record_failure("p", Down()) is False  # the count started again


def test_reset_all_reaches_every_tracker(make: Callable[..., RedisCooldownTracker]) -> None:
    """reset() forgets every provider for every tracker sharing the prefix."""
    a = make(failure_threshold=1)
    b = make(failure_threshold=1)
    a.record_failure("x", Down())
    a.record_failure("y", Down())
    assert eventually(lambda: not b.is_available("x") and not b.is_available("y"))
    b.reset()
    assert eventually(lambda: a.is_available("x") and a.is_available("y"))
    assert a._view.dirty == set()


def test_a_new_tracker_loads_the_existing_state(
    make: Callable[..., RedisCooldownTracker],
) -> None:
    """A tracker starting late loads the cooldowns and failures already in Redis."""
    first = make(failure_threshold=2, cooldown=30)
    first.record_failure("cool", Down())
    first.record_failure("cool", Down())
    first.record_failure("dirty", Down())
    late = make(failure_threshold=2, cooldown=30)
    assert late._view.live
    assert late.cooldown_remaining("cool") == pytest.approx(30.0, abs=0.01)
    assert late._view.dirty == {"cool", "dirty"}


def test_stale_events_never_undo_newer_state() -> None:
    """Updates older than what the view knows are ignored, in whatever order they arrive."""
    from resilient_routing.cooldown._redis.view import View as _View

    view = _View()
    view.apply("a", 10, True, 30.0, now=0.0)
    view.apply("a", 9, False, 0.0, now=0.0)  # an older "cleared" arriving late
    assert view.remaining("a", 0.0) == 30.0
    view.apply("a", 11, False, 0.0, now=0.0)
    assert view.remaining("a", 0.0) == 0.0
    view.load(20, ["b"], {"b": 5.0}, now=0.0)
    view.apply("b", 15, False, 0.0, now=0.0)  # older than the reload
    assert view.remaining("b", 1.0) == 4.0
    view.apply("c", 25, True, 0.0, now=0.0)
    view.load(22, [], {}, now=0.0)  # a reload older than what is known of c
    assert "c" in view.dirty
    view.clear_all(30)
    assert view.dirty == set() and view.remaining("b", 1.0) == 0.0


def test_listen_false_asks_redis_at_every_check(
    make: Callable[..., RedisCooldownTracker], client: redis.Redis
) -> None:
    """Without a listener the tracker reads Redis per check, and starts no thread."""
    tracker = make(listen=False, failure_threshold=1)
    other = make(failure_threshold=1)
    other.record_failure("a", Down())
    assert tracker.is_available("a") is False
    assert listener_threads() == [other._listener.thread]
    assert tracker.wait_synced(0.01) is False


# --- cost of the happy path ------------------------------------------------------------


@pytest.fixture(scope="module")
def private_server() -> Iterator[RedisServer]:
    """A server of this module's own, so that counting its commands counts ours only."""
    with RedisServer() as server:
        yield server


def commands_served(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(
        int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_ping")
    )


def test_a_healthy_call_costs_no_round_trip(private_server: RedisServer) -> None:
    """Routed calls whose provider succeeds send no command to Redis (counted, not timed)."""
    probe = sync_client(private_server.url)
    client, sent = counting_client(private_server.url)
    tracker = RedisCooldownTracker(client, prefix=unique_prefix("rt"))
    try:
        assert tracker.wait_synced(5.0)

        @routed(providers=["a", "b", "c"], cooldown=tracker)
        def call(provider: str) -> str:
            return provider

        before, served = sent(), commands_served(probe)
        for _ in range(200):
            assert call() == "a"
        assert sent() - before == 0
        assert commands_served(probe) - served == 0
    finally:
        tracker.close()
        client.close()
        probe.close()


def test_failures_cost_one_round_trip_each(private_server: RedisServer) -> None:
    """A failure costs one script; the first success after failures one; later ones none."""
    client, sent = counting_client(private_server.url)
    tracker = RedisCooldownTracker(client, prefix=unique_prefix("rt"), failure_threshold=5)
    outcomes = iter([Down(), "ok", "ok"])

    def flaky(provider: str) -> str:
        outcome = next(outcomes) if provider == "a" else provider
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    try:
        assert tracker.wait_synced(5.0)
        call = routed(providers=["a", "b"], cooldown=tracker)(flaky)
        before = sent()
        assert call() == "b"  # a failed (one EVALSHA), b never failed (nothing)
        assert sent() - before == 1
        assert call() == "ok"  # a succeeds after a failure: one EVALSHA clears it
        assert sent() - before == 2
        assert call() == "ok"
        assert sent() - before == 2
    finally:
        tracker.close()
        client.close()


def test_a_healthy_async_call_costs_no_round_trip(private_server: RedisServer) -> None:
    """The async tracker's happy path sends no command either."""
    probe = sync_client(private_server.url)

    async def scenario() -> int:
        aclient = async_client(private_server.url)
        async with AsyncRedisCooldownTracker(aclient, prefix=unique_prefix("rt")) as tracker:
            await asyncio.wait_for(tracker.wait_synced(), 5.0)

            @routed(providers=["a", "b"], cooldown=tracker)
            async def call(provider: str) -> str:
                return provider

            before = commands_served(probe)
            for _ in range(200):
                assert await call() == "a"
            spent = commands_served(probe) - before
        await aclient.aclose()
        return spent

    try:
        assert run_async(scenario) == 0
    finally:
        probe.close()


# --- sync and async: which routed functions take which tracker -------------------------


def test_sync_tracker_is_refused_by_async_routed_functions(client: redis.Redis) -> None:
    """The blocking tracker would stall the event loop: InvalidConfigError names the fix."""
    tracker = RedisCooldownTracker(client, prefix=unique_prefix("x"), listen=False)
    assert tracker.blocking_io is True

    async def fn(provider: str) -> str:
        return provider

    with pytest.raises(InvalidConfigError, match="AsyncRedisCooldownTracker"):
        routed(providers=["a"], cooldown=tracker)(fn)
    with pytest.raises(InvalidConfigError, match="AsyncRedisCooldownTracker"):
        run_async(lambda: execute_async(["a"], fn, cooldown=tracker))


def test_async_tracker_is_refused_by_sync_routed_functions(url: str) -> None:
    """An async tracker cannot serve a sync routed function."""
    aclient = async_client(url)
    tracker = AsyncRedisCooldownTracker(aclient, prefix=unique_prefix("x"), listen=False)

    def fn(provider: str) -> str:
        return provider

    with pytest.raises(InvalidConfigError, match="async tracker"):
        routed(providers=["a"], cooldown=tracker)(fn)()
    run_async(aclient.aclose)


def test_async_tracker_routes_async_calls(url: str, prefix: str) -> None:
    """End to end: an async routed function skips a provider the async tracker cools down."""

    async def scenario() -> list[str]:
        async with AsyncRedisCooldownTracker.from_url(
            url, prefix=prefix, failure_threshold=1, cooldown=60
        ) as tracker:
            seen: list[str] = []

            @routed(providers=["a", "b"], cooldown=tracker)
            async def call(provider: str) -> str:
                seen.append(provider)
                if provider == "a":
                    raise Down("a is down")
                return provider

            for _ in range(3):
                assert await call() == "b"
            assert await tracker.cooldown_remaining("a") > 59
            await tracker.reset()
            return seen

    assert run_async(scenario) == ["a", "b", "b", "b"]


# --- lifecycle -------------------------------------------------------------------------


def test_close_stops_the_listener_and_from_url_owns_its_client(url: str) -> None:
    """close() stops the thread at once; the client made by from_url is closed with it."""
    with RedisCooldownTracker.from_url(url, prefix=unique_prefix("life")) as tracker:
        assert tracker.wait_synced(5.0)
        thread = tracker._listener.thread
        assert thread is not None and thread.is_alive() and thread.daemon
        kwargs = tracker._client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.5
        assert kwargs["retry"].get_retries() == 0
    started = time.monotonic()
    thread.join(2.0)
    assert not thread.is_alive()
    assert time.monotonic() - started < 0.5
    # A closed tracker still answers, asking Redis directly.
    assert tracker.is_available("a") is True
    assert listener_threads() == []


def test_an_abandoned_tracker_stops_its_listener(url: str) -> None:
    """A tracker garbage-collected without close() does not leave its thread running."""
    import gc

    client = sync_client(url)
    tracker = RedisCooldownTracker(client, prefix=unique_prefix("gc"))
    assert tracker.wait_synced(5.0)
    thread = tracker._listener.thread
    assert thread is not None
    del tracker
    gc.collect()
    thread.join(2.0)
    assert not thread.is_alive()
    client.close()


def test_async_close_cancels_the_listener_task(url: str) -> None:
    """aclose() ends the listener task; no task is left pending."""

    async def scenario() -> None:
        aclient = async_client(url)
        tracker = AsyncRedisCooldownTracker(aclient, prefix=unique_prefix("life"))
        await asyncio.wait_for(tracker.wait_synced(), 5.0)
        task = tracker._listener.task
        assert task is not None and not task.done()
        await tracker.aclose()
        assert task.done()
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
        await aclient.aclose()

    run_async(scenario)


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be an int >= 1, got 0"),
        ({"cooldown": -1}, "cooldown must be > 0, got -1"),
        ({"max_cooldown": 5, "cooldown": 10}, "max_cooldown (5) must be >= cooldown (10)"),
        ({"growth": 0.5}, "growth must be >= 1, got 0.5"),
        ({"prefix": ""}, "prefix must be a non-empty str"),
        ({"state_ttl": 0}, "state_ttl must be a number of seconds > 0"),
        ({"retry_interval": float("nan")}, "retry_interval must be a number of seconds > 0"),
        ({"health_check_interval": "1"}, "health_check_interval must be a number"),
        ({"clock": 5}, "clock must be a callable"),
        ({"listen": 1}, "listen must be a bool"),
        ({"logger": "x"}, "logger must be a logging.Logger"),
    ],
)
def test_invalid_options(client: redis.Redis, options: dict[str, Any], message: str) -> None:
    """Bad options raise InvalidConfigError with the in-memory tracker's messages."""
    with pytest.raises(InvalidConfigError) as info:
        RedisCooldownTracker(client, **options)
    assert message in str(info.value)


def test_wrong_client_kind(client: redis.Redis, url: str) -> None:
    """Each tracker names the other when given the other kind of client."""
    aclient = async_client(url)
    with pytest.raises(InvalidConfigError, match="use AsyncRedisCooldownTracker"):
        RedisCooldownTracker(aclient)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="use RedisCooldownTracker"):
        AsyncRedisCooldownTracker(client)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match=r"takes a redis\.Redis client"):
        RedisCooldownTracker("redis://localhost")  # type: ignore[arg-type]
    run_async(aclient.aclose)


def test_a_slow_client_configuration_is_reported(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client with redis-py's default retries gets one WARNING explaining the fix."""
    caplog.set_level(logging.WARNING, logger="resilient_routing")
    client = redis.Redis.from_url(url)
    RedisCooldownTracker(client, listen=False)
    client.close()
    [record] = caplog.records
    assert "retry=Retry(NoBackoff(), 0)" in record.getMessage()


def test_repr(client: redis.Redis) -> None:
    """The repr shows the prefix and the policy."""
    tracker = RedisCooldownTracker(client, prefix="p", listen=False, cooldown=5)
    assert repr(tracker) == (
        "RedisCooldownTracker(prefix='p', failure_threshold=3, cooldown=5.0, "
        "max_cooldown=300.0, growth=2.0)"
    )


def test_lazy_public_names() -> None:
    """The package exposes the Redis trackers lazily, as the same classes."""
    import resilient_routing
    import resilient_routing.cooldown

    assert resilient_routing.RedisCooldownTracker is RedisCooldownTracker
    assert resilient_routing.cooldown.AsyncRedisCooldownTracker is AsyncRedisCooldownTracker


# --- RedisCounter ----------------------------------------------------------------------


def test_redis_counter_rotates_across_instances(client: redis.Redis, prefix: str, url: str) -> None:
    """Two RoundRobin strategies sharing a RedisCounter key rotate as one."""
    other = sync_client(url)
    first = RoundRobin(counter=RedisCounter(client, prefix=prefix))
    second = RoundRobin(counter=RedisCounter(other, prefix=prefix))
    providers = ["a", "b", "c"]
    picked = [(first if i % 2 else second).order(providers) for i in range(6)]
    assert [tuple(p) for p in picked] == [(1,), (2,), (0,), (1,), (2,), (0,)]
    assert 0 < client.pttl(key(prefix, "counter:round_robin")) <= 86_400_000
    other.close()


def test_redis_counter_fails_open_to_a_local_count(caplog: pytest.LogCaptureFixture) -> None:
    """Without Redis the counter keeps counting locally, with one WARNING."""
    caplog.set_level(logging.WARNING, logger="resilient_routing")
    with RedisServer() as server:
        client = sync_client(server.url, timeout=0.2)
        counter = RedisCounter(client, key="k", retry_interval=60)
        assert [counter(), counter()] == [1, 2]
        server.kill()
        assert [counter() for _ in range(3)] == [0, 1, 2]
        client.close()
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert repr(counter) == "RedisCounter(key='{resilient_routing}:counter:k')"


def test_redis_counter_validation(client: redis.Redis) -> None:
    """RedisCounter checks its options."""
    with pytest.raises(InvalidConfigError, match="key must be a non-empty str"):
        RedisCounter(client, key="")
    with pytest.raises(InvalidConfigError, match="ttl must be"):
        RedisCounter(client, ttl=0)


# --- edge cases of the local view ------------------------------------------------------


def test_a_sequence_going_back_makes_the_listener_reload(
    make: Callable[..., RedisCooldownTracker], client: redis.Redis, prefix: str
) -> None:
    """Sequence numbers follow the server's clock: if it jumps back, views reload everything."""
    a = make(failure_threshold=1)
    b = make(failure_threshold=1)
    client.set(key(prefix, "seq"), str(10**17))  # as if written before the clock went back
    a.record_failure("x", Down())
    assert eventually(lambda: not b.is_available("x"))
    client.delete(key(prefix, "seq"))  # the next event is numbered from the clock again: smaller
    a.record_failure("y", Down())
    assert eventually(lambda: not b.is_available("y"))
    assert eventually(lambda: b._view.floor < 10**17)
    assert not b.is_available("x")
    a.reset("x")
    assert eventually(lambda: b.is_available("x"))


def test_the_view_forgets_clean_providers_beyond_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Memory is bounded: past the limit the view forgets providers, clean ones first."""
    from resilient_routing.cooldown._redis import view as _redis_view

    monkeypatch.setattr(_redis_view, "_MAX_LOCAL", 4)
    view = _redis_view.View()
    view.apply("dirty", 1, True, 0.0, now=0.0)
    for i in range(5):
        view.apply(f"clean{i}", 2 + i, False, 0.0, now=0.0)
        view.note_checked(f"clean{i}")
    assert set(view.seqs) == {"dirty", "clean2", "clean3", "clean4"}
    assert view.dirty == {"dirty"}
    assert len(view.checked) == 4
    assert not view.incomplete and view.remaining("never-seen", 0.0) == 0.0
    for i in range(5):  # only providers with state now: the oldest of those goes
        view.apply(f"cooling{i}", 10 + i, True, 30.0, now=0.0)
    assert set(view.seqs) == {"cooling1", "cooling2", "cooling3", "cooling4"}
    # Having forgotten providers with state, it no longer presumes an unknown one clean.
    assert view.incomplete
    assert view.remaining("dirty", 0.0) is None
    assert view.remaining("cooling4", 0.0) == 30.0
    assert not view.can_skip_success("dirty")
    view.load(20, ["a"], {}, now=0.0)  # a full reload within the bound is complete again
    assert not view.incomplete and view.remaining("dirty", 0.0) == 0.0


def test_a_view_past_its_bound_asks_redis_about_providers_it_forgot(
    make: Callable[..., RedisCooldownTracker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the view forgot providers with state, their checks go to Redis, still right."""
    from resilient_routing.cooldown._redis import view as _redis_view

    monkeypatch.setattr(_redis_view, "_MAX_LOCAL", 3)
    tracker = make(failure_threshold=1, cooldown=60)
    assert tracker.wait_synced(5.0)
    for name in ("p0", "p1", "p2", "p3", "p4"):
        assert tracker.record_failure(name, Down()) is True
    assert tracker._view.incomplete
    assert all(tracker.cooldown_remaining(n) == pytest.approx(60, abs=1) for n in ("p0", "p4"))
    assert tracker.is_available("never-failed")


def test_async_tracker_methods(url: str, clock: FakeClock, prefix: str) -> None:
    """The async tracker's reset(name), record_success and cooldowns() match the sync ones."""

    async def scenario() -> None:
        aclient = async_client(url)
        async with AsyncRedisCooldownTracker(
            aclient, prefix=prefix, clock=clock, failure_threshold=1, cooldown=10
        ) as tracker:
            await asyncio.wait_for(tracker.wait_synced(), 5.0)
            assert await tracker.record_failure("a", Down()) is True
            assert await tracker.record_failure("b", RateLimited(20)) is True
            assert await tracker.cooldowns() == {"a": 10.0, "b": 20.0}
            await tracker.reset("a")
            await tracker.record_success("b")
            await tracker.record_success("never-failed")
            assert await tracker.cooldowns() == {}
            assert await tracker.is_available("a") and await tracker.is_available("b")
        await aclient.aclose()

    run_async(scenario)


def test_an_abandoned_async_tracker_cancels_its_task(url: str) -> None:
    """An async tracker garbage-collected without aclose() cancels its listener task."""
    import gc

    async def scenario() -> None:
        aclient = async_client(url)
        tracker = AsyncRedisCooldownTracker(aclient, prefix=unique_prefix("agc"))
        await asyncio.wait_for(tracker.wait_synced(), 5.0)
        task = tracker._listener.task
        assert task is not None
        del tracker
        gc.collect()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 2.0)
        assert task.cancelled()
        await aclient.aclose()

    run_async(scenario)


def test_outages_go_to_the_given_logger(caplog: pytest.LogCaptureFixture) -> None:
    """logger= receives the outage report, type and message only (no traceback)."""
    logger = logging.getLogger("app.redis")
    caplog.set_level(logging.INFO, logger="app.redis")
    client = sync_client(f"redis://127.0.0.1:{free_port()}/0")
    tracker = RedisCooldownTracker(client, listen=False, logger=logger)
    assert tracker.record_failure("a", Down()) is False
    client.close()
    [record] = caplog.records
    assert record.name == "app.redis"
    assert record.exc_info is None
    assert record.error_type == "ConnectionError"  # type: ignore[attr-defined]


def test_foreign_messages_on_the_channel_are_ignored(
    make: Callable[..., RedisCooldownTracker], client: redis.Redis, prefix: str
) -> None:
    """Someone else publishing on the events channel disturbs nothing."""
    a = make(failure_threshold=1)
    b = make(failure_threshold=1)
    channel = key(prefix, f"events:{client.connection_pool.connection_kwargs.get('db', 0)}")
    client.publish(channel, "hello")
    client.publish(channel, "C|x|y|z")
    a.record_failure("p", Down())
    assert eventually(lambda: not b.is_available("p"))
    assert b._view.live


def test_async_close_survives_a_lost_cancellation(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aclose() ends the listener even when redis.asyncio loses the cancellation.

    On Python 3.11 asyncio.wait_for, around every redis.asyncio send, drops a cancellation
    that lands as the send completes; emulated here by a get_message that swallows one.
    """
    import redis.asyncio.client

    original = redis.asyncio.client.PubSub.get_message
    swallowed: list[bool] = []

    async def lossy(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(True)
            return None

    monkeypatch.setattr(redis.asyncio.client.PubSub, "get_message", lossy)

    async def scenario() -> float:
        aclient = async_client(url)
        tracker = AsyncRedisCooldownTracker(aclient, prefix=unique_prefix("lost"))
        await asyncio.wait_for(tracker.wait_synced(), 5.0)
        started = time.monotonic()
        await asyncio.wait_for(tracker.aclose(), 5.0)
        spent = time.monotonic() - started
        await aclient.aclose()
        return spent

    assert run_async(scenario) < 1.0
    assert swallowed == [True]


NAMES = [
    "names",
    "cooling",
    "seq",
    "p:x",
    "",
    "名字",
    "a\x00b",
    "lone \ud800 surrogate",
    "x" * 5000,
]


def test_any_string_is_a_name_with_state_of_its_own(
    make: Callable[..., RedisCooldownTracker], caplog: pytest.LogCaptureFixture
) -> None:
    """Names that look like keys, empty, non-ASCII, NUL or lone surrogates: each its own state."""
    tracker = make(failure_threshold=1, cooldown=60)
    other = make(failure_threshold=1, cooldown=60)  # another process on the same prefix
    for i, name in enumerate(NAMES):
        assert tracker.record_failure(name, Down()) is True
        assert not tracker.is_available(name)
        assert all(tracker.is_available(later) for later in NAMES[i + 1 :])
    assert eventually(lambda: all(not other.is_available(n) for n in NAMES))
    assert {s.name for s in tracker.states()} == set(NAMES)
    tracker.record_success(NAMES[-2])
    assert eventually(lambda: other.is_available(NAMES[-2]))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_prefixes_never_share_keys(make: Callable[..., RedisCooldownTracker], prefix: str) -> None:
    """'x:p:y' under one prefix and 'y' under the prefix that ends with ':p:x' stay apart."""
    outer = make(prefix=prefix, failure_threshold=1)
    inner = make(prefix=f"{prefix}:p:x", failure_threshold=1)
    assert outer.record_failure("x:p:y", Down()) is True
    assert inner.is_available("y")
    assert inner.cooldown_remaining("y") == 0.0
    assert [s.name for s in inner.states()] == []
    assert inner.record_failure("names", Down()) is True  # not the other prefix's index
    assert outer.record_failure("a", Down()) is True
    assert sorted(s.name for s in outer.states()) == ["a", "x:p:y"]
    inner.reset()
    delete_prefix(f"{prefix}:p:x")
