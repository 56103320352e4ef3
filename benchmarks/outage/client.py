"""One client process: a contender under a fixed-rate, open-loop load of concurrent async calls.

Run by the orchestrator (``python -m benchmarks.outage``), never by hand: it takes its
configuration as a JSON argument and speaks JSON lines with the orchestrator, one request and
one answer at a time, on a private copy of stdout (whatever the contenders print goes to
stderr, which the orchestrator keeps in a log file):

- ``{"op": "prepare", "scenario": ..., "shared": ...}``: build the contender (fresh cooldown
  state), make the warm-up calls; answers ``{"op": "prepared", "warmup_errors": [...]}``.
- ``{"op": "start", "t0": ...}``: from the wall-clock instant ``t0``, start one call every
  ``processes / rate`` seconds (this process's share, staggered with the others) for
  ``duration`` seconds, with at most ``concurrency / processes`` in flight; wait for the last
  (each bounded by ``deadline``); answer ``{"op": "result", "calls": [...], "cpu": s}``.
- ``{"op": "exit"}``.

A call's latency runs from its scheduled start (so time spent waiting for a slot counts: the
load is open-loop); a stream succeeds only when every chunk arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from typing import IO, Any

from .contenders import Contender, Shared, build
from .scenarios import Scenario, Settings

PROMPT = "Say something short."


class _Runner:
    def __init__(self, config: dict[str, Any], out: IO[str]) -> None:
        self.name: str = config["contender"]
        self.ports: list[int] = config["ports"]
        self.settings = Settings.from_json(config["settings"])
        self.process: int = config["process"]
        self.processes: int = config["processes"]
        self.out = out
        self.contender: Contender | None = None
        self.scenario: Scenario | None = None
        self.t0 = 0.0

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    async def call(self, stream: bool) -> int:
        """One call; the number of stream chunks received (1 for a completion)."""
        assert self.contender is not None
        if not stream:
            await self.contender.complete(PROMPT)
            return 1
        count = 0
        async with contextlib.aclosing(self.contender.stream(PROMPT)) as chunks:
            async for _ in chunks:
                count += 1
        return count

    async def prepare(self, scenario: Scenario, shared: Shared | None) -> None:
        self.scenario = scenario
        self.contender = build(self.name, self.ports, self.settings, shared)
        errors = []
        for _ in range(self.settings.warmup):
            try:
                async with asyncio.timeout(self.settings.deadline):
                    await self.call(scenario.stream)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
        self.send({"op": "prepared", "warmup_errors": errors})

    async def one(self, at: float, slots: asyncio.Semaphore, calls: list[dict[str, Any]]) -> None:
        assert self.scenario is not None
        settings, stream = self.settings, self.scenario.stream
        first: float | None = None
        error: str | None = None
        try:
            # The deadline covers the wait for a slot too: the load is open-loop.
            async with asyncio.timeout(settings.deadline), slots:
                if not stream:
                    await self.call(False)
                else:
                    count = 0
                    assert self.contender is not None
                    async with contextlib.aclosing(self.contender.stream(PROMPT)) as chunks:
                        async for _ in chunks:
                            if first is None:
                                first = time.time()
                            count += 1
                    if count != settings.stream_chunks:
                        error = f"IncompleteStream({count} of {settings.stream_chunks} chunks)"
        except TimeoutError:
            error = "Deadline"
        except Exception as exc:
            error = type(exc).__name__
        end = time.time()
        calls.append(
            {
                "t": round(at - self.t0, 4),
                "latency": round(end - at, 5),
                "ttft": round(first - at, 5) if first is not None else None,
                "ok": error is None,
                "error": error,
            }
        )

    async def run(self, t0: float) -> None:
        assert self.scenario is not None
        assert self.contender is not None
        settings = self.settings
        self.t0 = t0
        rate = settings.rate / self.processes
        count = round(self.scenario.duration * rate)
        offset = self.process / settings.rate
        slots = asyncio.Semaphore(max(1, settings.concurrency // self.processes))
        calls: list[dict[str, Any]] = []
        await asyncio.sleep(max(0.0, t0 - time.time()))
        cpu = time.process_time()
        tasks = []
        for i in range(count):
            at = t0 + offset + i / rate
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one(at, slots, calls)))
        # Each call ends within its deadline; bound the wait all the same.
        _, pending = await asyncio.wait(tasks, timeout=settings.deadline + 5)
        for task in pending:
            task.cancel()
        cpu = time.process_time() - cpu
        lost = len(pending)
        await self.contender.aclose()
        self.contender = None
        self.send({"op": "result", "calls": calls, "cpu": cpu, "lost": lost})


async def _main(config: dict[str, Any], out: IO[str]) -> None:
    runner = _Runner(config, out)
    loop = asyncio.get_running_loop()
    runner.send({"op": "ready"})
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        message = json.loads(line)
        if message["op"] == "prepare":
            shared = Shared(**message["shared"]) if message["shared"] else None
            await runner.prepare(Scenario.from_json(message["scenario"]), shared)
        elif message["op"] == "start":
            await runner.run(message["t0"])
        else:
            return


def main() -> None:
    # The protocol gets a private copy of stdout; anything printed goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    asyncio.run(_main(json.loads(sys.argv[1]), out))


if __name__ == "__main__":
    main()
