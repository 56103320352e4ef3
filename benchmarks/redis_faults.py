"""Faults injected into Redis under routed traffic: what each costs a routed call.

Runs the scenarios of ``tests/test_redis_faults.py`` (four worker processes, a redis-server
of its own behind a TCP proxy, each fault held 1.5 s) and prints, per fault: routed calls
that failed, the worst added latency of a call during the fault and its recovery, the time
from the fault's end to each process's "reached Redis again", and how long a cooldown
started in one process took to reach the others after the recovery.

Usage, from the repository root::

    python -m benchmarks.redis_faults
"""

from __future__ import annotations

import sys

from tests import fault_support as faults


def main() -> int:
    with faults.deployment() as (server, proxy):
        rows = []
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
