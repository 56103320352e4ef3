"""Redis Sentinel: a client on the primary that the sentinels name, built to fail fast.

Nothing else is needed for Sentinel: a client from ``Sentinel(...).master_for(...)`` asks the
sentinels for the primary's address whenever it opens a connection. When the primary fails,
the tracker fails open (its breaker opens, one WARNING) and drops its pool's idle
connections; once the sentinels have promoted a replica, the next connection goes to it and
the tracker is back (one INFO). State written before the failover is there if the replica
had received it (Redis replicates asynchronously).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from resilient_routing import _validate
from resilient_routing._exceptions import InvalidConfigError

__all__ = ["check_sentinels", "make_sentinel_client"]


def check_sentinels(sentinels: object) -> list[tuple[str, int]]:
    """Return ``sentinels`` as a list of ``(host, port)`` pairs.

    Raises:
        InvalidConfigError: not a non-empty sequence of (host str, port int) pairs.
    """
    expected = "a non-empty sequence of (host, port) pairs, such as [('10.0.0.1', 26379)]"
    if isinstance(sentinels, (str, bytes)) or not isinstance(sentinels, Sequence) or not sentinels:
        raise InvalidConfigError(f"sentinels must be {expected}, got {sentinels!r}")
    pairs = []
    for item in sentinels:
        if (
            not isinstance(item, Sequence)
            or isinstance(item, (str, bytes))
            or len(item) != 2
            or not isinstance(item[0], str)
            or not item[0]
            or isinstance(item[1], bool)
            or not isinstance(item[1], int)
            or not 0 < item[1] < 65536
        ):
            raise InvalidConfigError(f"sentinels must be {expected}, got the item {item!r}")
        pairs.append((item[0], item[1]))
    return pairs


def make_sentinel_client(
    sentinels: object,
    service_name: object,
    *,
    is_async: bool,
    timeout: float,
    options: dict[str, Any] | None,
    sentinel_options: dict[str, Any] | None,
) -> Any:
    """Return a client on the primary named ``service_name`` by ``sentinels``, failing fast.

    Neither its connections to the primary nor those to the sentinels retry a failed command,
    and each waits ``timeout`` s at most. Nothing is connected before the first command.

    Raises:
        InvalidConfigError: ``sentinels`` or ``service_name`` is malformed.
    """
    pairs = check_sentinels(sentinels)
    name = _validate.text("service_name", service_name)
    retry: Any = AsyncRetry(NoBackoff(), 0) if is_async else Retry(NoBackoff(), 0)
    fast = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": retry}
    module: Any = redis.asyncio.sentinel if is_async else redis.sentinel
    sentinel = module.Sentinel(pairs, sentinel_kwargs={**fast, **(sentinel_options or {})})
    owner = _AsyncClient if is_async else _Client
    return sentinel.master_for(name, redis_class=owner, **{**fast, **(options or {})})


def _sentinel_clients(client: Any) -> list[Any]:
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    return list(getattr(manager, "sentinels", ()))


class _Client(redis.Redis):
    """A client on the primary that also closes its connections to the sentinels."""

    def close(self) -> None:
        super().close()
        for client in _sentinel_clients(self):
            client.close()


class _AsyncClient(redis.asyncio.Redis):
    """The async twin of :class:`_Client`."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for client in _sentinel_clients(self):
            await client.aclose()
