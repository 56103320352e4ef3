"""Recovery without a stampede: calls a fleet wastes on a provider that stays down.

A fleet of processes x threads routes calls over ``["dead", "backup"]`` with one
``RedisCooldownTracker`` per process on a shared prefix of the local Redis. ``dead`` fails every
call (after a few milliseconds, like a refused or 503 answer); its cooldowns are short, so it
"recovers" many times during the run. Without ``half_open``, every caller of every process sends
traffic to it when a cooldown ends; with ``half_open=True`` one probe goes, fleet-wide.

Usage, from the repository root (a Redis server at ``--redis``)::

    python -m benchmarks.stampede                  # 4 processes x 6 threads, 3 s, both modes
    python -m benchmarks.stampede --quick          # a smoke run
    python -m benchmarks.stampede --json out.json

Reports, per mode: calls sent to ``dead``, cooldowns started (fleet-wide, each once), and calls
per recovery: the calls sent to ``dead`` after its first cooldown began, per cooldown after the
first (the first failures, before any cooldown exists, reach it from everywhere in both modes:
that is the outage being discovered, not a recovery); and the routed calls' success rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Fleet", "main", "run_fleet"]

DEAD_LATENCY = 0.005  # seconds a failing call of "dead" takes
BACKUP_LATENCY = 0.002
THINK = 0.002  # seconds between a thread's calls


@dataclass(frozen=True)
class Fleet:
    """One run: the fleet's shape and the tracker's options."""

    processes: int = 4
    threads: int = 6
    seconds: float = 3.0
    cooldown: float = 0.3
    half_open: bool = False
    redis: str = "redis://127.0.0.1:6379/15"


@dataclass
class Outcome:
    """What the fleet did."""

    mode: str
    processes: int
    threads: int
    seconds: float
    calls: int
    succeeded: int
    dead_calls: int
    cooldowns: int
    #: Calls sent to the dead provider after its first cooldown began.
    after_first: int

    @property
    def per_recovery(self) -> float:
        recoveries = self.cooldowns - 1
        return self.after_first / recoveries if recoveries > 0 else float("nan")


def _worker(fleet: Fleet, prefix: str, start_at: float, out: Any) -> None:
    from resilient_routing import RedisCooldownTracker, routed
    from resilient_routing.events import CooldownStarted, RoutingEvent

    lock = threading.Lock()
    counts: dict[str, Any] = {"calls": 0, "ok": 0, "dead": [], "cooldowns": []}

    class Count:
        def on_event(self, event: RoutingEvent) -> None:
            if isinstance(event, CooldownStarted):
                with lock:
                    counts["cooldowns"].append(time.time())

    tracker = RedisCooldownTracker.from_url(
        fleet.redis,
        prefix=prefix,
        failure_threshold=1,
        cooldown=fleet.cooldown,
        growth=1.0,  # every cooldown as long: as many recoveries as the run holds
        half_open=fleet.half_open,
        probe_timeout=1.0,
    )
    tracker.wait_synced(5.0)

    @routed(providers=["dead", "backup"], cooldown=tracker, listeners=[Count()])
    def call(provider: str) -> str:
        if provider == "dead":
            with lock:
                counts["dead"].append(time.time())
            time.sleep(DEAD_LATENCY)
            raise ConnectionError("dead")
        time.sleep(BACKUP_LATENCY)
        return provider

    end = start_at + fleet.seconds

    def loop() -> None:
        while time.time() < start_at:
            time.sleep(0.001)
        while time.time() < end:
            try:
                call()
                ok = 1
            except Exception:
                ok = 0
            with lock:
                counts["calls"] += 1
                counts["ok"] += ok
            time.sleep(THINK)

    threads = [threading.Thread(target=loop) for _ in range(fleet.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tracker.close()
    out.put(counts)


def run_fleet(fleet: Fleet) -> Outcome:
    """Run ``fleet`` against its Redis (a fresh prefix, removed after); return its outcome."""
    import redis

    prefix = f"rrbench:stampede:{uuid.uuid4().hex[:10]}"
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 2.0 + 0.2 * fleet.processes  # every process ready by then
    workers = [
        context.Process(target=_worker, args=(fleet, prefix, start_at, out))
        for _ in range(fleet.processes)
    ]
    for worker in workers:
        worker.start()
    reports = [out.get(timeout=fleet.seconds + 60) for _ in workers]
    for worker in workers:
        worker.join(10)
    client = redis.Redis.from_url(fleet.redis)
    try:
        keys = list(client.scan_iter(match="{" + prefix + "}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
    dead = sorted(t for r in reports for t in r["dead"])
    cooldowns = sorted(t for r in reports for t in r["cooldowns"])
    first = cooldowns[0] if cooldowns else float("inf")
    return Outcome(
        mode="half_open" if fleet.half_open else "plain",
        processes=fleet.processes,
        threads=fleet.threads,
        seconds=fleet.seconds,
        calls=sum(r["calls"] for r in reports),
        succeeded=sum(r["ok"] for r in reports),
        dead_calls=len(dead),
        cooldowns=len(cooldowns),
        after_first=sum(1 for t in dead if t > first),
    )


def table(outcomes: list[Outcome]) -> str:
    """Return the markdown table of the outcomes."""
    lines = [
        "| mode | fleet | calls | success | calls to the dead provider | cooldowns "
        "| calls per recovery |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {o.mode} | {o.processes} processes x {o.threads} threads, {o.seconds:g} s "
        f"| {o.calls:,} | {o.succeeded / o.calls:.2%} | {o.dead_calls} | {o.cooldowns} "
        f"| {o.per_recovery:.2f} |"
        for o in outcomes
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stampede",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--cooldown", type=float, default=0.3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--quick", action="store_true", help="2 processes x 2 threads, 1 s")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the numbers here")
    args = parser.parse_args(argv)
    fleet = Fleet(
        processes=args.processes,
        threads=args.threads,
        seconds=args.seconds,
        cooldown=args.cooldown,
        redis=args.redis,
    )
    if args.quick:
        fleet = dataclasses.replace(fleet, processes=2, threads=2, seconds=1.0)
    outcomes = [
        run_fleet(dataclasses.replace(fleet, half_open=half_open)) for half_open in (False, True)
    ]
    print(table(outcomes))
    if args.json is not None:
        rows = [asdict(o) | {"per_recovery": o.per_recovery} for o in outcomes]
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
