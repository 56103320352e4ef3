"""Fail-open: Redis down, frozen or restarted never breaks or stalls a routed call.

Each test runs its own throwaway ``redis-server`` on a loopback port, kills it, freezes it
(SIGSTOP: connections stay open and nothing answers, the worst case for a client) and brings
it back, while routed calls keep running. Loops are bounded by time, never by hope.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from resilient_routing import routed
from resilient_routing.cooldown import AsyncRedisCooldownTracker, RedisCooldownTracker

from .fault_support import FaultProxy
from .redis_support import (
    RedisServer,
    delete_prefix,
    free_port,
    require_redis,
    run_async,
    sync_client,
    unique_prefix,
)

pytestmark = pytest.mark.redis

#: The client's socket timeout in these tests, and the tracker's breaker interval.
TIMEOUT = 0.2
#: No routed call may take longer: at most one probe timing out per call, with slack for a
#: loaded 2-core machine.
BUDGET = 2 * TIMEOUT + 0.15

OPTIONS = {
    "socket_timeout": TIMEOUT,
    "failure_threshold": 1,
    "cooldown": 60,
    "retry_interval": TIMEOUT,
    "health_check_interval": TIMEOUT,
}


class Down(Exception):
    pass


def lost(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "lost Redis" in r.getMessage()]


def back(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "reached Redis again" in r.getMessage()]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="resilient_routing")
    return caplog


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as made:
        yield made


def provider(name: str) -> str:
    if name == "a":
        raise Down("a is down")
    return name


def run_for(call: Callable[[], str], seconds: float) -> list[float]:
    """Call for ``seconds``; every call must answer "b"; return each call's duration."""
    durations: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        assert call() == "b"
        durations.append(time.monotonic() - started)
    return durations


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_unreachable_redis_fails_open_with_one_warning(logs: pytest.LogCaptureFixture) -> None:
    """Nothing listens: every provider is available, nothing raises, one WARNING in all."""
    connects = [0]

    class CountingConnection(redis.Connection):
        def connect(self) -> None:
            connects[0] += 1
            super().connect()

    client = redis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0",
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        connection_class=CountingConnection,
    )
    with RedisCooldownTracker(client, prefix=unique_prefix("down"), retry_interval=60) as tracker:
        call = routed(providers=["a", "b"], cooldown=tracker)(provider)
        started = time.monotonic()
        for _ in range(200):
            assert call() == "b"
        assert tracker.record_failure("b", Down()) is False
        tracker.record_success("a")
        tracker.reset("a")
        tracker.reset()
        assert tracker.is_available("a") and tracker.cooldown_remaining("a") == 0.0
        assert tracker.cooldowns() == {}
        assert time.monotonic() - started < 1.0
        # The breaker keeps the tracker away from Redis: a couple of attempts, not one per call.
        assert connects[0] <= 3
    client.close()
    [record] = lost(logs)
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert "ConnectionError: " in record.getMessage()
    assert back(logs) == []


def test_kill_and_restart(server: RedisServer, logs: pytest.LogCaptureFixture) -> None:
    """Redis killed then restarted empty: calls never raise nor stall; tracking resumes."""
    with RedisCooldownTracker.from_url(server.url, prefix=unique_prefix("kill"), **OPTIONS) as t:
        assert t.wait_synced(5.0)
        call = routed(providers=["a", "b"], cooldown=t)(provider)
        run_for(call, 0.1)
        assert not t.is_available("a")

        server.kill()
        durations = run_for(call, 1.0)
        assert max(durations) < BUDGET
        assert t.is_available("a"), "fail-open: a lost Redis counts every provider available"
        assert len(lost(logs)) == 1

        server.start()
        assert wait_until(lambda: t.wait_synced(0.05))
        durations = run_for(call, 0.2)
        assert max(durations) < BUDGET
        assert not t.is_available("a"), "cooldowns are recorded again"
    assert len(lost(logs)) == 1
    assert len(back(logs)) == 1
    assert back(logs)[0].levelno == logging.INFO


def test_a_server_restarted_from_an_older_dump_is_what_the_view_shows(tmp_path: Any) -> None:
    """The server lost history (a dump from before, a failover losing writes).

    After the reload, the view says what the server says, not what it heard before the loss.
    """
    server = RedisServer(data_dir=str(tmp_path))
    with server, RedisCooldownTracker.from_url(server.url, prefix="dump", **OPTIONS) as t:
        assert t.wait_synced(5.0)
        t.record_failure("cleared_since", Down())
        admin = sync_client(server.url)
        admin.save()  # the dump: cleared_since cooling, nothing else
        t.record_success("cleared_since")
        t.record_failure("cooled_since", Down())
        assert t.is_available("cleared_since") and not t.is_available("cooled_since")
        server.kill()
        server.start()  # from the dump
        assert wait_until(
            lambda: not t.is_available("cleared_since") and t.is_available("cooled_since"),
            timeout=10.0,
        ), t.cooldowns()
        admin.close()


def test_lost_history_is_dropped_when_the_client_reconnects_within_a_session(
    tmp_path: Any,
) -> None:
    """redis-py's own retries resubscribe inside the listener's session.

    That is still a reload that forgets what the server lost.
    """
    server = RedisServer(data_dir=str(tmp_path))
    with server:
        client = redis.Redis(port=server.port, socket_timeout=TIMEOUT)  # retries: the default
        options = {**OPTIONS}
        del options["socket_timeout"]
        with RedisCooldownTracker(client, prefix="dump", **options) as t:
            assert t.wait_synced(5.0)
            t.record_failure("cleared_since", Down())
            admin = sync_client(server.url)
            admin.save()
            t.record_success("cleared_since")
            t.record_failure("cooled_since", Down())
            server.kill()
            server.start()
            assert wait_until(
                lambda: not t.is_available("cleared_since") and t.is_available("cooled_since"),
                timeout=10.0,
            ), t.cooldowns()
            admin.close()
        client.close()


def test_a_slow_server_is_one_outage_not_a_flapping_breaker(
    logs: pytest.LogCaptureFixture,
) -> None:
    """Replies slower than the socket timeout: the health check's slow pong proves nothing."""
    with RedisServer() as server:
        proxy = FaultProxy(server.port)
        try:
            options = {"socket_timeout": TIMEOUT, "retry_interval": 0.5}
            with RedisCooldownTracker.from_url(proxy.url, prefix="slow", **options) as t:
                assert t.wait_synced(5.0)
                proxy.delay = 0.15  # each way: a reply takes 0.3 s, the timeout is 0.2 s
                end = time.monotonic() + 5.0
                while time.monotonic() < end:
                    t.record_failure("p", Down())
                    time.sleep(0.2)
                proxy.delay = 0.0
        finally:
            proxy.close()
    assert len(lost(logs)) == 1, [r.getMessage() for r in logs.records]


def test_frozen_server(server: RedisServer, logs: pytest.LogCaptureFixture) -> None:
    """A server that stops answering (SIGSTOP) costs each call at most one socket timeout."""
    with RedisCooldownTracker.from_url(server.url, prefix=unique_prefix("hang"), **OPTIONS) as t:
        assert t.wait_synced(5.0)
        call = routed(providers=["a", "b"], cooldown=t)(provider)
        run_for(call, 0.1)

        server.pause()
        durations = run_for(call, 1.5)
        assert max(durations) < BUDGET
        assert t.is_available("a"), "the frozen server was noticed: failing open"
        assert len(lost(logs)) == 1

        server.resume()
        assert wait_until(lambda: t.wait_synced(0.05))
        run_for(call, 0.2)
        assert not t.is_available("a")
    assert (len(lost(logs)), len(back(logs))) == (1, 1)


def test_frozen_server_with_many_threads(server: RedisServer) -> None:
    """Threads calling during a freeze share the breaker: none waits more than the budget."""
    with RedisCooldownTracker.from_url(server.url, prefix=unique_prefix("mt"), **OPTIONS) as t:
        assert t.wait_synced(5.0)
        call = routed(providers=["a", "b"], cooldown=t)(provider)
        server.pause()
        durations: list[float] = []
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                durations.extend(run_for(call, 1.0))
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        server.resume()
    assert errors == []
    # Each thread's first request to the frozen server, and each probe (one per
    # retry_interval), waits for its timeout; every other call asks Redis nothing. A request on
    # a new connection can wait for several: its handshake, then closing it. A call that waited
    # less than a socket timeout did not wait for Redis: six threads spinning on two cores can
    # leave one without the GIL for a tenth of a second (seen: 0.10-0.16 s).
    slow = [d for d in durations if d >= 0.9 * TIMEOUT]
    assert len(slow) <= len(threads) + 1.0 / TIMEOUT + 1, sorted(slow)
    assert len(durations) > 10 * len(slow)
    assert max(durations) < 6 * TIMEOUT


def test_async_outages_never_block_the_event_loop(
    server: RedisServer, logs: pytest.LogCaptureFixture
) -> None:
    """Frozen, then killed and restarted: async calls never raise and the loop keeps ticking.

    The test's own server control runs in a worker thread: only the tracker is under watch.
    """

    async def scenario() -> tuple[list[float], list[float]]:
        tracker = AsyncRedisCooldownTracker.from_url(
            server.url, prefix=unique_prefix("async"), **OPTIONS
        )
        gaps: list[float] = []
        durations: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                started = time.monotonic()
                await asyncio.sleep(0.005)
                gaps.append(time.monotonic() - started)

        @routed(providers=["a", "b"], cooldown=tracker)
        async def call(name: str) -> str:
            return provider(name)

        async def run_calls(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                started = time.monotonic()
                assert await call() == "b"
                durations.append(time.monotonic() - started)
                await asyncio.sleep(0)

        async with tracker:
            await asyncio.wait_for(tracker.wait_synced(), 5.0)
            tick = asyncio.create_task(ticker())
            await run_calls(0.1)
            assert not await tracker.is_available("a")

            await asyncio.to_thread(server.pause)
            await run_calls(1.5)
            assert await tracker.is_available("a")
            await asyncio.to_thread(server.resume)
            await asyncio.wait_for(tracker.wait_synced(), 5.0)
            await run_calls(0.1)
            assert not await tracker.is_available("a")

            await asyncio.to_thread(server.kill)
            await run_calls(0.6)
            await asyncio.to_thread(server.start)
            await asyncio.wait_for(tracker.wait_synced(), 5.0)
            await run_calls(0.1)
            assert not await tracker.is_available("a")
            stop.set()
            await tick
        return gaps, durations

    # A full garbage collection of this (large, late in the suite) process pauses every thread
    # for ~0.2 s: not the tracker's doing, so none may happen while the loop is watched.
    gc.collect()
    gc.disable()
    try:
        gaps, durations = run_async(scenario)
    finally:
        gc.enable()
    assert max(durations) < BUDGET
    assert max(gaps) < 0.1, "the event loop was blocked"
    assert (len(lost(logs)), len(back(logs))) == (2, 2)


def test_server_refusing_writes_but_answering_ping_logs_once(
    server: RedisServer, logs: pytest.LogCaptureFixture
) -> None:
    """A read-only replica answers PING but refuses scripts: one WARNING, no flapping INFO."""
    client = redis.Redis.from_url(server.url, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    tracker = RedisCooldownTracker(
        client, prefix="ro", failure_threshold=1, retry_interval=0.1, health_check_interval=0.05
    )
    try:
        assert tracker.wait_synced(5)
        client.replicaof("127.0.0.1", free_port())  # now every write fails with READONLY
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert tracker.record_failure("a", Down("x")) is False
            time.sleep(0.02)
        messages = [r.levelname for r in logs.records if "Redis" in r.getMessage()]
        assert messages == ["WARNING"]
    finally:
        tracker.close()
        client.close()


def test_databases_of_one_server_do_not_share_cooldowns() -> None:
    """Same prefix, different database numbers: separate applications, separate cooldowns."""
    url = require_redis()
    base = url.rsplit("/", 1)[0]
    prefix = unique_prefix("db")
    one = RedisCooldownTracker.from_url(f"{base}/14", prefix=prefix, failure_threshold=1)
    two = RedisCooldownTracker.from_url(f"{base}/15", prefix=prefix, failure_threshold=1)
    try:
        assert one.wait_synced(5) and two.wait_synced(5)
        assert one.record_failure("gemini", Down("x")) is True
        time.sleep(0.2)  # far beyond the ~1 ms propagation: nothing may arrive at all
        assert two.is_available("gemini")
        assert not one.is_available("gemini")
    finally:
        one.reset()
        one.close()
        two.close()
        delete_prefix(prefix, f"{base}/14")
        delete_prefix(prefix, url)


def test_a_resubscription_after_an_outage_closes_the_breaker(
    server: RedisServer, logs: pytest.LogCaptureFixture
) -> None:
    """redis-py's own reconnection within a listener session reloads, and that proves recovery.

    The outage is noticed after the session began: the reload's snapshot, sent after it, is
    the proof (no ping may close the breaker first: its interval is long).
    """
    control = redis.Redis.from_url(server.url, socket_timeout=2.0)
    # One retry: the listener's pub/sub connection reconnects and resubscribes by itself.
    client = redis.Redis.from_url(server.url, socket_timeout=TIMEOUT, retry=Retry(NoBackoff(), 1))
    tracker = RedisCooldownTracker(
        client, prefix=unique_prefix("resub"), failure_threshold=1, retry_interval=60
    )
    try:
        assert tracker.wait_synced(5)
        control.client_pause(int(TIMEOUT * 3000))  # a caller times out: Redis is lost
        assert tracker.record_failure("a", Down("x")) is False
        assert len(lost(logs)) == 1
        assert wait_until(lambda: control.ping())
        control.client_kill_filter(_type="pubsub")
        assert wait_until(lambda: len(back(logs)) == 1)
        assert tracker.record_failure("a", Down("x")) is True  # tracked again
    finally:
        tracker.close()
        client.close()
        control.close()


def test_an_async_resubscription_after_an_outage_closes_the_breaker(
    server: RedisServer, logs: pytest.LogCaptureFixture
) -> None:
    """The async twin of the test above."""
    import redis.asyncio
    from redis.asyncio.retry import Retry as AsyncRetry

    async def scenario() -> None:
        control = redis.asyncio.Redis.from_url(server.url, socket_timeout=2.0)
        client = redis.asyncio.Redis.from_url(
            server.url, socket_timeout=TIMEOUT, retry=AsyncRetry(NoBackoff(), 1)
        )
        tracker = AsyncRedisCooldownTracker(
            client, prefix=unique_prefix("resub"), failure_threshold=1, retry_interval=60
        )
        try:
            await asyncio.wait_for(tracker.wait_synced(), 5)
            await control.client_pause(int(TIMEOUT * 3000))
            assert await tracker.record_failure("a", Down("x")) is False
            assert len(lost(logs)) == 1
            await control.ping()
            await control.client_kill_filter(_type="pubsub")
            for _ in range(500):
                if back(logs):
                    break
                await asyncio.sleep(0.01)
            assert len(back(logs)) == 1
            assert await tracker.record_failure("a", Down("x")) is True
        finally:
            await tracker.aclose()
            await client.aclose()
            await control.aclose()

    run_async(scenario)
