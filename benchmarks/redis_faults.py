"""Faults injected into Redis under routed traffic: what each costs a routed call.

Runs the scenarios of ``tests/test_redis_faults.py`` (four worker processes, a redis-server
of its own behind a TCP proxy, each fault held 1.5 s) and prints, per fault: routed calls
that failed, the worst added latency of a call during the fault and its recovery, the time
from the fault's end to each process's "reached Redis again", and how long a cooldown
started in one process took to reach the others after the recovery. First, the failovers of
``tests/test_redis_cluster.py`` and ``tests/test_redis_sentinel.py``: the primary killed
under traffic from sync and async processes (a 3-primary cluster with a replica each, or a
primary, a replica and three sentinels), recovery counted from the kill.

Usage, from the repository root::

    python -m benchmarks.redis_faults
"""

from __future__ import annotations

import sys
from typing import Any

from tests import fault_support as faults
from tests import redis_deploy


def _failovers() -> list[tuple[str, int, int, int, float, float, float]]:
    """The primary killed and a replica promoted: a Redis Cluster, then Sentinel."""
    rows = []
    for name, start, scenario in (
        ("cluster: primary killed, replica promoted", _cluster, faults.cluster_failover),
        ("Sentinel: primary killed, replica promoted", _sentinel, faults.sentinel_failover),
    ):
        print(f"[faults] {name}", file=sys.stderr, flush=True)
        with start() as deployment:
            outcome = scenario(deployment)
        visible = [v for v in outcome.visible_ms() if v is not None]
        back = outcome.back_after_kill()
        rows.append(
            (
                name + " (recovery counted from the kill)",
                len(outcome.errors),
                sum(len(w) for w in outcome.records("WARNING")),
                sum(len(i) for i in outcome.records("INFO")),
                outcome.worst_added_ms(),
                max(back) if back else float("nan"),
                max(visible) if visible else float("nan"),
            )
        )
    return rows


def _cluster() -> Any:
    return redis_deploy.cluster(primaries=3, replicas=1)


def _sentinel() -> Any:
    return redis_deploy.sentinel_group()


def main() -> int:
    rows: list[tuple[str, int, int, int, float, float, float]] = []
    rows += _failovers()
    with faults.deployment() as (server, proxy):
        for name in faults.FAULTS:
            print(f"[faults] {name}", file=sys.stderr, flush=True)
            outcome = faults.scenario(name, server, proxy)
            visible = [v for v in outcome.visible_ms() if v is not None]
            recovery = outcome.recovery()
            rows.append(
                (
                    name,
                    len(outcome.errors),
                    sum(len(w) for w in outcome.records("WARNING")),
                    sum(len(i) for i in outcome.records("INFO")),
                    outcome.worst_added_ms(),
                    max(recovery) if recovery else float("nan"),
                    max(visible) if visible else float("nan"),
                )
            )
    print(
        f"{faults.WORKERS} processes, retry_interval={faults.RETRY_INTERVAL} s, "
        f"socket_timeout={faults.SOCKET_TIMEOUT} s, each fault held 1.5 s\n"
    )
    print(
        "| fault | failed calls | WARNINGs | INFOs | worst added latency per call | "
        "recovery after the fault | cooldown seen by the others after recovery |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, failed, warnings, infos, added, recovery, visible in rows:
        print(
            f"| {name} | {failed} | {warnings} | {infos} | {added:.0f} ms | "
            f"{recovery:.2f} s | {visible:.1f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
