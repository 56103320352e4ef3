"""Faults injected for real under routed traffic from several processes.

A ``redis-server`` of the module's own sits behind a TCP proxy; four worker processes route
calls with a ``RedisCooldownTracker`` each (a provider failing now and then, so that the
trackers write to Redis during the fault). Each fault is injected for 1.5 s: the server frozen
(SIGSTOP), killed and restarted empty, out of memory (writes refused, PING answered), every
connection reset, or slowed past the clients' socket timeout.

Whatever the fault: no routed call fails because of Redis; each process logs one WARNING when
it loses Redis and one INFO when it is back, within ``retry_interval`` + 1 s of the fault's
end; a cooldown started in one process is seen by the others again after the recovery; and
``close()`` leaves no thread or socket behind. ``python -m benchmarks.redis_faults`` prints
the same scenarios' figures (docs/benchmarks.md, "Faults").
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import fault_support as faults
from .redis_support import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def deployment() -> Iterator[tuple[RedisServer, faults.FaultProxy]]:
    with faults.deployment() as made:
        yield made


@pytest.mark.parametrize("fault", list(faults.FAULTS))
def test_a_fault_under_traffic_costs_no_call_and_recovers_in_time(
    fault: str, deployment: tuple[RedisServer, faults.FaultProxy]
) -> None:
    """No call fails, one WARNING and one INFO per process, recovery in time, nothing leaked."""
    server, proxy = deployment
    outcome = faults.scenario(fault, server, proxy)
    assert len(outcome.reports) == faults.WORKERS
    assert all(r["synced"] for r in outcome.reports)
    assert outcome.errors == []
    for warnings, infos in zip(outcome.records("WARNING"), outcome.records("INFO"), strict=True):
        assert [m for _, m in warnings if "lost Redis" in m] == [m for _, m in warnings]
        assert len(warnings) == 1, warnings
        assert len(infos) == 1, infos
        assert "reached Redis again" in infos[0][1]
        assert outcome.fault_start <= warnings[0][0] < outcome.fault_end + 0.5
    assert max(outcome.recovery()) <= faults.RETRY_INTERVAL + 1.0, outcome.recovery()
    assert all(v is not None and v < 1000 for v in outcome.visible_ms()), outcome.visible_ms()
    assert [r["leaked_threads"] for r in outcome.reports] == [[]] * faults.WORKERS
    assert [r["leaked_sockets"] for r in outcome.reports] == [0] * faults.WORKERS
