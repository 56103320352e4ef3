"""Real Redis deployments of the tests' own: a Redis Cluster, a primary watched by Sentinel.

Every server is a ``redis-server`` child process on a free loopback port, with its files in a
temporary directory; ``stop()`` kills each by its PID (also after a failed start), so nothing
outlives the deployment. Without ``redis-server`` the tests using them are skipped, except
on CI (``CI=true``) where they fail, as does a cluster or a Sentinel group that does not form.

Used by the contract suite's cluster and Sentinel backends (``tests/conftest.py``), by
``tests/test_redis_cluster.py`` and ``tests/test_redis_sentinel.py``, and by the fleet
benchmark (``benchmarks/fleet.py``).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from .redis_support import TIMEOUT, unavailable

#: The name Sentinel knows the primary by.
SERVICE = "rrprimary"
#: Cluster nodes (and sentinels) declare a peer down after this many ms without an answer.
NODE_TIMEOUT_MS = 1000


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed (needed to start a cluster or sentinels)")
    return binary


def free_port() -> int:
    """A loopback port free now, whose cluster bus port (+10000) is free too.

    Drawn below the ephemeral range (32768 and up on Linux), where no outgoing connection
    takes it meanwhile, and low enough for its bus port to exist.
    """
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(12000, 22000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise OSError("no free pair of loopback ports for a redis-server")


def _client(port: int, timeout: float = 0.5) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def _wait(what: str, condition: Callable[[], bool], timeout: float) -> None:
    """Poll ``condition`` until it holds; fail (skip off CI) naming ``what`` when it never does."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if condition():
                return
        if time.monotonic() > deadline:
            unavailable(f"{what} within {timeout:g} s")
        time.sleep(0.02)


class Node:
    """One ``redis-server`` process: a cluster node, a primary, a replica or a sentinel."""

    def __init__(self, workdir: Path, args: list[str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = workdir / str(self.port)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self, conf: str | None = None) -> Node:
        """Start the process (with ``conf`` written first, for a sentinel) and wait for PING."""
        command = [_binary()]
        if conf is not None:
            path = self.dir / "sentinel.conf"
            if not path.exists():  # a restarted sentinel keeps what it learnt
                path.write_text(conf)
            command += [str(path), "--sentinel"]
        command += [
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.dir / "log"),
            *self.args,
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = _client(self.port, 0.2)
        try:
            _wait(f"redis-server did not answer on port {self.port}", client.ping, 5.0)
        finally:
            client.close()
        return self

    def kill(self) -> None:
        """SIGKILL the process (a crash: nothing flushed, connections cut) and reap it."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(5)

    def client(self, timeout: float = 0.5) -> redis.Redis:
        return _client(self.port, timeout)

    def call(self, *command: Any) -> Any:
        client = self.client(1.0)
        try:
            return client.execute_command(*command)
        finally:
            client.close()


class Deployment:
    """Processes started together, stopped together by PID."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="rr-redis-"))
        self.nodes: list[Node] = []

    def node(self, args: list[str]) -> Node:
        made = Node(self.workdir, args)
        self.nodes.append(made)
        return made

    def pids(self) -> list[int]:
        return [n.pid for n in self.nodes if n.pid is not None]

    def stop(self) -> None:
        """Kill every process of the deployment and remove its files."""
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Redis Cluster.
# ---------------------------------------------------------------------------------------


class Cluster(Deployment):
    """A Redis Cluster of ``primaries`` primaries, each with ``replicas`` replicas.

    Formed by hand (CLUSTER ADDSLOTSRANGE, MEET, REPLICATE): faster than ``redis-cli
    --cluster create``, which waits in steps of a second.
    """

    def __init__(self, primaries: int = 3, replicas: int = 0) -> None:
        super().__init__()
        self.primaries: list[Node] = []
        self.replicas: list[Node] = []
        try:
            self._form(primaries, replicas)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """A cluster URL: any node's address (the client discovers the others)."""
        return f"redis://{self.primaries[0].address}/0"

    def _form(self, primaries: int, replicas: int) -> None:
        args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
            "--save",
            "",
            "--appendonly",
            "no",
            # A replica syncs at once (the default waits 5 s for more replicas to join).
            "--repl-diskless-sync-delay",
            "0",
        ]
        self.primaries = [self.node(args).start() for _ in range(primaries)]
        self.replicas = [self.node(args).start() for _ in range(primaries * replicas)]
        step = 16384 // primaries
        for i, node in enumerate(self.primaries):
            last = 16383 if i == primaries - 1 else (i + 1) * step - 1
            node.call("CLUSTER", "ADDSLOTSRANGE", i * step, last)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            first.call("CLUSTER", "MEET", "127.0.0.1", node.port)
        total = len(self.nodes)
        _wait(
            "the cluster nodes did not meet",
            lambda: all(len(self._known(n)) == total for n in self.nodes),
            10.0,
        )
        for i, replica in enumerate(self.replicas):
            primary = self.primaries[i % primaries]
            replica.call("CLUSTER", "REPLICATE", self.node_id(primary))
        self.wait_healthy()

    @staticmethod
    def _known(node: Node) -> list[str]:
        return [line for line in node.call("CLUSTER", "NODES").decode().splitlines() if line]

    @staticmethod
    def node_id(node: Node) -> str:
        return str(node.call("CLUSTER", "MYID").decode())

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.process is not None]

    def wait_healthy(self, timeout: float = 15.0) -> None:
        """Wait until every live node sees the cluster ok and every live replica is in sync."""

        def healthy() -> bool:
            for node in self.live():
                if b"cluster_state:ok" not in node.call("CLUSTER", "INFO"):
                    return False
                info = node.client().info("replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
            return True

        _wait("the cluster did not become healthy", healthy, timeout)

    def owner(self, key: str) -> Node:
        """The primary serving ``key``'s slot, as a live node sees it now."""
        node = self.live()[0]
        slot = int(node.call("CLUSTER", "KEYSLOT", key))
        for start, end, primary, *_ in node.call("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return next(n for n in self.nodes if n.port == int(primary[1]))
        raise AssertionError(f"no primary serves {key!r} (slot {slot})")

    def move_slot(self, key: str, target: Node) -> None:
        """Migrate the slot of ``key``, with its keys, to the primary ``target``."""
        source = self.owner(key)
        slot = int(source.call("CLUSTER", "KEYSLOT", key))
        source_id, target_id = self.node_id(source), self.node_id(target)
        target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while keys := source.call("CLUSTER", "GETKEYSINSLOT", slot, 100):
            source.call("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        for node in (target, source, *[p for p in self.primaries if p not in (source, target)]):
            node.call("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        _wait(
            f"the nodes did not agree that slot {slot} moved to {target.address}",
            lambda: all(self._owner_seen_by(n, slot) == target.port for n in self.live()),
            10.0,
        )

    @staticmethod
    def _owner_seen_by(node: Node, slot: int) -> int | None:
        for start, end, primary, *_ in node.call("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        return None

    def replica_of(self, primary: Node) -> Node:
        """A live replica of ``primary``."""
        wanted = self.node_id(primary)
        for node in self.live():
            for line in self._known(node):
                fields = line.split()
                if "myself" in fields[2] and fields[3] == wanted:
                    return node
        raise AssertionError(f"{primary.address} has no live replica")

    def wait_promoted(self, replica: Node, timeout: float = 15.0) -> None:
        """Wait until ``replica`` is a primary and every live node sees the cluster ok."""
        _wait(
            f"{replica.address} was not promoted",
            lambda: replica.client().info("replication")["role"] == "master",
            timeout,
        )
        self.wait_healthy(timeout)


@contextlib.contextmanager
def cluster(primaries: int = 3, replicas: int = 0) -> Iterator[Cluster]:
    made = Cluster(primaries, replicas)
    try:
        yield made
    finally:
        made.stop()


# ---------------------------------------------------------------------------------------
# Sentinel.
# ---------------------------------------------------------------------------------------


class SentinelGroup(Deployment):
    """A primary, ``replicas`` replicas and ``sentinels`` sentinels watching them."""

    def __init__(self, replicas: int = 1, sentinels: int = 3) -> None:
        super().__init__()
        self.service = SERVICE
        self.sentinels: list[Node] = []
        try:
            self._form(replicas, sentinels)
        except BaseException:
            self.stop()
            raise

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The sentinels, as ``redis.sentinel.Sentinel`` takes them."""
        return [("127.0.0.1", s.port) for s in self.sentinels]

    def _form(self, replicas: int, sentinels: int) -> None:
        data = ["--save", "", "--appendonly", "no", "--repl-diskless-sync", "yes"]
        data += ["--repl-diskless-sync-delay", "0"]
        self.primary_node = self.node(data).start()
        self.data = [self.primary_node]
        for _ in range(replicas):
            replica = self.node([*data, "--replicaof", "127.0.0.1", str(self.primary_node.port)])
            self.data.append(replica.start())
        conf = (
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_node.port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {NODE_TIMEOUT_MS // 2}\n"
            f"sentinel failover-timeout {SERVICE} 3000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.sentinels = [self.node([]) for _ in range(sentinels)]
        for sentinel in self.sentinels:
            sentinel.start(conf)
        self.wait_ready()

    def primary(self) -> Node:
        """The node the sentinels name as the primary now."""
        _, port = self.sentinels[0].call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return next(n for n in self.data if n.port == int(port))

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until the replicas are in sync and every sentinel knows them and its peers."""
        wanted_peers = len(self.sentinels) - 1
        live_replicas = [n for n in self.data if n.process is not None and n is not self.primary()]

        def ready() -> bool:
            info = self.primary().client().info("replication")
            if info["connected_slaves"] < len(live_replicas):
                return False
            for sentinel in self.sentinels:
                client = sentinel.client()
                try:
                    master = client.sentinel_master(SERVICE)
                finally:
                    client.close()
                if int(master["num-other-sentinels"]) < wanted_peers:
                    return False
                if int(master["num-slaves"]) < len(live_replicas):
                    return False
                if not master["is_master"] or master["is_sdown"] or master["is_odown"]:
                    return False
            return True

        _wait("the sentinels did not find the primary, its replicas and each other", ready, timeout)

    def wait_failover(self, old: Node, timeout: float = 20.0) -> Node:
        """Wait until every sentinel names a primary other than ``old`` that accepts writes."""

        def moved() -> bool:
            ports = {
                int(s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)[1])
                for s in self.sentinels
            }
            if len(ports) != 1 or old.port in ports:
                return False
            return bool(self.primary().client().info("replication")["role"] == "master")

        _wait(f"no replica of {old.address} was promoted", moved, timeout)
        return self.primary()


@contextlib.contextmanager
def sentinel_group(replicas: int = 1, sentinels: int = 3) -> Iterator[SentinelGroup]:
    made = SentinelGroup(replicas, sentinels)
    try:
        yield made
    finally:
        made.stop()


# ---------------------------------------------------------------------------------------
# Clients configured as the docs advise (no retries, short timeouts).
# ---------------------------------------------------------------------------------------


def cluster_client(deployment: Cluster, is_async: bool, timeout: float = TIMEOUT) -> Any:
    """A cluster client (sync or async) on ``deployment``: no retries, short timeouts."""
    if is_async:
        return redis.asyncio.cluster.RedisCluster.from_url(
            deployment.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=AsyncRetry(NoBackoff(), 0),
        )
    return redis.cluster.RedisCluster.from_url(
        deployment.url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def sentinel_client(group: SentinelGroup, is_async: bool, timeout: float = TIMEOUT) -> Any:
    """A client on the primary the sentinels of ``group`` name: no retries, short timeouts."""
    retry: Any = AsyncRetry(NoBackoff(), 0) if is_async else Retry(NoBackoff(), 0)
    fast = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": retry}
    module: Any = redis.asyncio.sentinel if is_async else redis.sentinel
    return module.Sentinel(group.addresses, sentinel_kwargs=fast).master_for(SERVICE, **fast)


def cluster_connect(deployment: Cluster) -> Callable[[bool], Any]:
    return lambda is_async: cluster_client(deployment, is_async)


def sentinel_connect(group: SentinelGroup) -> Callable[[bool], Any]:
    return lambda is_async: sentinel_client(group, is_async)
