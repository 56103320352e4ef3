"""What both Redis trackers share: options, the scripts' calls, the reading of replies."""

from __future__ import annotations

import contextlib
import logging
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, Self, TypeVar, Unpack

from resilient_routing import _validate
from resilient_routing.cooldown._breaker import Breaker
from resilient_routing.cooldown._policy import (
    ADMITTED,
    REFUSED,
    CooldownPolicy,
    PolicyOptions,
    policy_of,
)
from resilient_routing.cooldown._state import ProviderState

from . import scripts
from .client import (
    UNREACHABLE,
    ServerClock,
    advise_on_client,
    check_client,
    check_prefix,
    database,
    make_client,
    server_of,
    text,
)
from .cluster import is_cluster, listener_class
from .sentinel import make_sentinel_client
from .view import View, family_of

__all__ = ["Call", "RedisTrackerBase"]

ClientT = TypeVar("ClientT")

_DEFAULT_LOGGER = logging.getLogger("resilient_routing")

#: What a script is run with: its keys and its arguments (names go as bytes).
Call = tuple[list[str], list[str | bytes]]


class RedisTrackerBase(Generic[ClientT]):
    """What both Redis trackers share: options, the scripts' calls, the reading of replies.

    The sync and async trackers differ only in how they wait: their public methods are twins
    over these pieces.
    """

    _is_async: ClassVar[bool]
    policy: CooldownPolicy

    def __init__(
        self,
        client: ClientT,
        *,
        prefix: str = "resilient_routing",
        clock: Callable[[], float] | None = None,
        state_ttl: float = 3600.0,
        listen: bool = True,
        retry_interval: float = 2.0,
        health_check_interval: float = 5.0,
        logger: logging.Logger | None = None,
        policy: CooldownPolicy | None = None,
        **options: Unpack[PolicyOptions],
    ) -> None:
        owner = type(self).__name__
        self.policy = policy_of(policy, owner, options)
        check_client(client, self._is_async, owner)
        self.prefix = check_prefix(prefix)
        self._clock = ServerClock(clock)
        keep_ms = round(_validate.seconds("state_ttl", state_ttl) * 1000)
        self._listen = _validate.flag("listen", listen)
        self._logger = _DEFAULT_LOGGER if logger is None else _validate.logger("logger", logger)
        advise_on_client(client, self._logger, owner)
        self._client = client
        self._keys = keys = scripts.Keys(self.prefix, database(client))
        self._view = View()
        server = server_of(client)
        self._view.join(
            family_of(None if server is None else (*server, keys.channel)), self._clock.now
        )
        self._breaker = Breaker(
            _validate.seconds("retry_interval", retry_interval),
            self._logger,
            f"{owner}({self.prefix!r})",
            UNREACHABLE,
        )
        self._owns_client = False
        # On a Redis Cluster, events go out on a shard channel (see ``cluster``).
        sharded = is_cluster(client)
        self._scripts = scripts.Registered(client, sharded)
        policy = self.policy
        lease_ms = max(1, round(policy.probe_timeout * 1000))
        self._lease = str(lease_ms)
        # The indexes outlive any state: a cooldown and its keep, or a probe's claim after it.
        index_ttl_ms = keep_ms + round(policy.max_cooldown * 1000) + lease_ms + 1000
        self._index_ttl = str(index_ttl_ms)
        self._failure_tail = [
            str(keep_ms),
            self._index_ttl,
            str(policy.failure_threshold),
            "1" if policy.half_open else "0",
        ]
        # A user's backoff may draw jitter: then each failure takes a fresh schedule.
        self._jitter = self.policy.custom_backoff
        self._schedule = self._schedule_ms()
        health = _validate.seconds("health_check_interval", health_check_interval)
        listener = listener_class(self._is_async, sharded)
        self._listener: Any = listener(
            client,
            self._scripts,
            self._view,
            self._breaker,
            keys,
            self._clock,
            health,
        )
        # An abandoned tracker must not leave its listener (and connection) behind.
        weakref.finalize(self, self._listener.stop_soon)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        socket_timeout: float = 0.5,
        client_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        """Return a tracker on a new client for ``url``, configured to fail open quickly.

        The client never retries a failed command and gives up on a silent server after
        ``socket_timeout`` seconds; the tracker closes it when it is closed.

        Args:
            url: a Redis URL, such as ``redis://localhost:6379/0``; with ``cluster``, the
                address of any node of the cluster (the client finds the others).
            cluster: build a Redis Cluster client (``redis.cluster.RedisCluster``, or
                ``redis.asyncio.cluster.RedisCluster`` for the async tracker). The sync one
                asks ``url`` for the cluster's nodes at once. Default False.
            socket_timeout: seconds to wait for a connection or a reply. Default 0.5.
            client_options: more keyword arguments for the client's ``from_url``.
            **options: the tracker's keyword options (``prefix``, ``failure_threshold``...).

        Returns:
            The tracker, owning its client.

        Raises:
            InvalidConfigError: an option is invalid.
            redis.exceptions.RedisClusterException: with ``cluster`` (sync), no node of
                ``url`` answered.
        """
        client = make_client(
            url,
            is_async=cls._is_async,
            timeout=socket_timeout,
            options=client_options,
            cluster=_validate.flag("cluster", cluster),
        )
        return cls._owning(client, options)

    @classmethod
    def from_sentinel(
        cls,
        sentinels: Sequence[tuple[str, int]],
        service_name: str,
        *,
        socket_timeout: float = 0.5,
        client_options: dict[str, Any] | None = None,
        sentinel_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        """Return a tracker on the primary that Redis Sentinel names, following its failovers.

        The client (``Sentinel(sentinels).master_for(service_name)``, from
        ``redis.asyncio.sentinel`` for the async tracker) asks the sentinels where the
        primary is at each new connection; neither it nor its connections to the sentinels
        retry a failed command, and each waits ``socket_timeout`` seconds at most. During a
        failover the tracker fails open; it is back once a replica is promoted.

        Args:
            sentinels: the sentinels' ``(host, port)`` pairs.
            service_name: the name the sentinels monitor the primary by.
            socket_timeout: seconds to wait for a connection or a reply. Default 0.5.
            client_options: more keyword arguments for ``master_for`` (``password``, ``db``...).
            sentinel_options: more keyword arguments for the connections to the sentinels.
            **options: the tracker's keyword options (``prefix``, ``failure_threshold``...).

        Returns:
            The tracker, owning its client.

        Raises:
            InvalidConfigError: an option is invalid.
        """
        client = make_sentinel_client(
            sentinels,
            service_name,
            is_async=cls._is_async,
            timeout=socket_timeout,
            options=client_options,
            sentinel_options=sentinel_options,
        )
        return cls._owning(client, options)

    @classmethod
    def _owning(cls, client: Any, options: dict[str, Any]) -> Self:
        try:
            tracker = cls(client, **options)
        except BaseException:
            # Nothing half-made: a sync cluster client is connected already. (Async clients
            # connect at first use.)
            if not cls._is_async:
                with contextlib.suppress(Exception):
                    client.close()
            raise
        tracker._owns_client = True
        return tracker

    def __repr__(self) -> str:
        p = self.policy
        return (
            f"{type(self).__name__}(prefix={self.prefix!r}, "
            f"failure_threshold={p.failure_threshold}, cooldown={p.cooldown}, "
            f"max_cooldown={p.max_cooldown}, growth={p.growth})"
        )

    # -- the scripts' keys and arguments -------------------------------------------------

    def _schedule_ms(self) -> list[str]:
        return [str(max(0, round(s * 1000))) for s in self.policy.schedule()]

    def _failure_call(self, name: str, exc: BaseException, now: float) -> Call:
        hinted = self.policy.hinted(exc)
        hinted_ms = "" if hinted is None else str(max(1, math.ceil(hinted * 1000)))
        keys = self._keys
        raw = scripts.encoded(name)
        schedule = self._schedule_ms() if self._jitter else self._schedule
        args: list[str | bytes] = [
            self._clock.arg(now),
            raw,
            keys.channel,
            *self._failure_tail,
            hinted_ms,
            *schedule,
        ]
        return [keys.state(raw), keys.names, keys.cooling, keys.seq], args

    def _clear_call(self, name: str) -> Call:
        keys = self._keys
        raw = scripts.encoded(name)
        return (
            [keys.state(raw), keys.names, keys.cooling, keys.seq],
            [raw, keys.channel, self._index_ttl],
        )

    def _clear_all_call(self) -> Call:
        keys = self._keys
        return (
            [keys.names, keys.cooling, keys.seq],
            [keys.state_prefix, keys.channel, self._index_ttl],
        )

    def _peek_call(self, name: str, now: float) -> Call:
        return [self._keys.state(scripts.encoded(name)), self._keys.seq], [self._clock.arg(now)]

    def _claim_call(self, name: str, now: float) -> Call:
        keys = self._keys
        raw = scripts.encoded(name)
        return (
            [keys.state(raw), keys.names, keys.cooling, keys.seq],
            [self._clock.arg(now), raw, keys.channel, self._lease, self._index_ttl],
        )

    def _snapshot_call(self, now: float) -> Call:
        keys = self._keys
        return [keys.names, keys.cooling, keys.seq], [self._clock.arg(now)]

    def _states_call(self) -> Call:
        return [self._keys.names], [self._clock.arg(self._clock.now()), self._keys.state_prefix]

    # -- the replies -----------------------------------------------------------------------

    def _failure_done(self, name: str, reply: Any, now: float) -> bool:
        started, remaining_ms, seq = (int(v) for v in reply)
        self._view.tell(name, seq, True, remaining_ms / 1000.0, now)
        return started == 1

    def _peek_done(self, name: str, reply: Any, now: float) -> float:
        exists, left_ms, seq, cooled = (int(v) for v in reply)
        self._view.apply(name, seq, bool(exists), left_ms / 1000.0, now, bool(cooled))
        self._view.note_checked(name)
        return max(left_ms, 0) / 1000.0

    def _claim_done(self, name: str, reply: Any, now: float) -> int:
        admitted, left_ms, seq, exists = (int(v) for v in reply)
        self._view.tell(name, seq, bool(exists), left_ms / 1000.0, now)
        # Polling, the claim is the read that lets a clean provider's success skip Redis.
        self._view.note_checked(name)
        return admitted

    def _local_admit(self, name: str) -> tuple[int | None, float]:
        """Answer ``admit`` from the local view when it can (half-open trackers).

        Returns:
            The answer (None: claim the probe on the server), and the time of the check.
        """
        now = self._clock.now()
        remaining = self._local_remaining(name)
        if remaining is None or (remaining <= 0.0 and self._view.pending(name, now)):
            return None, now  # cannot tell, or a cooldown (or a probe's claim) just ended
        return (ADMITTED if remaining <= 0.0 else REFUSED), now

    def _clear_done(self, name: str, reply: Any, now: float) -> None:
        _, seq = (int(v) for v in reply)
        self._view.tell(name, seq, False, 0.0, now)

    def _clear_all_done(self, reply: Any) -> None:
        self._view.tell_cleared(int(reply))

    @staticmethod
    def _states_done(reply: Any) -> list[ProviderState]:
        items = list(reply)
        states = [
            ProviderState(
                text(items[k]),
                int(items[k + 1]),
                int(items[k + 2]),
                int(items[k + 3]) / 1000.0,
                int(items[k + 4]) / 1000.0,
            )
            for k in range(0, len(items), 5)
        ]
        return sorted(states, key=lambda s: s.name)

    def _local_remaining(self, name: str) -> float | None:
        """The seconds left for ``name`` from the local view, None when it cannot tell."""
        if self._view.live and not self._breaker.down:
            remaining = self._view.remaining(name, self._clock.now())
            if remaining is not None:
                return remaining
        elif self._listen:
            self._listener.ensure_started()
        return None
