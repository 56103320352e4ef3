"""The Redis trackers on a primary managed by Redis Sentinel, on real servers.

The tracker contract suite runs on the session's Sentinel group through the
``redis-sentinel`` backends (``tests/conftest.py``). Here, with a group of this module's own
(a primary, a replica, three sentinels): the primary is killed under routed traffic from sync
and async processes, and the sentinels promote the replica. No routed call fails, each
process logs one WARNING and one INFO, follows the new primary by itself, and a cooldown
written (and replicated) before the failover is still running after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from resilient_routing import InvalidConfigError
from resilient_routing.cooldown import AsyncRedisCooldownTracker, RedisCooldownTracker

from . import fault_support as faults
from .redis_deploy import SERVICE, SentinelGroup, sentinel_group
from .redis_support import Down, run_async, unique_prefix
from .test_redis_cluster import _assert_survived_a_failover

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    """A primary, a replica and three sentinels, of this module's own (the primary dies)."""
    with sentinel_group() as made:
        yield made


def test_from_sentinel_follows_the_primary(redis_sentinels: SentinelGroup) -> None:
    """from_sentinel() gives both trackers a client on the primary the sentinels name."""
    prefix = unique_prefix("sentinel")
    with RedisCooldownTracker.from_sentinel(
        redis_sentinels.addresses, SERVICE, prefix=prefix, failure_threshold=1
    ) as tracker:
        assert tracker.wait_synced(5.0)
        assert tracker.record_failure("x", Down()) is True
        primary = redis_sentinels.primary().client()
        assert primary.exists("{" + prefix + "}:names") == 1
        primary.close()

    async def seen_async() -> float:
        async with AsyncRedisCooldownTracker.from_sentinel(
            redis_sentinels.addresses, SERVICE, prefix=prefix
        ) as atracker:
            return await atracker.cooldown_remaining("x")

    assert run_async(seen_async) > 0


@pytest.mark.parametrize(
    ("sentinels", "service", "message"),
    [
        ([], SERVICE, "sentinels must be a non-empty sequence of (host, port) pairs"),
        ("localhost:26379", SERVICE, "got 'localhost:26379'"),
        ([("localhost", "26379")], SERVICE, "got the item ('localhost', '26379')"),
        ([("localhost", 26379, 1)], SERVICE, "got the item ('localhost', 26379, 1)"),
        ([("localhost", 0)], SERVICE, "got the item ('localhost', 0)"),
        ([("localhost", 26379)], "", "service_name must be a non-empty str, got ''"),
    ],
)
def test_from_sentinel_names_a_bad_argument(sentinels: Any, service: Any, message: str) -> None:
    """Malformed sentinels or service name: InvalidConfigError naming the value."""
    with pytest.raises(InvalidConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RedisCooldownTracker.from_sentinel(sentinels, service)


def test_a_killed_primary_costs_no_call_and_a_replica_takes_over(group: SentinelGroup) -> None:
    """Sync and async processes: no failed call, one WARNING and one INFO each, state kept."""
    old = group.primary()
    outcome = faults.sentinel_failover(group)
    _assert_survived_a_failover(outcome)
    new = group.primary()
    assert new is not old
    client = new.client()
    try:
        assert client.info("replication")["role"] == "master"
    finally:
        client.close()
