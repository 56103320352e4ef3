"""Fault injection for the Redis trackers: a TCP proxy, traffic workers, scenarios.

Used by ``tests/test_redis_faults.py`` (which asserts) and ``benchmarks/redis_faults.py``
(which prints the figures of docs/benchmarks.md). Everything runs on loopback against
``redis-server`` processes of its own, never the shared server.

A scenario runs routed traffic in several worker processes, each with its own
``RedisCooldownTracker`` through a :class:`FaultProxy` in front of a :class:`RedisServer`,
injects one fault for a while, and collects what the workers saw: failed routed calls,
call latencies, the tracker's log records, when a cooldown started in one process became
visible in the others after the recovery, and what was left open after ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import random
import select
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from resilient_routing import routed

from .redis_support import (
    RedisServer,
    Target,
    free_port,
    open_async_tracker,
    open_tracker,
    sync_client,
)

#: Worker processes per scenario.
WORKERS = 4
#: The trackers' breaker interval in these scenarios (seconds).
RETRY_INTERVAL = 0.5
#: The clients' socket timeout (seconds): a slower server counts as an outage.
SOCKET_TIMEOUT = 0.25
#: Traffic before the fault, for a baseline (seconds).
WARMUP = 1.0
#: Traffic after the fault ends: recovery, then the cross-process check (seconds).
AFTERMATH = RETRY_INTERVAL + 2.5


class FaultProxy:
    """A TCP proxy on loopback that can delay traffic or reset every connection at once.

    Threads, one pair per connection: enough for a few hundred connections of a test.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.delay = 0.0
        self.refusing = False
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=128)
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            while True:
                ready, _, _ = select.select([source], [], [], 0.5)
                if self._closed:
                    break
                if not ready:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                if self.delay:
                    time.sleep(self.delay)
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def reset_all(self) -> int:
        """Reset every open connection (RST, as a crashed middlebox would); return how many."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)
        return len(pairs)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.reset_all()
        self._thread.join(2)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()


# ---------------------------------------------------------------------------------------
# The workers.
# ---------------------------------------------------------------------------------------


class _Down(Exception):
    """A provider failure of the traffic (not Redis's)."""


class _Records(logging.Handler):
    """Keeps the trackers' own records (Redis lost, Redis back), not the routing's."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[float, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "redis_tracker", None) is not None:
            self.seen.append((time.monotonic(), record.levelname, record.getMessage()))


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
    return count


def traffic_worker(
    index: int, url: Target, prefix: str, start: float, end: float, visible_at: float, out: Any
) -> None:
    """Route calls from ``start`` to ``end`` (monotonic seconds), then report.

    Providers never fail because of Redis: any exception a routed call raises is a failure
    the tracker let through. Worker 0 starts a cooldown of "marker" at ``visible_at``; every
    worker notes how long it took to see it. At the end each reports what is left of the
    cooldown of "survivor" (which a failover test starts before the fault).
    """
    records = _Records()
    logger = logging.getLogger("resilient_routing")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    sockets_before = _sockets()
    threads_before = {t.name for t in threading.enumerate()}
    tracker = open_tracker(
        url,
        prefix=prefix,
        socket_timeout=SOCKET_TIMEOUT,
        retry_interval=RETRY_INTERVAL,
        health_check_interval=0.5,
        failure_threshold=1,
        cooldown=0.5,
    )
    synced = tracker.wait_synced(5.0)
    rng = random.Random(index)

    @routed(providers=["flaky", "steady"], cooldown=tracker)
    def call(provider: str) -> str:
        if provider == "flaky" and rng.random() < 0.2:
            raise _Down(provider)  # recorded: the tracker writes to Redis during the fault
        return provider

    errors: list[str] = []
    calls: list[tuple[float, float]] = []
    while time.monotonic() < start:
        time.sleep(0.005)
    visible_after: float | None = None
    marked = False
    while (now := time.monotonic()) < end:
        if now >= visible_at and visible_after is None:
            if index == 0 and not marked:
                tracker.record_failure("marker", _Down("marker"))
                marked = True
            if not tracker.is_available("marker"):
                visible_after = time.monotonic() - visible_at
        began = time.perf_counter()
        try:
            call()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        calls.append((now, time.perf_counter() - began))
        time.sleep(0.002)
    survivor = tracker.cooldown_remaining("survivor")
    tracker.close()
    time.sleep(0.1)
    leaked_threads = sorted({t.name for t in threading.enumerate()} - threads_before)
    out.put(
        {
            "index": index,
            "synced": synced,
            "errors": errors,
            "calls": calls,
            "records": records.seen,
            "visible_after": visible_after,
            "survivor": survivor,
            "leaked_threads": leaked_threads,
            "leaked_sockets": _sockets() - sockets_before,
        }
    )


def async_traffic_worker(
    index: int, url: Target, prefix: str, start: float, end: float, visible_at: float, out: Any
) -> None:
    """:func:`traffic_worker` with an ``AsyncRedisCooldownTracker`` and an async routed call."""
    records = _Records()
    logger = logging.getLogger("resilient_routing")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    sockets_before = _sockets()

    async def main() -> dict[str, Any]:
        tracker = open_async_tracker(
            url,
            prefix=prefix,
            socket_timeout=SOCKET_TIMEOUT,
            retry_interval=RETRY_INTERVAL,
            health_check_interval=0.5,
            failure_threshold=1,
            cooldown=0.5,
        )
        try:
            await asyncio.wait_for(tracker.wait_synced(), 5.0)
            synced = True
        except TimeoutError:
            synced = False
        rng = random.Random(index)

        @routed(providers=["flaky", "steady"], cooldown=tracker)
        async def call(provider: str) -> str:
            if provider == "flaky" and rng.random() < 0.2:
                raise _Down(provider)
            return provider

        errors: list[str] = []
        calls: list[tuple[float, float]] = []
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        visible_after: float | None = None
        marked = False
        while (now := time.monotonic()) < end:
            if now >= visible_at and visible_after is None:
                if index == 0 and not marked:
                    await tracker.record_failure("marker", _Down("marker"))
                    marked = True
                if not await tracker.is_available("marker"):
                    visible_after = time.monotonic() - visible_at
            began = time.perf_counter()
            try:
                await call()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            calls.append((now, time.perf_counter() - began))
            await asyncio.sleep(0.002)
        survivor = await tracker.cooldown_remaining("survivor")
        await tracker.aclose()
        return {
            "index": index,
            "synced": synced,
            "errors": errors,
            "calls": calls,
            "visible_after": visible_after,
            "survivor": survivor,
            # An event loop of its own: asyncio.run() ends every task it started.
            "leaked_threads": [],
        }

    report = asyncio.run(main())
    report["records"] = records.seen
    report["leaked_sockets"] = _sockets() - sockets_before
    out.put(report)


# ---------------------------------------------------------------------------------------
# Scenarios.
# ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the workers of one scenario saw."""

    name: str
    fault_start: float
    fault_end: float
    reports: list[dict[str, Any]] = field(default_factory=list)
    prefix: str = ""

    @property
    def errors(self) -> list[str]:
        return [e for r in self.reports for e in r["errors"]]

    def records(self, level: str) -> list[list[tuple[float, str]]]:
        """Per worker: the (time, message) of its records at ``level``."""
        return [[(t, m) for t, lv, m in r["records"] if lv == level] for r in self.reports]

    def recovery(self) -> list[float]:
        """Per worker: seconds from the end of the fault to its INFO (Redis back)."""
        return [infos[-1][0] - self.fault_end for infos in self.records("INFO") if infos]

    def baseline_ms(self) -> float:
        """The median call latency before the fault, in ms."""
        before = [lat for r in self.reports for t, lat in r["calls"] if t < self.fault_start]
        return statistics.median(before) * 1000 if before else 0.0

    def worst_added_ms(self) -> float:
        """The slowest call during the fault (and the recovery), over the baseline, in ms."""
        until = self.fault_end + RETRY_INTERVAL + 1.0
        during = [
            lat for r in self.reports for t, lat in r["calls"] if self.fault_start <= t < until
        ]
        return max(0.0, (max(during) * 1000 if during else 0.0) - self.baseline_ms())

    def back_after_kill(self) -> list[float]:
        """Per worker: seconds from the start of the fault (the kill) to its INFO."""
        return [infos[-1][0] - self.fault_start for infos in self.records("INFO") if infos]

    def visible_ms(self) -> list[float | None]:
        return [
            None if r["visible_after"] is None else r["visible_after"] * 1000 for r in self.reports
        ]


@contextlib.contextmanager
def deployment() -> Iterator[tuple[RedisServer, FaultProxy]]:
    """A redis-server of its own behind a fault proxy (one per test module)."""
    server = RedisServer().start()
    proxy = FaultProxy(server.port)
    try:
        yield server, proxy
    finally:
        proxy.close()
        server.kill()


def run(
    name: str,
    target: Target,
    inject: Callable[[], None],
    heal: Callable[[], None],
    duration: float,
    prefix: str | None = None,
    mixed: bool = False,
) -> Outcome:
    """Run traffic in the workers; inject the fault after the warm-up, heal it ``duration`` on.

    ``mixed``: every other worker routes async calls with an ``AsyncRedisCooldownTracker``.
    """
    prefix = prefix or unique_prefix(name)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    # Spawned workers take a while to import: the schedule starts once they all could.
    start = time.monotonic() + 4.0
    fault_start = start + WARMUP
    fault_end = fault_start + duration
    visible_at = fault_end + RETRY_INTERVAL + 1.2
    end = visible_at + 1.3
    workers = [
        context.Process(
            target=async_traffic_worker if mixed and i % 2 else traffic_worker,
            args=(i, target, prefix, start, end, visible_at, out),
            daemon=True,
        )
        for i in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    outcome = Outcome(name, fault_start, fault_end, prefix=prefix)
    try:
        _sleep_until(fault_start)
        inject()
        _sleep_until(fault_end)
        heal()
        for _ in workers:
            outcome.reports.append(out.get(timeout=end - time.monotonic() + 30))
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
    outcome.reports.sort(key=lambda r: r["index"])
    return outcome


def unique_prefix(name: str) -> str:
    return f"faults:{name}:{os.getpid()}:{random.randrange(10**9)}"


def _sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.monotonic()))


def flush(server: RedisServer) -> None:
    client = sync_client(server.url, timeout=1.0)
    try:
        client.flushall()
    finally:
        client.close()


# -- the faults ---------------------------------------------------------------------------

#: A fault: given the deployment, what injects it and what heals it.
Fault = Callable[[RedisServer, "FaultProxy"], tuple[Callable[[], None], Callable[[], None]]]
Actions = tuple[Callable[[], None], Callable[[], None]]


def freeze(server: RedisServer, proxy: FaultProxy) -> Actions:
    """SIGSTOP the server, then SIGCONT it."""
    return server.pause, server.resume


def restart(server: RedisServer, proxy: FaultProxy) -> Actions:
    """Kill the server (SIGKILL), then start a new, empty one on the same port."""
    return server.kill, server.start


def out_of_memory(server: RedisServer, proxy: FaultProxy) -> Actions:
    """Fill the server past its maxmemory (writes refused, PING answered), then free it."""
    client = sync_client(server.url, timeout=2.0)

    def inject() -> None:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory-policy", "noeviction")
        client.set("faults:filler", b"x" * 4_000_000)
        client.config_set("maxmemory", str(used + 1_000_000))

    def heal() -> None:
        client.config_set("maxmemory", "0")
        client.delete("faults:filler")
        client.close()

    return inject, heal


def connection_reset(server: RedisServer, proxy: FaultProxy) -> Actions:
    """Reset every connection through the proxy, and refuse new ones, for a while."""

    def inject() -> None:
        proxy.refusing = True
        proxy.reset_all()

    def heal() -> None:
        proxy.refusing = False

    return inject, heal


def latency(server: RedisServer, proxy: FaultProxy) -> Actions:
    """Delay every chunk through the proxy past the clients' socket timeout, then stop."""

    def inject() -> None:
        proxy.delay = SOCKET_TIMEOUT * 2

    def heal() -> None:
        proxy.delay = 0.0

    return inject, heal


FAULTS: dict[
    str, Callable[[RedisServer, FaultProxy], tuple[Callable[[], None], Callable[[], None]]]
] = {
    "freeze (SIGSTOP/SIGCONT)": freeze,
    "kill and restart": restart,
    "out of memory": out_of_memory,
    "connection reset": connection_reset,
    "latency past the timeout": latency,
}


def scenario(name: str, server: RedisServer, proxy: FaultProxy, duration: float = 1.5) -> Outcome:
    """Run one fault of :data:`FAULTS` on the deployment."""
    inject, heal = FAULTS[name](server, proxy)
    try:
        return run(name.split(" ")[0], proxy.url, inject, heal, duration)
    finally:
        with contextlib.suppress(redis.RedisError):
            flush(server)


# -- failovers: the primary killed, a replica promoted --------------------------------------


def _kill_primary(target: Target, prefix: str, primary: Any) -> Callable[[], None]:
    """Write a cooldown of "survivor" (60 s), wait until a replica has it, kill ``primary``."""

    def inject() -> None:
        with open_tracker(target, prefix=prefix, failure_threshold=1, cooldown=60) as tracker:
            assert tracker.record_failure("survivor", _Down("survivor")) is True
        # Replication is asynchronous: the state survives if the replica had it.
        assert primary.call("WAIT", 1, 2000) == 1
        primary.kill()

    return inject


def cluster_failover(deployment: Any) -> Outcome:
    """Kill the primary serving the prefix of a cluster with replicas (``redis_deploy``)."""
    prefix = unique_prefix("cluster")
    primary = deployment.owner("{" + prefix + "}")
    replica = deployment.replica_of(primary)
    target = {"cluster": deployment.url}
    inject = _kill_primary(target, prefix, primary)
    heal = lambda: deployment.wait_promoted(replica)  # noqa: E731
    return run("cluster", target, inject, heal, duration=3.0, prefix=prefix, mixed=True)


def sentinel_failover(group: Any) -> Outcome:
    """Kill the primary of a Sentinel group (``redis_deploy``); the sentinels promote a replica."""
    prefix = unique_prefix("sentinel")
    primary = group.primary()
    target = {"sentinels": group.addresses, "service": group.service}
    inject = _kill_primary(target, prefix, primary)
    heal = lambda: group.wait_failover(primary)  # noqa: E731
    return run("sentinel", target, inject, heal, duration=3.5, prefix=prefix, mixed=True)
