"""The Redis trackers against the reference semantics, beyond the shared contract suite.

- The contract suite (tests/test_tracker_contract.py) runs here once more, on the trackers
  without a listener (``listen=False``: every check asks Redis), which take other code paths.
- A Hypothesis model check drives a Redis tracker and an InMemoryCooldownTracker with the
  same random operations on one fake clock: every answer must agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_routing import InMemoryCooldownTracker
from resilient_routing.cooldown import RedisCooldownTracker
from resilient_routing.testing import FakeClock

from . import redis_support
from . import test_tracker_contract as contract
from .trackers import Backend

pytestmark = pytest.mark.redis

# Collected again in this module, where `backend` below replaces the conftest's.
globals().update({n: getattr(contract, n) for n in dir(contract) if n.startswith("test_")})
make = contract.make


@pytest.fixture(params=["redis-poll", "redis-async-poll"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The Redis trackers asking Redis at every check."""
    made = redis_support.backend(request.param)
    try:
        yield made
    finally:
        made.close()


class Boom(Exception):
    pass


class Hinted(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__("429")
        self.retry_after = seconds


NAMES = st.sampled_from(["a", "b"])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("fail"), NAMES, st.sampled_from([None, None, None, 0.5, 4, 45, 900])),
        st.tuples(st.just("success"), NAMES),
        st.tuples(st.just("reset"), st.sampled_from([None, "a", "b"])),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 3, 10, 20, 40, 100])),
    ),
    max_size=30,
)


def apply(tracker: Any, clock: FakeClock, op: tuple[Any, ...]) -> object:
    kind = op[0]
    if kind == "fail":
        return tracker.record_failure(op[1], Boom() if op[2] is None else Hinted(op[2]))
    if kind == "success":
        return tracker.record_success(op[1])
    if kind == "reset":
        return tracker.reset(op[1])
    return None


@pytest.mark.parametrize("listen", [True, False], ids=["listen", "poll"])
def test_redis_tracker_agrees_with_the_in_memory_model(listen: bool) -> None:
    """Random failures, hints, successes, resets and waits: same answers as in memory."""
    url = redis_support.require_redis()

    @settings(max_examples=40, deadline=None)
    @given(operations=OPERATIONS)
    def check(operations: list[tuple[Any, ...]]) -> None:
        clock = FakeClock(1000.0)
        policy: dict[str, Any] = {
            "failure_threshold": 2,
            "cooldown": 10,
            "growth": 2,
            "max_cooldown": 60,
        }
        model = InMemoryCooldownTracker(clock=clock, **policy)
        prefix = redis_support.unique_prefix("model")
        client = redis_support.sync_client(url)
        tracker = RedisCooldownTracker(client, prefix=prefix, clock=clock, listen=listen, **policy)
        try:
            if listen:
                assert tracker.wait_synced(5.0)
            for op in operations:
                if op[0] == "advance":
                    clock.advance(op[1])
                else:
                    assert apply(tracker, clock, op) == apply(model, clock, op), op
                for name in ("a", "b"):
                    assert tracker.is_available(name) == model.is_available(name), (op, name)
                    assert tracker.cooldown_remaining(name) == pytest.approx(
                        model.cooldown_remaining(name), abs=0.002
                    )
        finally:
            tracker.close()
            client.close()
            redis_support.delete_prefix(prefix, url)

    check()
