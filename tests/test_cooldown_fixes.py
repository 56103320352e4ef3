"""The Redis breaker and listener: stale failures, the health check, a tracker through fork."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from typing import Any

import pytest
import redis.asyncio

from resilient_routing.cooldown import AsyncRedisCooldownTracker, RedisCooldownTracker
from resilient_routing.cooldown._breaker import Breaker
from resilient_routing.cooldown._redis.client import UNREACHABLE, ServerClock
from resilient_routing.cooldown._redis.health import Health
from resilient_routing.cooldown._redis.listener import POLL, ListenerBase
from resilient_routing.cooldown._redis.scripts import Keys
from resilient_routing.cooldown._redis.view import View

from . import fault_support as faults
from . import redis_support


def _listener(breaker: Breaker) -> ListenerBase:
    return ListenerBase(None, None, View(), breaker, Keys("p"), ServerClock(None), 5.0)


def test_an_event_before_the_pong_leaves_the_ping_to_close_the_breaker() -> None:
    """Pub/sub replies come in order: an event published before the PING may precede its pong."""
    breaker = Breaker(0.0, logging.getLogger("test"), "t", UNREACHABLE)
    listener = _listener(breaker)
    breaker.failed(ConnectionError("lost"))
    health = Health(5.0)
    assert health.due(time.monotonic(), breaker) == "ping"
    event = {"type": "message", "data": b"C|1|1000|a"}
    assert listener.heard(event, health, time.monotonic()) is False
    assert breaker.down
    listener.heard({"type": "pong", "data": b""}, health, time.monotonic())
    assert not breaker.down


@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_a_forked_child_closing_its_tracker_leaves_the_parents_subscription() -> None:
    """The child inherits the parent's pub/sub socket: its close() must not shut it down."""
    url = redis_support.require_redis()
    prefix = redis_support.unique_prefix("fork")
    client = redis_support.sync_client(url)
    tracker = RedisCooldownTracker(client, prefix=prefix)
    try:
        assert tracker.wait_synced(5.0)
        pubsub = tracker._listener.pubsub
        pid = os.fork()
        if pid == 0:  # the child: Redis looks lost here, so its listener waits unsubscribed
            code = 1
            try:
                tracker._breaker.failed(ConnectionError("lost in the child"))
                tracker._listener.ensure_started()
                tracker.close()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.3)  # a broken session would have ended by now
        assert tracker._listener.pubsub is pubsub
        assert tracker._view.live
    finally:
        tracker.close()
        client.close()
        redis_support.delete_prefix(prefix, url)


def test_aclose_releases_the_subscription_even_when_closing_it_is_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aclose() cancels the listener again and again: its pub/sub close must still finish.

    The close is slow and cancellable at its await, as redis-py's was before it shielded it.
    """
    url = redis_support.require_redis()
    prefix = redis_support.unique_prefix("aclose")
    teardown = redis.asyncio.client.PubSub._aclose

    async def slow_unshielded_aclose(self: Any) -> None:
        await asyncio.sleep(3 * POLL)  # longer than aclose() waits between its cancels
        await teardown(self)

    monkeypatch.setattr(redis.asyncio.client.PubSub, "aclose", slow_unshielded_aclose)
    control = redis_support.sync_client(url)

    async def scenario() -> None:
        client = redis_support.async_client(url)
        tracker = AsyncRedisCooldownTracker(client, prefix=prefix)
        channel = tracker._keys.channel
        try:
            await asyncio.wait_for(tracker.wait_synced(), 5)
            assert control.pubsub_numsub(channel) == [(channel.encode(), 1)]
            await tracker.aclose()
            assert control.pubsub_numsub(channel) == [(channel.encode(), 0)]
        finally:
            await tracker.aclose()
            await client.aclose()

    try:
        redis_support.run_async(scenario)
    finally:
        control.close()
        redis_support.delete_prefix(prefix, url)


def test_breaker_ignores_the_failure_of_a_request_sent_before_its_recovery() -> None:
    """Old news: a request sent before the probe that closed the breaker, failing after it."""
    breaker = Breaker(10.0, logging.getLogger("test"), "t", UNREACHABLE)
    sent_early = time.monotonic()
    assert breaker.failed(TimeoutError("first to time out"), sent_early)
    probe_sent = time.monotonic()
    breaker.succeeded(probe_sent, "read")
    assert not breaker.down
    assert not breaker.failed(TimeoutError("sent before the probe"), sent_early)
    assert not breaker.down and breaker.allow()
    assert breaker.failed(TimeoutError("sent after the recovery"), time.monotonic())
    assert breaker.down


def test_breaker_counts_a_broken_connection_whenever_it_was_opened() -> None:
    """A subscription that breaks is news whenever it began: no ``since``, it always counts."""
    breaker = Breaker(10.0, logging.getLogger("test"), "t", UNREACHABLE)
    assert breaker.failed(ConnectionError("lost"), time.monotonic())
    breaker.succeeded(time.monotonic(), "ping")
    assert breaker.failed(ConnectionError("the subscription broke"))
    assert breaker.down


@pytest.mark.redis
def test_a_slow_timeout_outlasting_the_recovery_does_not_reopen_the_breaker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client timeout longer than ``retry_interval``, for real: one WARNING, one INFO.

    Redis (behind a proxy) stalls every request. One request times out and opens the breaker;
    another, sent before that, is still waiting when Redis is back and a probe closes the
    breaker; its timeout comes after. It must not reopen the breaker (a second WARNING, and
    another ``retry_interval`` of cooldowns kept in this process only).
    """
    timeout, retry = 2.0, 0.3
    with faults.deployment() as (_, proxy):
        tracker = RedisCooldownTracker.from_url(
            proxy.url,
            prefix=redis_support.unique_prefix("stale"),
            socket_timeout=timeout,
            retry_interval=retry,
            listen=False,
            failure_threshold=1,
        )
        caplog.set_level(logging.INFO, logger="resilient_routing")
        try:
            assert tracker.is_available("p")  # connected while Redis answers
            proxy.delay = 2 * timeout
            start = time.monotonic()
            early = threading.Thread(target=tracker.is_available, args=("p",))
            early.start()  # times out at start + timeout: the breaker opens
            time.sleep(0.8)
            later = threading.Thread(target=tracker.is_available, args=("p",))
            later.start()  # sent before the breaker opens; times out at start + 2.8 s
            early.join()
            assert tracker._breaker.down
            proxy.delay = 0.0
            time.sleep(max(0.0, start + timeout + retry + 0.1 - time.monotonic()))
            assert tracker.is_available("p")  # the probe: Redis answers, the breaker closes
            assert not tracker._breaker.down
            assert time.monotonic() < start + 2.8  # the later request is still waiting
            later.join()
            assert not tracker._breaker.down
            tracker.record_failure("p", TimeoutError("down"))
            assert tracker.cooldown_remaining("p") > 0  # written to Redis: tracking again
        finally:
            proxy.delay = 0.0
            tracker.close()
    lost = [r for r in caplog.records if "lost Redis" in r.getMessage()]
    back = [r for r in caplog.records if "reached Redis again" in r.getMessage()]
    assert (len(lost), len(back)) == (1, 1), [r.getMessage() for r in caplog.records]
