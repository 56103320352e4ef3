"""A counter shared through Redis, for round robin across processes."""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any, Final, cast

import redis

from resilient_routing import _validate
from resilient_routing.cooldown._breaker import Breaker

from .client import (
    FAILURES,
    UNREACHABLE,
    advise_on_client,
    check_client,
    check_prefix,
    drop_idle,
)
from .scripts import COUNTER, Keys

__all__ = ["RedisCounter"]

_DEFAULT_LOGGER = logging.getLogger("resilient_routing")


class RedisCounter:
    """A counter shared through Redis, for a round robin spread over several processes.

    ``RoundRobin(counter=RedisCounter(client))`` rotates providers across every process
    sharing the server, key and prefix, as one. Each call is one ``INCR`` (a Lua script that
    also refreshes the key's TTL). Fail-open: while Redis is not answering, the counter
    continues from a local count (the rotation stays fair within the process) and tries
    Redis again after ``retry_interval`` seconds.

    It blocks on I/O like :class:`RedisCooldownTracker`: in an async routed function each call
    waits for one round trip on the event loop.

    Args:
        client: a ``redis.Redis`` (see :class:`RedisCooldownTracker` on timeouts).
        key: which counter, under the prefix. Default ``"round_robin"``.
        prefix: namespace of the key. Default ``"resilient_routing"``.
        ttl: seconds the counter outlives its last use. Default 86400.
        retry_interval: seconds the counter stays local after a Redis error. Default 2.
        logger: where outages are reported. Default ``logging.getLogger("resilient_routing")``.

    Raises:
        InvalidConfigError: an option is invalid.
    """

    #: Calls block on network I/O.
    blocking_io: Final = True

    def __init__(
        self,
        client: redis.Redis,
        *,
        key: str = "round_robin",
        prefix: str = "resilient_routing",
        ttl: float = 86400.0,
        retry_interval: float = 2.0,
        logger: logging.Logger | None = None,
    ) -> None:
        check_client(client, False, "RedisCounter")
        key = _validate.text("key", key)
        self.key = Keys(check_prefix(prefix)).counter(key)
        self._ttl = str(round(_validate.seconds("ttl", ttl) * 1000))
        self._client = client
        self._script = client.register_script(COUNTER)
        self._local = itertools.count()
        self._breaker = Breaker(
            _validate.seconds("retry_interval", retry_interval),
            _DEFAULT_LOGGER if logger is None else _validate.logger("logger", logger),
            f"RedisCounter({self.key!r})",
            UNREACHABLE,
        )
        advise_on_client(client, self._breaker.logger, "RedisCounter", fix="")

    def __repr__(self) -> str:
        return f"RedisCounter(key={self.key!r})"

    def __call__(self) -> int:
        """Return the next value of the shared counter (of the local one during an outage)."""
        if self._breaker.allow():
            since = time.monotonic()
            try:
                value = int(cast(Any, self._script(keys=[self.key], args=[self._ttl])))
            except FAILURES as exc:
                if self._breaker.failed(exc, since):
                    drop_idle(self._client)
            else:
                self._breaker.succeeded(since, "write")
                return value
        return next(self._local)
