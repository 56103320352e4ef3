"""Several processes sharing one Redis: atomic cooldown starts and fast propagation.

Workers come from a fork server (clean processes, as separate hosts would be) and are
synchronised with barriers so that their failures hit the server at the same moment.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Iterator

import pytest

from resilient_routing.cooldown import RedisCooldownTracker

from .redis_support import (
    Down,
    contention_worker,
    delete_prefix,
    fork_child,
    require_redis,
    unique_prefix,
)

pytestmark = pytest.mark.redis

PROCESSES = 6
FAILURES_EACH = 5


@pytest.fixture
def url() -> str:
    return require_redis()


@pytest.fixture
def prefix(url: str) -> Iterator[str]:
    name = unique_prefix("mp")
    yield name
    delete_prefix(name, url)


def test_simultaneous_failures_in_many_processes_start_one_cooldown(url: str, prefix: str) -> None:
    """6 processes x 5 failures at once: exactly one call starts the cooldown, all see it.

    And a cooldown started in yet another process reaches every one within 100 ms.
    """
    # Forked from a clean single-threaded server process that already imported the workers:
    # no state inherited from this test process, and no interpreter start-up per worker.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.redis_support"])
    barrier = ctx.Barrier(PROCESSES + 1)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=contention_worker, args=(url, prefix, FAILURES_EACH, barrier, results))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        with RedisCooldownTracker.from_url(
            url, prefix=prefix, failure_threshold=1, cooldown=60, listen=False
        ) as parent:
            parent.is_available("warm-up")  # connected before the clock starts
            barrier.wait(60)  # every worker is subscribed
            barrier.wait(30)  # every worker recorded its failures
            barrier.wait(30)  # every worker saw the cooldown
            fired = time.time()
            assert parent.record_failure("prop", Down()) is True
        outcomes = [results.get(timeout=30) for _ in workers]
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.terminate()
                worker.join(5)
    assert all(worker.exitcode == 0 for worker in workers)
    started = [o[0] for o in outcomes]
    assert sum(started) == 1, started
    assert all(o[1] for o in outcomes), "every worker subscribed"
    assert all(o[2] for o in outcomes), "every worker saw the cooldown"
    assert all(o[3] for o in outcomes), "every worker saw the parent's cooldown"
    delays = [o[4] - fired for o in outcomes]
    assert max(delays) < 0.1, delays


@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")
def test_a_forked_child_starts_its_own_listener(url: str, prefix: str) -> None:
    """A tracker inherited through fork works in the child, with a listener of its own."""
    ctx = multiprocessing.get_context("fork")
    with RedisCooldownTracker.from_url(url, prefix=prefix, failure_threshold=1) as tracker:
        assert tracker.wait_synced(5.0)
        results = ctx.Queue()
        child = ctx.Process(target=fork_child, args=(tracker, results))
        child.start()
        synced, started, available = results.get(timeout=30)
        child.join(30)
        assert child.exitcode == 0
        assert (synced, started, available) == (True, True, False)
        deadline = time.monotonic() + 2.0
        while tracker.is_available("forked") and time.monotonic() < deadline:
            time.sleep(0.001)
        assert not tracker.is_available("forked"), "the parent saw the child's cooldown"
        assert tracker._listener.thread is not None and tracker._listener.thread.is_alive()
