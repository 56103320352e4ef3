"""The orchestrator: servers on this event loop, client processes per contender, the report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from . import report
from .contenders import CONTENDERS, LITELLM_ENV, Shared
from .metrics import summarize
from .scenarios import FULL, QUICK, QUICK_SCENARIOS, Scenario, Settings, scenarios
from .servers import FakeProviders

ROOT = Path(__file__).resolve().parents[2]
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 14


def _progress(message: str) -> None:
    print(f"[outage] {message}", file=sys.stderr, flush=True)


class ClientError(RuntimeError):
    pass


class Client:
    """One client process, spoken to in JSON lines (see ``client.py``)."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path, stderr: IO[bytes]) -> None:
        self.proc, self.log, self._stderr = proc, log, stderr

    @classmethod
    async def spawn(cls, config: dict[str, Any], log: Path) -> Client:
        stderr = log.open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.outage.client",
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=ROOT,
            env={**os.environ, **LITELLM_ENV, "PYTHONUNBUFFERED": "1"},
        )
        client = cls(proc, log, stderr)
        await client.receive("ready", 120)
        return client

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        await self.proc.stdin.drain()

    async def receive(self, op: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            line = b""
        if not line:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise ClientError(f"client process gave no {op!r} answer; its stderr ends:\n{tail}")
        message: dict[str, Any] = json.loads(line)
        if message.get("op") != op:
            raise ClientError(f"expected {op!r} from a client, got {message!r}")
        return message

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.send({"op": "exit"})
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._stderr.close()


async def _run_contender(
    name: str,
    chosen: list[Scenario],
    settings: Settings,
    servers: FakeProviders,
    run_id: str,
    logs: Path,
) -> list[dict[str, Any]]:
    config = {"contender": name, "ports": servers.ports, "settings": settings.to_json()}
    clients = [
        await Client.spawn(
            {**config, "process": k, "processes": settings.processes}, logs / f"{name}-{k}.log"
        )
        for k in range(settings.processes)
    ]
    runs = []
    try:
        for scenario in chosen:
            shared = None
            if settings.processes > 1:
                prefix = f"{run_id}-{name}-{scenario.name}"
                shared = Shared(REDIS_HOST, REDIS_PORT, REDIS_DB, prefix).__dict__
            for client in clients:
                await client.send(
                    {"op": "prepare", "scenario": scenario.to_json(), "shared": shared}
                )
            prepared = [await c.receive("prepared", 120) for c in clients]
            warmup_errors = [e for p in prepared for e in p["warmup_errors"]]
            t0 = time.time() + 0.3
            servers.begin(scenario, t0)
            for client in clients:
                await client.send({"op": "start", "t0": t0})
            bound = scenario.duration + settings.deadline + 60
            results = [await c.receive("result", bound) for c in clients]
            log = servers.end()
            calls = [call for r in results for call in r["calls"]]
            metrics = summarize(
                scenario,
                settings,
                calls,
                sum(r["cpu"] for r in results),
                sum(r["lost"] for r in results),
                log,
            )
            runs.append(
                {
                    "scenario": scenario.name,
                    "contender": name,
                    "warmup_errors": warmup_errors,
                    "metrics": metrics,
                }
            )
            fault = metrics["faults"][0] if metrics["faults"] else {}
            _progress(
                f"{scenario.name:12} {name:18} success {metrics['success']:.3f}  "
                f"fault hits {fault.get('hits', '-')}  divert {fault.get('divert_s', '-')}  "
                f"back {fault.get('back_s', '-')}"
            )
    finally:
        for client in clients:
            await client.close()
    return runs


def _cleanup_redis(run_id: str) -> None:
    """Delete this run's keys (and only those) from the benchmark's Redis database."""
    try:
        import redis
    except ImportError:
        return
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"*{run_id}*", count=500))
        if keys:
            client.delete(*keys)
    except redis.RedisError as exc:
        _progress(f"could not clean Redis up: {exc}")
    finally:
        client.close()


def _keep_logs(logs: Path) -> None:
    """Keep the client processes' stderr only when one of them wrote something."""
    if any(log.stat().st_size for log in logs.iterdir()):
        _progress(f"the client processes wrote to stderr: see {logs}")
    else:
        shutil.rmtree(logs, ignore_errors=True)


def _settings(args: argparse.Namespace) -> Settings:
    settings = QUICK if args.quick else FULL
    changes: dict[str, Any] = {"processes": args.processes}
    if args.duration is not None:
        changes["duration"] = args.duration
    if args.rate is not None:
        changes["rate"] = args.rate
    if args.rr_cooldown is not None:
        changes["rr_tracker"] = {**settings.rr_tracker, "cooldown": args.rr_cooldown}
    if args.rr_growth is not None:
        base = changes.get("rr_tracker", settings.rr_tracker)
        changes["rr_tracker"] = {**base, "growth": args.rr_growth}
    return replace(settings, **changes)


def _pick(given: str | None, known: list[str] | tuple[str, ...], what: str) -> list[str]:
    if given is None:
        return list(known)
    chosen = [n.strip() for n in given.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


async def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    known = scenarios(settings.duration)
    default = QUICK_SCENARIOS if args.quick else tuple(known)
    chosen = [known[n] for n in _pick(args.scenarios or ",".join(default), list(known), "scenario")]
    contenders = _pick(args.contenders, CONTENDERS, "contender")
    run_id = f"outage-bench-{os.getpid()}-{int(time.time())}"
    logs = Path(tempfile.mkdtemp(prefix="outage-bench-"))
    servers = FakeProviders(settings)
    await servers.start()
    _progress(f"servers on ports {servers.ports}")
    runs: list[dict[str, Any]] = []
    try:
        for name in contenders:
            runs += await _run_contender(name, chosen, settings, servers, run_id, logs)
    finally:
        await servers.close()
        if settings.processes > 1:
            _cleanup_redis(run_id)
    _keep_logs(logs)
    order = {s.name: i for i, s in enumerate(chosen)}
    runs.sort(key=lambda r: (order[r["scenario"]], contenders.index(r["contender"])))
    machine = f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    described = {s.name: s.to_json() for s in chosen}
    print(report.preamble(settings, described, machine))
    print()
    print(report.table(runs))
    if args.json:
        report.write_json(
            Path(args.json),
            {
                "settings": settings.to_json(),
                "machine": machine,
                "scenarios": described,
                "contenders": contenders,
                "runs": runs,
            },
        )
    if args.plot:
        report.plot(Path(args.plot), runs)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.outage",
        description="Provider outages over local HTTP servers: resilient_routing, LiteLLM "
        "Router and a tenacity loop under the same faults and traffic.",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (CI)")
    parser.add_argument("--scenarios", help="comma-separated scenario names")
    parser.add_argument("--contenders", help=f"comma-separated, of {', '.join(CONTENDERS)}")
    parser.add_argument("--processes", type=int, default=1, help="client processes (Redis)")
    parser.add_argument("--duration", type=float, help="seconds per run")
    parser.add_argument("--rate", type=float, help="calls per second, all processes")
    parser.add_argument("--rr-cooldown", type=float, help="resilient_routing's cooldown=")
    parser.add_argument("--rr-growth", type=float, help="resilient_routing's growth=")
    parser.add_argument("--json", help="write the results as JSON to this path")
    parser.add_argument("--plot", help="write a PNG timeline to this path")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    return asyncio.run(_run(args))
