from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilient_routing
from resilient_routing import InMemoryCooldownTracker, configure, get_config
from resilient_routing.testing import FakeClock

from .harness import Harness
from .trackers import Backend, memory_backend

pytest_plugins = ["pytester", "resilient_routing.pytest_plugin"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def fresh_config(clock: FakeClock) -> Iterator[InMemoryCooldownTracker]:
    """Give every test a fresh global tracker on a fake clock; restore the config after."""
    saved = get_config()
    tracker = InMemoryCooldownTracker(clock=clock)
    configure(
        cooldown=tracker,
        exempt_providers=(),
        logger=logging.getLogger("resilient_routing"),
        listeners=(),
    )
    yield tracker
    configure(
        cooldown=saved.cooldown,
        exempt_providers=saved.exempt_providers,
        logger=saved.logger,
        listeners=saved.listeners,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture(params=["sync", "async"])
def h(request: pytest.FixtureRequest) -> Harness:
    """A harness routing sync or async: one test covers both kinds of routed function."""
    return Harness(request.param)


@pytest.fixture
def tracker(clock: FakeClock) -> InMemoryCooldownTracker:
    """A tracker on the fake clock that cools a provider down for 60 s at its first failure."""
    return InMemoryCooldownTracker(failure_threshold=1, cooldown=60, clock=clock)


@pytest.fixture
def wall_clock() -> Callable[[], float]:
    return lambda: 1_700_000_000.0


def _backends() -> list[str]:
    return [
        "memory",
        "redis",
        "redis-async",
        "redis-cluster",
        "redis-cluster-async",
        "redis-sentinel",
        "redis-sentinel-async",
    ]


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    """A Redis Cluster of three primaries, of the session's own (never killed in)."""
    from . import redis_deploy

    with redis_deploy.cluster(primaries=3) as made:
        yield made


@pytest.fixture(scope="session")
def redis_sentinels() -> Iterator[Any]:
    """A primary, a replica and three sentinels, of the session's own (never failed over)."""
    from . import redis_deploy

    with redis_deploy.sentinel_group() as made:
        yield made


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Every cooldown tracker backend: the contract suite runs once per backend.

    Redis on one server, on a Redis Cluster, and on a primary found through Sentinel.
    """
    if request.param == "memory":
        yield memory_backend()
        return
    from . import redis_deploy, redis_support

    connect = None
    if request.param.startswith("redis-cluster"):
        connect = redis_deploy.cluster_connect(request.getfixturevalue("redis_cluster"))
    elif request.param.startswith("redis-sentinel"):
        connect = redis_deploy.sentinel_connect(request.getfixturevalue("redis_sentinels"))
    made = redis_support.backend(request.param, connect)
    try:
        yield made
    finally:
        made.close()


__all__ = ["IN_CI", "resilient_routing"]
