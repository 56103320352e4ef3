"""The Redis trackers on a real Redis Cluster, started by the tests.

The tracker contract suite runs on the session's three-primary cluster through the
``redis-cluster`` backends (``tests/conftest.py``). Here: what a user of a cluster relies on
beyond it. A plain prefix keeps every key in one slot and the events on that slot's shard
channel; a healthy routed call asks the cluster nothing; processes start one cooldown and see
each other's at once; a slot moved to another node is followed; and when the primary serving
the prefix is killed under routed traffic (a cluster with replicas, of this module's own), no
call fails, each process logs one WARNING and one INFO, and the state survives the failover.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.client
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from resilient_routing import InvalidConfigError, routed
from resilient_routing.cooldown import AsyncRedisCooldownTracker, RedisCooldownTracker
from resilient_routing.cooldown._redis.listener import POLL

from . import fault_support as faults
from .redis_deploy import Cluster, cluster, cluster_client, free_port
from .redis_support import Down, contention_worker, run_async, unique_prefix

pytestmark = pytest.mark.redis


def _keys(deployment: Cluster, prefix: str) -> dict[int, list[bytes]]:
    """Every key of ``prefix`` in the cluster, by the port of the node holding it."""
    found: dict[int, list[bytes]] = {}
    for node in deployment.primaries:
        keys = list(node.client().scan_iter(match="{" + prefix + "}*"))
        if keys:
            found[node.port] = keys
    return found


@pytest.mark.parametrize("braces", [False, True], ids=["plain prefix", "braced prefix"])
def test_a_plain_prefix_keeps_every_key_in_one_slot_and_events_on_its_shard(
    redis_cluster: Cluster, braces: bool
) -> None:
    """Keys of a prefix share one node and slot; events use sharded pub/sub.

    A prefix needs no braces; one written with braces (as older advice had it) works too.
    """
    prefix = unique_prefix("slot")
    if braces:
        prefix = "{" + prefix + "}"
    client = cluster_client(redis_cluster, False)
    tracker = RedisCooldownTracker(client, prefix=prefix, failure_threshold=1, cooldown=30)
    try:
        assert tracker.wait_synced(5.0)
        for name in ("a", "b:p:c", "{x}", "", "\udc80"):
            assert tracker.record_failure(name, Down()) is True
        tracker.reset("a")
        assert [s.name for s in tracker.states()] == sorted(["b:p:c", "{x}", "", "\udc80"])
        found = _keys(redis_cluster, prefix)
        assert len(found) == 1, found  # one node holds them all
        [(port, keys)] = found.items()
        node = next(n for n in redis_cluster.primaries if n.port == port)
        assert {int(node.call("CLUSTER", "KEYSLOT", k)) for k in keys} == {
            int(node.call("CLUSTER", "KEYSLOT", "{" + prefix + "}"))
        }
        channel = "{" + prefix + "}:events:0"
        assert node.call("PUBSUB", "SHARDNUMSUB", channel) == [channel.encode(), 1]
        assert node.call("PUBSUB", "NUMSUB", channel) == [channel.encode(), 0]
    finally:
        tracker.close()
        client.close()


class _Counting(redis.Connection):
    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sent += 1
        super().send_packed_command(command, check_health)


def test_a_healthy_routed_call_asks_the_cluster_nothing(redis_cluster: Cluster) -> None:
    """Zero requests per healthy routed call (counted on the client), one per failure."""
    client = redis.cluster.RedisCluster.from_url(
        redis_cluster.url,
        socket_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
        connection_class=_Counting,
    )
    tracker = RedisCooldownTracker(client, prefix=unique_prefix("rt"), failure_threshold=3)
    failing = {"a": False}

    @routed(providers=["a", "b"], cooldown=tracker)
    def call(provider: str) -> str:
        if failing.get(provider, False):
            raise Down(provider)
        return provider

    try:
        assert tracker.wait_synced(5.0)
        before = _Counting.sent
        assert [call() for _ in range(500)] == ["a"] * 500
        assert _Counting.sent - before == 0
        failing["a"] = True
        before = _Counting.sent
        assert call() == "b"
        assert _Counting.sent - before == 1  # the failure script; b's success costs nothing
    finally:
        tracker.close()
        client.close()


def test_a_healthy_async_routed_call_asks_the_cluster_nothing(
    redis_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The async tracker on an async cluster client: no request per healthy call, 1 per failure."""
    # The async cluster client takes no connection class: count on redis-py's own.
    sent = [0]
    send = redis.asyncio.Connection.send_packed_command

    async def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        await send(self, command, check_health)

    monkeypatch.setattr(redis.asyncio.Connection, "send_packed_command", counting)

    async def scenario() -> tuple[int, int, str]:
        client = cluster_client(redis_cluster, True)
        tracker = AsyncRedisCooldownTracker(client, prefix=unique_prefix("art"))
        failing = False

        @routed(providers=["a", "b"], cooldown=tracker)
        async def call(provider: str) -> str:
            if provider == "a" and failing:
                raise Down(provider)
            return provider

        try:
            await asyncio.wait_for(tracker.wait_synced(), 5.0)
            before = sent[0]
            for _ in range(500):
                await call()
            healthy = sent[0] - before
            failing = True
            before = sent[0]
            answer = await call()
            return healthy, sent[0] - before, answer
        finally:
            await tracker.aclose()
            await client.aclose()

    assert run_async(scenario) == (0, 1, "b")


def test_processes_on_a_cluster_start_one_cooldown_and_see_each_others(
    redis_cluster: Cluster,
) -> None:
    """4 processes x 5 failures at once: one starts the cooldown; all see the parent's at once."""
    processes = 4
    prefix = unique_prefix("mp")
    target = {"cluster": redis_cluster.url}
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.redis_support"])
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=contention_worker, args=(target, prefix, 5, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        with RedisCooldownTracker.from_url(
            redis_cluster.url, cluster=True, prefix=prefix, failure_threshold=1, listen=False
        ) as parent:
            parent.is_available("warm-up")
            barrier.wait(60)
            barrier.wait(30)
            barrier.wait(30)
            fired = time.time()
            assert parent.record_failure("prop", Down()) is True
        outcomes = [results.get(timeout=30) for _ in workers]
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
    assert sum(o[0] for o in outcomes) == 1, outcomes
    assert all(o[1] and o[2] and o[3] for o in outcomes), outcomes
    delays = [o[4] - fired for o in outcomes]
    assert max(delays) < 0.1, delays  # the bound the single-server test holds too


def test_from_url_builds_cluster_clients(redis_cluster: Cluster) -> None:
    """from_url(cluster=True) gives both trackers a fail-fast cluster client they own."""
    prefix = unique_prefix("url")
    with RedisCooldownTracker.from_url(
        redis_cluster.url, cluster=True, prefix=prefix, failure_threshold=1
    ) as tracker:
        assert isinstance(tracker._client, redis.cluster.RedisCluster)
        assert tracker.wait_synced(5.0)
        assert tracker.record_failure("x", Down()) is True

    async def seen_async() -> float:
        async with AsyncRedisCooldownTracker.from_url(
            redis_cluster.url, cluster=True, prefix=prefix
        ) as atracker:
            assert isinstance(atracker._client, redis.asyncio.cluster.RedisCluster)
            return await atracker.cooldown_remaining("x")

    assert run_async(seen_async) > 0
    with pytest.raises(InvalidConfigError, match="cluster must be a bool, got 'yes'"):
        RedisCooldownTracker.from_url(redis_cluster.url, cluster="yes")  # type: ignore[arg-type]


def test_aclose_while_the_async_listener_subscribes_leaves_no_subscription(
    redis_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aclose() landing while the listener subscribes on its shard closes that connection.

    The subscription went out, its reply is not read yet, and closing the pub/sub is slow
    and cancellable (older redis-py did not shield it): aclose() cancels the listener
    again and again, and the close must still finish.
    """
    prefix = unique_prefix("subscribing")
    channel = "{" + prefix + "}:events:0"
    subscribe = redis.asyncio.client.PubSub.ssubscribe
    teardown = redis.asyncio.client.PubSub._aclose
    sent: list[asyncio.Event] = []

    async def subscribe_then_wait(self: Any, *args: Any, **kwargs: Any) -> None:
        await subscribe(self, *args, **kwargs)
        sent[0].set()
        await asyncio.Event().wait()  # the reply is never read: aclose() cancels this

    async def slow_unshielded_aclose(self: Any) -> None:
        await asyncio.sleep(3 * POLL)  # longer than aclose() waits between its cancels
        await teardown(self)

    monkeypatch.setattr(redis.asyncio.client.PubSub, "ssubscribe", subscribe_then_wait)
    monkeypatch.setattr(redis.asyncio.client.PubSub, "aclose", slow_unshielded_aclose)

    def subscribers() -> int:
        return sum(
            int(node.call("PUBSUB", "SHARDNUMSUB", channel)[1]) for node in redis_cluster.primaries
        )

    async def scenario() -> None:
        sent.append(asyncio.Event())
        client = cluster_client(redis_cluster, True)
        tracker = AsyncRedisCooldownTracker(client, prefix=prefix)
        try:
            assert await tracker.cooldown_remaining("x") == 0  # starts the listener
            await asyncio.wait_for(sent[0].wait(), 5)
            assert subscribers() == 1
            await tracker.aclose()
            assert subscribers() == 0
        finally:
            await tracker.aclose()
            await client.aclose()

    run_async(scenario)


def test_an_unreachable_cluster_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    """No node answers: the async tracker counts providers available and logs one WARNING.

    (The sync cluster client asks for the cluster's nodes when it is built, so there the
    error comes from ``from_url``, before any routed call.)
    """
    caplog.set_level(logging.WARNING, logger="resilient_routing")
    port = free_port()

    async def scenario() -> tuple[float, bool, bool]:
        async with AsyncRedisCooldownTracker.from_url(
            f"redis://127.0.0.1:{port}", cluster=True, prefix=unique_prefix("dead")
        ) as tracker:

            @routed(providers=["a", "b"], cooldown=tracker)
            async def call(provider: str) -> str:
                if provider == "a":
                    raise Down(provider)
                return provider

            answers = [await call() for _ in range(3)]
            return (
                await tracker.cooldown_remaining("a"),
                await tracker.record_failure("a", Down()),
                answers == ["b"] * 3,
            )

    assert run_async(scenario) == (0.0, False, True)
    lost = [r for r in caplog.records if "lost Redis" in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in caplog.records]
    with pytest.raises(redis.exceptions.RedisClusterException):
        RedisCooldownTracker.from_url(f"redis://127.0.0.1:{port}", cluster=True)


def test_a_slot_moved_to_another_node_is_followed(
    redis_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """After the prefix's slot moves, state and events are at the new node; no outage logged."""
    caplog.set_level(logging.INFO, logger="resilient_routing")
    prefix = unique_prefix("move")
    writer = RedisCooldownTracker.from_url(
        redis_cluster.url, cluster=True, prefix=prefix, failure_threshold=1, cooldown=60
    )
    reader = RedisCooldownTracker.from_url(redis_cluster.url, cluster=True, prefix=prefix)
    try:
        assert writer.wait_synced(5.0) and reader.wait_synced(5.0)
        assert writer.record_failure("before", Down()) is True
        tag = "{" + prefix + "}"
        source = redis_cluster.owner(tag)
        target = next(p for p in redis_cluster.primaries if p is not source)
        redis_cluster.move_slot(tag, target)
        assert writer.record_failure("after", Down()) is True
        deadline = time.monotonic() + 5.0
        while reader.is_available("after") and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not reader.is_available("after")
        assert not reader.is_available("before")  # moved with its slot
        channel = tag + ":events:0"
        deadline = time.monotonic() + 5.0
        while target.call("PUBSUB", "SHARDNUMSUB", channel)[1] < 2:
            assert time.monotonic() < deadline, "both listeners subscribed at the new node"
            time.sleep(0.005)
    finally:
        writer.close()
        reader.close()
    assert [r.getMessage() for r in caplog.records if hasattr(r, "redis_tracker")] == []


# ---------------------------------------------------------------------------------------
# The primary serving the prefix killed under routed traffic.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replicated() -> Iterator[Cluster]:
    """Three primaries with a replica each, of this module's own (a primary gets killed)."""
    with cluster(primaries=3, replicas=1) as made:
        yield made


def test_a_killed_primary_costs_no_call_and_its_replica_takes_over(replicated: Cluster) -> None:
    """Sync and async processes: no failed call, one WARNING and one INFO each, state kept."""
    outcome = faults.cluster_failover(replicated)
    _assert_survived_a_failover(outcome)
    new_primary = replicated.owner("{" + outcome.prefix + "}")
    assert new_primary.process is not None, "a live replica serves the prefix now"


def _assert_survived_a_failover(outcome: faults.Outcome) -> None:
    assert len(outcome.reports) == faults.WORKERS
    assert all(r["synced"] for r in outcome.reports)
    assert outcome.errors == []
    for warnings, infos in zip(outcome.records("WARNING"), outcome.records("INFO"), strict=True):
        assert len(warnings) == 1, warnings
        assert "lost Redis" in warnings[0][1]
        assert len(infos) == 1, infos
        assert "reached Redis again" in infos[0][1]
    # Every process followed the new primary by itself: the cooldown started after the
    # failover reached them all, and the one written before it is still running.
    assert all(v is not None and v < 1000 for v in outcome.visible_ms()), outcome.visible_ms()
    assert all(40 < r["survivor"] <= 60 for r in outcome.reports), outcome.reports
    assert [r["leaked_threads"] for r in outcome.reports] == [[]] * faults.WORKERS
    assert [r["leaked_sockets"] for r in outcome.reports] == [0] * faults.WORKERS
