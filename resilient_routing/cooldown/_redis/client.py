"""What the Redis trackers need of a client: checks, advice, and the errors that fail open."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from resilient_routing import _validate
from resilient_routing._exceptions import InvalidConfigError

__all__ = [
    "FAILURES",
    "UNREACHABLE",
    "ServerClock",
    "advise_on_client",
    "check_client",
    "check_prefix",
    "close_pubsub",
    "connection_kwargs",
    "database",
    "drop_idle",
    "drop_idle_async",
    "make_client",
    "server_of",
    "socket_timeout",
    "subscribed",
    "text",
]

# A cluster client's own errors are not RedisErrors: no node could be reached, or none
# serves the slot (the cluster is down, or the client has not found its nodes yet).
_CLUSTER_DOWN: Final = tuple(
    getattr(redis.exceptions, name)
    for name in ("RedisClusterUnreachableError", "SlotNotCoveredError")
    if hasattr(redis.exceptions, name)
)
# Errors that mean "Redis is not answering": they open the breaker instead of reaching the
# routed call. OSError covers sockets that redis-py did not wrap; ValueError a name the
# client cannot encode (a lone surrogate), which must not reach the routed call either.
FAILURES: Final = (RedisError, RedisClusterException, OSError, ValueError)
# Of those, the ones that mean the server could not be reached at all.
UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError, OSError, *_CLUSTER_DOWN)


def text(value: object) -> str:
    """Return a reply element as text, whether the client decodes responses or not.

    Names come back as they went (UTF-8, lone surrogates kept: see ``scripts.encoded``).
    """
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:  # not written by a tracker
            return value.decode("utf-8", "replace")
    return str(value)


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is a non-empty str."""
    return _validate.text("prefix", prefix)


def _is_async_client(client: object) -> bool:
    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


def check_client(client: object, want_async: bool, owner: str) -> None:
    """Refuse what is not a redis-py client of the right kind (sync or async).

    A standalone client (a Sentinel-managed one included) or a Redis Cluster client.

    Raises:
        InvalidConfigError: naming the client and the kind expected.
    """
    cluster = callable(getattr(client, "get_node_from_key", None))
    if not callable(getattr(client, "register_script", None)) or not (
        cluster or callable(getattr(client, "pubsub", None))
    ):
        kind = "redis.asyncio.Redis" if want_async else "redis.Redis"
        cluster_kind = "redis.asyncio.cluster" if want_async else "redis.cluster"
        raise InvalidConfigError(
            f"{owner} takes a {kind} client (or a {cluster_kind}.RedisCluster), got {client!r}"
        )
    if _is_async_client(client) != want_async:
        if want_async:
            raise InvalidConfigError(
                f"{owner} takes a redis.asyncio client, got the sync {client!r}: "
                "use RedisCooldownTracker with it"
            )
        raise InvalidConfigError(
            f"{owner} takes a sync redis client, got the async {client!r}: "
            "use AsyncRedisCooldownTracker with it"
        )


def connection_kwargs(client: object) -> dict[str, Any]:
    """Return the options the client opens connections with (empty when it cannot tell).

    A standalone or Sentinel-managed client keeps them on its pool; a cluster client on
    itself (async) or on its nodes manager (sync).
    """
    for holder in (
        getattr(client, "connection_pool", None),
        client,
        getattr(client, "nodes_manager", None),
    ):
        kwargs = getattr(holder, "connection_kwargs", None)
        if isinstance(kwargs, dict):
            return kwargs
    return {}


def _retries(client: object, kwargs: dict[str, Any]) -> int:
    # A cluster client retries at its own level (redirections, topology refreshes) first.
    retry = getattr(client, "retry", None) if hasattr(client, "nodes_manager") else None
    get_retries = getattr(retry if retry is not None else kwargs.get("retry"), "get_retries", None)
    return int(get_retries()) if callable(get_retries) else 0


def advise_on_client(
    client: object,
    logger: logging.Logger,
    owner: str,
    fix: str = " (or use {owner}.from_url() or .from_sentinel())",
) -> None:
    """Warn once when the client would make an outage cost far more than a timeout."""
    kwargs = connection_kwargs(client)
    if not kwargs:
        return
    retries = _retries(client, kwargs)
    timeout = kwargs.get("socket_timeout")
    if retries or timeout is None or timeout > 1.0:
        budget = "forever" if timeout is None else f"about {(retries + 1) * timeout:g} s"
        logger.warning(
            "%s: the Redis client retries failed commands %d times with socket_timeout=%s, so "
            "a hung Redis server may stall a routed call %s before the tracker fails open; "
            "build the client with retry=Retry(NoBackoff(), 0) and socket_timeout=0.5%s",
            owner,
            retries,
            timeout,
            budget,
            fix.format(owner=owner),
        )


def database(client: object) -> int:
    """Return the database number the client talks to (pub/sub spans databases)."""
    return int(connection_kwargs(client).get("db", 0) or 0)


def server_of(client: object) -> tuple[object, ...] | None:
    """Return what tells the server ``client`` talks to apart (None: it cannot tell).

    Trackers of one process on one server and prefix share what their replies teach them.
    """
    kwargs = connection_kwargs(client)
    pool = getattr(client, "connection_pool", None)
    where = kwargs.get("path") or kwargs.get("host") or getattr(pool, "service_name", None)
    if where is None:
        return None
    return (type(client).__name__, where, kwargs.get("port"), kwargs.get("db", 0) or 0)


def socket_timeout(client: object) -> float:
    """Return the client's socket timeout in seconds (redis-py's default when unset)."""
    value = connection_kwargs(client).get("socket_timeout")
    return float(value) if isinstance(value, (int, float)) else 5.0


def drop_idle(client: Any) -> None:
    """Close the idle connections of a sync client's pool (those checked out stay).

    When a fault breaks one connection it breaks the pooled ones too: each would fail once
    more on its next use, and each failure would look like a new outage.
    """
    disconnect = getattr(getattr(client, "connection_pool", None), "disconnect", None)
    if callable(disconnect):
        with contextlib.suppress(Exception):
            disconnect(inuse_connections=False)


async def drop_idle_async(client: Any) -> None:
    """The async twin of :func:`drop_idle`."""
    disconnect = getattr(getattr(client, "connection_pool", None), "disconnect", None)
    if callable(disconnect):
        with contextlib.suppress(Exception):
            await disconnect(inuse_connections=False)


def subscribed(pubsub: Any, command: str, channel: str) -> Any:
    """Return ``pubsub`` once its ``command`` subscribed it to ``channel``; closed if it fails."""
    try:
        getattr(pubsub, command)(channel)
    except BaseException:
        pubsub.close()
        raise
    return pubsub


async def close_pubsub(pubsub: Any) -> None:
    """Close ``pubsub`` to the end whatever cancels the caller meanwhile; then re-raise that.

    The async listener's ``aclose`` cancels its task again until it is done: a close cut
    short (redis-py did not always shield its own) would leave the connection subscribed.
    """
    closing = asyncio.ensure_future(pubsub.aclose())
    cancelled = False
    while not closing.done():
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            break  # closing failed: the connection is gone or beyond help
    if cancelled:
        raise asyncio.CancelledError


def make_client(
    url: str,
    *,
    is_async: bool,
    timeout: float,
    options: dict[str, Any] | None,
    cluster: bool = False,
) -> Any:
    """Return a client for ``url`` that fails fast: no retries, ``timeout`` s per socket wait.

    ``cluster``: a cluster client; ``url`` is any node's address. The sync one asks it for
    the cluster's nodes at once (raising ``RedisClusterException`` when no node answers), the
    async one at first use. No retries at the cluster's level nor the connections'.
    """
    factory: Any
    if cluster:
        factory = redis.asyncio.cluster.RedisCluster if is_async else redis.cluster.RedisCluster
    else:
        factory = redis.asyncio.Redis if is_async else redis.Redis
    retry = AsyncRetry(NoBackoff(), 0) if is_async else Retry(NoBackoff(), 0)
    return factory.from_url(
        url,
        **{
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": retry,
            **(options or {}),
        },
    )


class ServerClock:
    """Local time for deadlines, and the "now" the scripts are given ('' = server time)."""

    __slots__ = ("now", "server_time")

    def __init__(self, clock: Callable[[], float] | None) -> None:
        if clock is not None:
            _validate.callable_("clock", clock, "a callable returning seconds", args=0)
        self.now: Callable[[], float] = clock or time.monotonic
        self.server_time = clock is None

    def arg(self, now: float) -> str:
        return "" if self.server_time else str(round(now * 1000))
