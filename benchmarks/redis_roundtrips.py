"""What the Redis trackers cost a routed call, and how fast a cooldown reaches other processes.

Run with a Redis server at REDIS_URL (default redis://127.0.0.1:6379/15):

    python benchmarks/redis_roundtrips.py [--calls 2000] [--samples 50]

- Round trips per healthy call: routed calls whose first provider succeeds, through
  RedisCooldownTracker and AsyncRedisCooldownTracker, counting every request their clients
  send (a script call is one request; the commands it runs on the server are not). The goal
  is zero: the trackers answer from their local view, kept current by pub/sub.
- Round trips per failed attempt, for comparison (one script each).
- Propagation delay: another process records a failure that starts a cooldown; this process
  polls its tracker's local view until it shows the cooldown. Measured from just before the
  other process's call to the moment this process sees it (same host, same clock).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from resilient_routing import routed
from resilient_routing.cooldown import AsyncRedisCooldownTracker, RedisCooldownTracker

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
TIMEOUTS: dict[str, Any] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}


class Down(Exception):
    pass


def counting_sync_client(url: str) -> tuple[redis.Redis, list[int]]:
    sent = [0]

    class Counting(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent[0] += 1
            super().send_packed_command(command, check_health)

    client = redis.Redis.from_url(
        url, retry=Retry(NoBackoff(), 0), connection_class=Counting, **TIMEOUTS
    )
    return client, sent


def counting_async_client(url: str) -> tuple[redis.asyncio.Redis, list[int]]:
    sent = [0]

    class Counting(redis.asyncio.Connection):
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent[0] += 1
            await super().send_packed_command(command, check_health)

    client = redis.asyncio.Redis.from_url(
        url, retry=AsyncRetry(NoBackoff(), 0), connection_class=Counting, **TIMEOUTS
    )
    return client, sent


def prefix() -> str:
    return f"rrbench:{uuid.uuid4().hex[:12]}"


def cleanup(name: str) -> None:
    client = redis.Redis.from_url(URL, **TIMEOUTS)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def sync_costs(calls: int) -> tuple[float, float]:
    client, sent = counting_sync_client(URL)
    name = prefix()
    with RedisCooldownTracker(client, prefix=name, failure_threshold=10**9) as tracker:
        if not tracker.wait_synced(5.0):
            sys.exit("the tracker could not subscribe to Redis")

        @routed(providers=["primary", "backup"], cooldown=tracker)
        def healthy(provider: str) -> str:
            return provider

        @routed(providers=["flaky", "backup"], cooldown=tracker)
        def failing(provider: str) -> str:
            if provider == "flaky":
                raise Down(provider)
            return provider

        before = sent[0]
        for _ in range(calls):
            healthy()
        per_healthy = (sent[0] - before) / calls
        before = sent[0]
        for _ in range(calls // 10):
            failing()
        per_failing = (sent[0] - before) / (calls // 10)
    client.close()
    cleanup(name)
    return per_healthy, per_failing


def async_costs(calls: int) -> float:
    async def run() -> float:
        client, sent = counting_async_client(URL)
        name = prefix()
        async with AsyncRedisCooldownTracker(client, prefix=name) as tracker:
            await asyncio.wait_for(tracker.wait_synced(), 5.0)

            @routed(providers=["primary", "backup"], cooldown=tracker)
            async def healthy(provider: str) -> str:
                return provider

            before = sent[0]
            for _ in range(calls):
                await healthy()
            per_healthy = (sent[0] - before) / calls
        await client.aclose()
        cleanup(name)
        return per_healthy

    return asyncio.run(run())


def fire(name: str, samples: int, ready: Any, seen: Any, stamps: Any) -> None:
    """In another process: start one cooldown per sample, stamping when each call began."""
    with RedisCooldownTracker.from_url(
        URL, prefix=name, failure_threshold=1, cooldown=60, listen=False
    ) as tracker:
        tracker.is_available("warm-up")
        ready.set()
        for i in range(samples):
            seen.wait(10)
            seen.clear()
            stamps.put(time.time())
            tracker.record_failure(f"p{i}", Down())


def propagation(samples: int) -> list[float]:
    name = prefix()
    ctx = multiprocessing.get_context("spawn")
    ready, seen, stamps = ctx.Event(), ctx.Event(), ctx.Queue()
    delays: list[float] = []
    with RedisCooldownTracker.from_url(URL, prefix=name) as tracker:
        if not tracker.wait_synced(5.0):
            sys.exit("the tracker could not subscribe to Redis")
        other = ctx.Process(target=fire, args=(name, samples, ready, seen, stamps))
        other.start()
        ready.wait(30)
        seen.set()
        for i in range(samples):
            deadline = time.monotonic() + 5.0
            while tracker.is_available(f"p{i}") and time.monotonic() < deadline:
                time.sleep(0.0001)
            observed = time.time()
            delays.append(observed - stamps.get(timeout=10))
            seen.set()
        other.join(10)
    cleanup(name)
    return delays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args(argv)
    try:
        redis.Redis.from_url(URL, **TIMEOUTS).ping()
    except redis.RedisError as exc:
        print(f"no Redis at {URL} ({exc}); set REDIS_URL", file=sys.stderr)
        return 1
    per_healthy, per_failing = sync_costs(args.calls)
    per_healthy_async = async_costs(args.calls)
    print(f"Redis at {URL}")
    print(f"round trips per healthy routed call (sync):  {per_healthy:.3f}  ({args.calls} calls)")
    print(f"round trips per healthy routed call (async): {per_healthy_async:.3f}")
    print(f"round trips per call with one failed attempt: {per_failing:.3f}")
    delays = sorted(d * 1000 for d in propagation(args.samples))
    p95 = delays[max(0, round(0.95 * len(delays)) - 1)]
    print(
        f"cooldown propagation to another process: median {statistics.median(delays):.2f} ms, "
        f"p95 {p95:.2f} ms, max {delays[-1]:.2f} ms ({len(delays)} samples)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
