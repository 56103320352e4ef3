"""A fleet of processes sharing cooldowns through Redis: what it costs the server and the calls.

Each process routes calls with a ``RedisCooldownTracker`` of its own, alternating two routes:
``["flap", "steady"]``, where "flap" is down one ``--flap`` period out of two (the same
schedule in every process, as a real outage would be), and ``["down", "steady"]``, where
"down" never answers. The deployment is a ``redis-server`` of the benchmark's own, or a
three-primary Redis Cluster of its own (never the shared server: its CPU would not be ours).

Reported per deployment and fleet size:

- **requests per routed call**, counted on each process's client, from the routing thread
  only: on the happy path (the first provider answered), on the failure path (a provider
  failed in the call), and the listeners' own requests per call (reloads, pings) apart;
- **propagation** of a cooldown to every process: from the server's clock when the script
  started it (its event's sequence number is the server's time in microseconds) to each
  process's listener receiving the event (same host, same clock), p50 and p99 over every
  (cooldown, process), and p99 of the slowest process per cooldown;
- **server CPU** (``used_cpu_user + used_cpu_sys`` of every primary) per 1,000 routed calls;
- **calls wasted** on "down": attempts that reached it, per cooldown it went through and
  per 1,000 routed calls.

Usage, from the repository root::

    python -m benchmarks.fleet                       # 2, 8, 32 processes; server and cluster
    python -m benchmarks.fleet --quick               # a smoke run: 2 processes, 2 s, server
    python -m benchmarks.fleet --processes 8 --deployment cluster --duration 20
    python -m benchmarks.fleet --tracker-option cooldown=1 --tracker-option growth=1
    python -m benchmarks.fleet --json fleet.json

``run_fleet()`` runs one configuration and returns its figures: other comparisons (say,
another tracker option) call it with their own :class:`FleetConfig`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from resilient_routing import routed
from resilient_routing.cooldown._redis.listener import ListenerBase
from tests.redis_deploy import Cluster, Node
from tests.redis_support import RedisServer, Target, open_tracker

#: The trackers' options unless --tracker-option says otherwise: a provider cools down at its
#: first failure, for 0.5 s each time (no growth: many cooldowns to measure in a short run).
TRACKER_DEFAULTS: dict[str, Any] = {"failure_threshold": 1, "cooldown": 0.5, "growth": 1.0}


@dataclass
class FleetConfig:
    """One run: how many processes, where, for how long, and the trackers' options."""

    processes: int
    target: Target
    duration: float = 15.0
    #: Routed calls per second each process attempts (it sleeps between calls).
    rate: float = 100.0
    #: Seconds "flap" is down, then up, then down...
    flap: float = 1.0
    tracker_options: dict[str, Any] = field(default_factory=lambda: dict(TRACKER_DEFAULTS))


class _Down(Exception):
    pass


# ---------------------------------------------------------------------------------------
# The worker processes.
# ---------------------------------------------------------------------------------------


class _Counter:
    """Requests sent by this process, from the routing (main) thread and from the others."""

    routing = 0
    background = 0
    main = threading.main_thread().ident


class _CountingConnection(redis.Connection):
    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if threading.get_ident() == _Counter.main:
            _Counter.routing += 1
        else:
            _Counter.background += 1
        super().send_packed_command(command, check_health)


def _watch_events(seen: list[tuple[str, int, float]]) -> None:
    """Note when this process's listener receives each cooldown event (benchmark only)."""
    original = ListenerBase.event

    def event(self: ListenerBase, data: object) -> bool:
        arrived = time.time()
        text = data.decode() if isinstance(data, bytes) else str(data)
        with contextlib.suppress(ValueError):
            op, seq, remaining, name = text.split("|", 3)
            if op == "C" and int(remaining) > 0:
                seen.append((name, int(seq), arrived))
        return original(self, data)

    ListenerBase.event = event  # type: ignore[method-assign]


def fleet_worker(index: int, config: dict[str, Any], prefix: str, start: float, out: Any) -> None:
    """Route calls from ``start`` (wall clock) for the configured duration, then report."""
    seen: list[tuple[str, int, float]] = []
    _watch_events(seen)
    options = {**config["tracker_options"], "prefix": prefix}
    client_options = {"connection_class": _CountingConnection}
    tracker = open_tracker(config["target"], client_options=client_options, **options)
    synced = tracker.wait_synced(30.0)
    flap, anchor = config["flap"], config["anchor"]
    rng = random.Random(index)

    @routed(providers=["flap", "steady"], cooldown=tracker)
    def flapping(provider: str) -> str:
        if provider == "flap" and int((time.time() - anchor) / flap) % 2 == 1:
            raise _Down(provider)
        return provider

    @routed(providers=["down", "steady"], cooldown=tracker)
    def stays_down(provider: str) -> str:
        if provider == "down":
            raise _Down(provider)
        return provider

    kinds = {"happy": [0, 0], "skip": [0, 0], "failure": [0, 0]}  # calls, requests
    clearing = 0  # happy calls that sent a request: the first success after failures
    wasted = 0
    pause = 1.0 / config["rate"]
    time.sleep(max(0.0, start - time.time()) + rng.random() * pause)
    background = _Counter.background
    end = start + config["duration"]
    calls = 0
    next_call = time.monotonic()
    while time.time() < end:
        before = _Counter.routing
        result = (flapping if calls % 2 == 0 else stays_down).execute()
        sent = _Counter.routing - before
        kind = "failure" if result.failures else "skip" if result.skipped else "happy"
        kinds[kind][0] += 1
        kinds[kind][1] += sent
        clearing += kind == "happy" and sent > 0
        wasted += sum(1 for name, _ in result.failures if name == "down")
        calls += 1
        next_call += pause
        time.sleep(max(0.0, next_call - time.monotonic()))
    background = _Counter.background - background
    tracker.close()
    out.put(
        {
            "index": index,
            "synced": synced,
            "calls": calls,
            "kinds": kinds,
            "clearing": clearing,
            "background": background,
            "wasted": wasted,
            "events": [e for e in seen if start <= e[1] / 1e6 < end],
        }
    )


# ---------------------------------------------------------------------------------------
# The parent: deployments, CPU, figures.
# ---------------------------------------------------------------------------------------


def _cpu(nodes: list[tuple[str, int]]) -> float:
    total = 0.0
    for host, port in nodes:
        client = redis.Redis(host=host, port=port, socket_timeout=5)
        try:
            info = client.info("cpu")
            total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        finally:
            client.close()
    return total


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_fleet(config: FleetConfig, primaries: list[tuple[str, int]]) -> dict[str, Any]:
    """Run one fleet on ``config.target``; ``primaries`` are the nodes whose CPU is counted."""
    prefix = f"fleet:{os.getpid()}:{random.randrange(10**9)}"
    # A bad tracker option fails here, naming itself, rather than in every worker.
    options = {**config.tracker_options, "prefix": prefix, "listen": False}
    open_tracker(config.target, **options).close()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    # Spawned processes import for a while (32 on 2 cores: many seconds); the schedule
    # starts once they all could have.
    start = time.time() + 3.0 + 0.35 * config.processes
    settings = {**asdict(config), "anchor": start}
    workers = [
        context.Process(target=fleet_worker, args=(i, settings, prefix, start, out), daemon=True)
        for i in range(config.processes)
    ]
    for worker in workers:
        worker.start()
    try:
        # The server's own work (its cron, the idle listeners' connections) as a baseline.
        idle_from = time.time()
        idle_before = _cpu(primaries)
        time.sleep(max(0.0, start - 0.5 - time.time()))
        idle = (_cpu(primaries) - idle_before) / (time.time() - idle_from)
        time.sleep(max(0.0, start - time.time()))
        cpu_before = _cpu(primaries)
        time.sleep(config.duration)
        cpu = _cpu(primaries) - cpu_before
        reports = [_report(out, workers) for _ in workers]
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
    return _figures(config, reports, cpu, idle * config.duration)


def _report(out: Any, workers: list[Any]) -> dict[str, Any]:
    """The next worker's report; fails at once when a worker died instead."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            return dict(out.get(timeout=0.5))
        dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"a fleet worker died (exit codes {dead}): see its traceback above")
    raise TimeoutError("no report from the fleet's workers within 120 s")


def _figures(
    config: FleetConfig, reports: list[dict[str, Any]], cpu: float, idle_cpu: float
) -> dict[str, Any]:
    calls = sum(r["calls"] for r in reports)
    kinds = {
        kind: [sum(r["kinds"][kind][i] for r in reports) for i in (0, 1)]
        for kind in ("happy", "skip", "failure")
    }

    def per_call(kind: str) -> float:
        count, requests = kinds[kind]
        return requests / count if count else float("nan")

    # Cooldowns every process heard of: delay from the server's start to each listener.
    arrivals: dict[tuple[str, int], list[float]] = {}
    for report in reports:
        for name, seq, arrived in report["events"]:
            arrivals.setdefault((name, seq), []).append(arrived - seq / 1e6)
    complete = [d for d in arrivals.values() if len(d) == len(reports)]
    each = [d * 1000 for delays in complete for d in delays]
    slowest = [max(delays) * 1000 for delays in complete]
    down_cooldowns = sum(1 for name, _ in arrivals if name == "down")
    wasted = sum(r["wasted"] for r in reports)
    return {
        "processes": config.processes,
        "all_synced": all(r["synced"] for r in reports),
        "routed_calls": calls,
        "calls_per_kind": {k: v[0] for k, v in kinds.items()},
        "requests_per_call": {
            "happy": per_call("happy"),
            "skip": per_call("skip"),
            "failure": per_call("failure"),
            "all": sum(v[1] for v in kinds.values()) / calls if calls else float("nan"),
            "listener": sum(r["background"] for r in reports) / calls if calls else float("nan"),
        },
        "cooldowns_heard_by_all": len(complete),
        "propagation_ms": {
            "p50": _percentile(each, 0.5),
            "p99": _percentile(each, 0.99),
            "slowest_p50": _percentile(slowest, 0.5),
            "slowest_p99": _percentile(slowest, 0.99),
        },
        "happy_calls_with_a_request": sum(r["clearing"] for r in reports),
        "server_cpu_ms_per_1000_calls": cpu * 1000 / calls * 1000 if calls else float("nan"),
        "server_cpu_ms_per_1000_calls_over_idle": (
            max(0.0, cpu - idle_cpu) * 1000 / calls * 1000 if calls else float("nan")
        ),
        "server_cpu_idle_ms_per_s": idle_cpu / config.duration * 1000,
        "wasted_on_down": {
            "calls": wasted,
            "cooldowns": down_cooldowns,
            "per_cooldown": wasted / down_cooldowns if down_cooldowns else float("nan"),
            "per_1000_calls": wasted * 1000 / calls if calls else float("nan"),
        },
    }


@contextlib.contextmanager
def deployment(kind: str) -> Iterator[tuple[Target, list[tuple[str, int]]]]:
    """A server or a three-primary cluster of the benchmark's own: (target, primaries)."""
    if kind == "server":
        with RedisServer() as server:
            yield server.url, [("127.0.0.1", server.port)]
        return
    made = Cluster(primaries=3)
    try:
        primaries: list[Node] = made.primaries
        yield {"cluster": made.url}, [("127.0.0.1", n.port) for n in primaries]
    finally:
        made.stop()


def _option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    value: Any
    try:
        value = json.loads(raw)  # numbers, true/false, null, quoted strings
    except json.JSONDecodeError:
        value = raw
    return key, value


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| deployment | processes | routed calls | requests/call happy (calls clearing) "
        "| requests/call failure "
        "| listener requests/call | propagation p50 / p99 | slowest process p99 "
        "| server CPU per 1,000 calls (over idle) "
        "| wasted on a dead provider (per cooldown, per 1,000 calls) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        p, w = r["propagation_ms"], r["wasted_on_down"]
        q = r["requests_per_call"]
        lines.append(
            f"| {r['deployment']} | {r['processes']} | {r['routed_calls']:,} "
            f"| {q['happy']:.3f} ({r['happy_calls_with_a_request']}) | {q['failure']:.2f} "
            f"| {q['listener']:.4f} "
            f"| {p['p50']:.2f} / {p['p99']:.2f} ms | {p['slowest_p99']:.2f} ms "
            f"| {r['server_cpu_ms_per_1000_calls']:.1f} ms "
            f"({r['server_cpu_ms_per_1000_calls_over_idle']:.1f} ms) "
            f"| {w['per_cooldown']:.1f}, {w['per_1000_calls']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 processes, 2 s")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--processes", default="2,8,32", help="fleet sizes, comma-separated")
    parser.add_argument(
        "--deployment",
        action="append",
        choices=["server", "cluster"],
        help="where (repeatable); default both",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of traffic")
    parser.add_argument("--rate", type=float, default=100.0, help="calls/s per process")
    parser.add_argument("--flap", type=float, default=1.0, help="seconds down, then up...")
    parser.add_argument(
        "--tracker-option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a tracker option for every process (JSON value), e.g. cooldown=1",
    )
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.processes.split(",")]
    kinds = args.deployment or ["server", "cluster"]
    duration = args.duration
    if args.quick:
        sizes, kinds, duration = [2], args.deployment or ["server"], 2.0
    options = {**TRACKER_DEFAULTS, **dict(args.tracker_option)}
    rows = []
    for kind in kinds:
        with deployment(kind) as (target, primaries):
            for size in sizes:
                print(f"[fleet] {kind}: {size} processes", file=sys.stderr, flush=True)
                config = FleetConfig(size, target, duration, args.rate, args.flap, options)
                rows.append({"deployment": kind, **run_fleet(config, primaries)})
    print(_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"tracker_options": options, "duration": duration, "rows": rows}, handle, indent=2
            )
    return 0 if all(r["all_synced"] and r["routed_calls"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
