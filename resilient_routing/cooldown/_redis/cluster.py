"""Redis Cluster: which client is one, and listeners on sharded pub/sub (make_client builds one).

A prefix's keys all carry its hash tag (``{P}:...``, see :class:`~.scripts.Keys`), so every
script touches one slot, served by one primary: the scripts run there atomically, exactly as
on a single server. Their events go out with ``SPUBLISH`` on the shard channel
``{P}:events:0``, which shares that slot: only the primary serving it and its replicas carry
them (``PUBLISH`` would cross the cluster bus to every node). A listener subscribes with
``SSUBSCRIBE`` on a connection of its own to the node serving the slot; when that node fails
or the slot moves, the session ends and the next one subscribes where the slot is then
(redis-py's cluster client refreshes its map of the slots when a command fails or is
redirected, and the listener sends one through it before subscribing).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from .client import close_pubsub, subscribed
from .listener import TaskListener, ThreadListener

__all__ = [
    "ClusterTaskListener",
    "ClusterThreadListener",
    "is_cluster",
    "listener_class",
]


def is_cluster(client: object) -> bool:
    """Return whether ``client`` is a redis-py Redis Cluster client (sync or async)."""
    return isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))


def listener_class(is_async: bool, cluster: bool) -> type[ThreadListener] | type[TaskListener]:
    """Return the listener a tracker runs: a thread or a task, on pub/sub or sharded pub/sub."""
    if cluster:
        return ClusterTaskListener if is_async else ClusterThreadListener
    return TaskListener if is_async else ThreadListener


class ClusterThreadListener(ThreadListener):
    """A :class:`ThreadListener` on the shard channel, at the node serving the prefix's slot."""

    def subscribe(self) -> Any:
        client = cast(Any, self.client)
        # Through the cluster client first: a command to the slot that fails (or is
        # redirected) makes it refresh its map of the slots, so a failover is followed.
        client.exists(self.keys.seq)
        node = client.get_node_from_key(self.keys.channel)
        return subscribed(
            client.get_redis_connection(node).pubsub(), "ssubscribe", self.keys.channel
        )

    def load_scripts(self) -> None:
        # SCRIPT LOAD through a cluster client reaches every primary; after a failover the
        # next session loads them on the promoted replica.
        client = cast(Any, self.client)
        for script in self.scripts.all:
            client.script_load(script.script)


class ClusterTaskListener(TaskListener):
    """A :class:`TaskListener` on the shard channel, at the node serving the prefix's slot."""

    async def subscribe(self) -> Any:
        client = cast(Any, self.client)
        await client.exists(self.keys.seq)  # see ClusterThreadListener.subscribe
        node = client.get_node_from_key(self.keys.channel)
        # The async cluster client has no client per node to take a pub/sub from: this
        # connection is the listener's own, made with the cluster's connection options.
        pool = redis.asyncio.ConnectionPool(
            connection_class=node.connection_class, **node.connection_kwargs
        )
        pubsub = redis.asyncio.Redis(connection_pool=pool).pubsub()
        try:
            await pubsub.ssubscribe(self.keys.channel)
        except BaseException:
            try:
                await close_pubsub(pubsub)  # to the end, however often aclose() cancels
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pool.disconnect())
            raise
        return pubsub

    async def load_scripts(self) -> None:
        client = cast(Any, self.client)
        for script in self.scripts.all:
            await client.script_load(script.script)
