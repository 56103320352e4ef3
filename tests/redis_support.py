"""Redis for the tests: the contract-suite backends, throwaway servers, worker processes.

Tests talk to the server at ``REDIS_URL`` (default ``redis://127.0.0.1:6379/15``), each on a
random prefix removed afterwards. Without a reachable server they are skipped, except on CI
(``CI=true``) where they fail: a missing Redis must not turn the suite green. Tests that kill
or freeze a server start their own ``redis-server`` on a free loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from resilient_routing.cooldown import AsyncRedisCooldownTracker, RedisCooldownTracker
from resilient_routing.testing import FakeClock

from .trackers import Backend, SyncTracker

T = TypeVar("T")

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Seconds a test client waits for Redis: short, so that an outage test stays fast.
TIMEOUT = 0.5

_reachable: dict[str, str | None] = {}


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it on CI where every Redis test must run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI is set: tests needing Redis must run)", pytrace=False)
    pytest.skip(reason)


def require_redis(url: str = REDIS_URL) -> str:
    """Return ``url`` once its server answers PING; skip (fail on CI) when it does not."""
    if url not in _reachable:
        client = sync_client(url)
        try:
            client.ping()
            _reachable[url] = None
        except redis.RedisError as exc:
            _reachable[url] = f"no Redis server at {url} ({type(exc).__name__}: {exc})"
        finally:
            client.close()
    reason = _reachable[url]
    if reason is not None:
        unavailable(reason)
    return url


def sync_client(url: str = REDIS_URL, timeout: float = TIMEOUT) -> redis.Redis:
    """A client configured as the docs advise: no retries, short timeouts."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def async_client(url: str = REDIS_URL, timeout: float = TIMEOUT) -> redis.asyncio.Redis:
    """The redis.asyncio twin of :func:`sync_client`."""
    return redis.asyncio.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=AsyncRetry(NoBackoff(), 0),
    )


def counting_client(url: str = REDIS_URL) -> tuple[redis.Redis, Callable[[], int]]:
    """A :func:`sync_client` and a function returning how many requests it has sent.

    Every command (a script call included) is one request and one round trip; the commands a
    script runs on the server are not requests, unlike what ``INFO commandstats`` counts.
    """
    sent = [0]

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent[0] += 1
            super().send_packed_command(command, check_health)

    client = redis.Redis.from_url(
        url,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        connection_class=CountingConnection,
    )
    return client, lambda: sent[0]


def unique_prefix(label: str = "t") -> str:
    return f"rrtest:{label}:{uuid.uuid4().hex[:12]}"


def key(prefix: str, suffix: str) -> str:
    """The name of one of a prefix's keys: the prefix in braces (a cluster hash tag)."""
    return "{" + prefix + "}:" + suffix


def state_key(prefix: str, name: str) -> str:
    """The key of a provider's state hash: named by the SHA-1 of its UTF-8 name."""
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()
    return key(prefix, "p:" + digest)


def delete_prefix(prefix: str, url: str = REDIS_URL) -> None:
    """Remove every key under ``prefix`` (best effort: the server may be gone)."""
    client = sync_client(url)
    try:
        keys = list(client.scan_iter(match=key(prefix, "*"), count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()


class LoopRunner:
    """A private event loop that runs coroutines to completion from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wrapper() -> T:
            return await awaitable

        return self.loop.run_until_complete(wrapper())

    def close(self) -> None:
        loop = self.loop
        if loop.is_closed():
            return
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class SyncOverAsync:
    """Drives an AsyncRedisCooldownTracker from synchronous code (the contract suite's view)."""

    def __init__(self, tracker: AsyncRedisCooldownTracker, runner: LoopRunner) -> None:
        self.tracker = tracker
        self.runner = runner

    def is_available(self, name: str) -> bool:
        return self.runner.run(self.tracker.is_available(name))

    def cooldown_remaining(self, name: str) -> float:
        return self.runner.run(self.tracker.cooldown_remaining(name))

    def record_failure(self, name: str, exc: BaseException) -> bool:
        return self.runner.run(self.tracker.record_failure(name, exc))

    def record_success(self, name: str) -> None:
        self.runner.run(self.tracker.record_success(name))

    def reset(self, name: str | None = None) -> None:
        self.runner.run(self.tracker.reset(name))


#: kind -> (async tracker, listen through pub/sub)
KINDS = {
    "redis": (False, True),
    "redis-async": (True, True),
    "redis-poll": (False, False),
    "redis-async-poll": (True, False),
    "redis-cluster": (False, True),
    "redis-cluster-async": (True, True),
    "redis-sentinel": (False, True),
    "redis-sentinel-async": (True, True),
}

#: Makes a client for a tracker: ``connect(is_async)``.
Connect = Callable[[bool], Any]


def backend(kind: str, connect: Connect | None = None) -> Backend:
    """Return the contract-suite backend ``kind`` (see :data:`KINDS`).

    On the test server, or on the clients ``connect`` makes (a deployment of the tests' own:
    a cluster, a Sentinel group). Each tracker made gets a prefix of its own (trackers of one
    test are independent, as in-memory ones are); ``close()`` closes them and removes their
    keys from the test server.
    """
    is_async, listen = KINDS[kind]
    url = require_redis() if connect is None else ""
    prefixes: list[str] = []
    closers: list[Callable[[], None]] = []
    runner = LoopRunner() if is_async else None

    def make(
        clock: FakeClock | None = None,
        wall_clock: Callable[[], float] = time.time,
        **policy: Any,
    ) -> SyncTracker:
        prefix = unique_prefix(kind)
        prefixes.append(prefix)
        if runner is None:
            client = sync_client(url) if connect is None else connect(False)
            tracker = RedisCooldownTracker(
                client, prefix=prefix, clock=clock, wall_clock=wall_clock, listen=listen, **policy
            )

            def close_sync() -> None:
                tracker.close()
                client.close()
                for sentinel in sentinels_of(client):
                    sentinel.close()

            closers.append(close_sync)
            if listen:
                assert tracker.wait_synced(5.0), "the listener never subscribed"
            return tracker
        aclient = async_client(url) if connect is None else connect(True)
        atracker = AsyncRedisCooldownTracker(
            aclient, prefix=prefix, clock=clock, wall_clock=wall_clock, listen=listen, **policy
        )

        async def aclose() -> None:
            await atracker.aclose()
            await aclient.aclose()
            for sentinel in sentinels_of(aclient):
                await sentinel.aclose()

        closers.append(lambda: runner.run(aclose()))
        if listen:
            runner.run(asyncio.wait_for(atracker.wait_synced(), 5.0))
        return SyncOverAsync(atracker, runner)

    def close() -> None:
        for closer in reversed(closers):
            closer()
        if runner is not None:
            runner.close()
        for prefix in prefixes if connect is None else ():
            delete_prefix(prefix, url)

    return Backend(kind, make, close)


def sentinels_of(client: Any) -> list[Any]:
    """The clients a Sentinel-managed client keeps on the sentinels (closed apart from it)."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(getattr(manager, "sentinels", ()))


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a fresh loop, closing everything it leaves behind."""
    runner = LoopRunner()
    try:
        return runner.run(factory())
    finally:
        runner.close()


# ---------------------------------------------------------------------------------------
# Throwaway servers, to kill, restart and freeze.
# ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` of the test's own on a loopback port: start, kill, pause, resume."""

    def __init__(self, port: int | None = None, data_dir: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.binary = binary
        self.port = port or free_port()
        #: Where SAVE writes its dump, read again at start (None: nothing survives a kill).
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                *(["--dir", self.data_dir] if self.data_dir else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = sync_client(self.url, timeout=0.2)
        try:
            deadline = time.monotonic() + 5.0
            while True:
                try:
                    client.ping()
                    return self
                except redis.RedisError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.kill()
                        unavailable(f"redis-server did not start on port {self.port}")
                    time.sleep(0.01)
        finally:
            client.close()

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if self.paused:
            self.resume_process(process)
        process.kill()
        process.wait(5)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        self.resume_process(self.process)

    def resume_process(self, process: subprocess.Popen[bytes]) -> None:
        os.kill(process.pid, signal.SIGCONT)
        self.paused = False

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


# ---------------------------------------------------------------------------------------
# Worker processes (spawned: importable functions, plain arguments).
# ---------------------------------------------------------------------------------------


class Down(Exception):
    pass


def _poll(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


#: Where the workers' trackers go: a Redis URL, or ``{"cluster": url}`` (a Redis Cluster),
#: or ``{"sentinels": [(host, port), ...], "service": name}`` (a primary behind Sentinel).
Target = str | dict[str, Any]


def open_tracker(target: Target, **options: Any) -> RedisCooldownTracker:
    """A tracker on ``target`` (see :data:`Target`), its client built by the tracker."""
    if isinstance(target, str):
        return RedisCooldownTracker.from_url(target, **options)
    if "cluster" in target:
        return RedisCooldownTracker.from_url(target["cluster"], cluster=True, **options)
    return RedisCooldownTracker.from_sentinel(target["sentinels"], target["service"], **options)


def open_async_tracker(target: Target, **options: Any) -> AsyncRedisCooldownTracker:
    """The async twin of :func:`open_tracker`."""
    if isinstance(target, str):
        return AsyncRedisCooldownTracker.from_url(target, **options)
    if "cluster" in target:
        return AsyncRedisCooldownTracker.from_url(target["cluster"], cluster=True, **options)
    return AsyncRedisCooldownTracker.from_sentinel(
        target["sentinels"], target["service"], **options
    )


def contention_worker(url: Target, prefix: str, failures: int, barrier: Any, results: Any) -> None:
    """One of several processes failing one provider at once; reports what it saw.

    Phase 1: record ``failures`` failures of "stress" at the same moment as the others.
    Phase 2: see the cooldown, whichever process started it.
    Phase 3: see the cooldown of "prop" that the parent starts; note when.
    """
    with open_tracker(url, prefix=prefix, failure_threshold=3, cooldown=60) as tracker:
        synced = tracker.wait_synced(10.0)
        barrier.wait(30)
        started = sum(tracker.record_failure("stress", Down()) for _ in range(failures))
        barrier.wait(30)
        saw_stress = _poll(lambda: not tracker.is_available("stress"), 2.0)
        barrier.wait(30)
        saw_prop = _poll(lambda: not tracker.is_available("prop"), 3.0)
        seen_at = time.time()
        results.put((started, synced, saw_stress, saw_prop, seen_at))


def fork_child(tracker: RedisCooldownTracker, results: Any) -> None:
    """In a forked child: the inherited tracker works and starts a listener of its own."""
    try:
        synced = tracker.wait_synced(5.0)
        started = tracker.record_failure("forked", Down())
        results.put((synced, started, tracker.is_available("forked")))
    finally:
        with contextlib.suppress(Exception):
            tracker.close()
