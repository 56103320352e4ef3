"""The sync and async Redis trackers: twins over :class:`~.base.RedisTrackerBase`."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Final, Self

import redis
import redis.asyncio

from resilient_routing._callables import spelled_out
from resilient_routing._exceptions import error_text
from resilient_routing.cooldown._policy import ADMITTED, REFUSED, policy_parameters
from resilient_routing.cooldown._state import ProviderState

from .base import Call, RedisTrackerBase
from .client import (
    FAILURES,
    drop_idle,
    drop_idle_async,
    socket_timeout,
)
from .listener import POLL
from .view import parse_snapshot

__all__ = ["AsyncRedisCooldownTracker", "RedisCooldownTracker"]


def _cooling(index: dict[str, float]) -> dict[str, float]:
    """The providers of the cooling index whose cooldown is running."""
    return {name: left for name, left in index.items() if left > 0}


class RedisCooldownTracker(RedisTrackerBase[redis.Redis]):
    """Cooldown state shared through Redis by every process using one server and ``prefix``.

    The same rules as :class:`~resilient_routing.InMemoryCooldownTracker` (threshold, growing
    consecutive cooldowns up to ``max_cooldown``, Retry-After, a success clearing everything),
    applied atomically on the Redis server by Lua scripts, with the server's clock. A
    background thread keeps a local view of the cooling providers current through pub/sub,
    so that a routed call whose provider succeeds costs no round trip to Redis; only failures
    (and the first success after failures) do.

    Fail-open: while Redis is unreachable or slow, providers count as available, failures are
    not recorded and nothing raises; one WARNING is logged when Redis is lost and one INFO when
    it is back. After an error the tracker leaves Redis alone for ``retry_interval`` seconds.

    Its methods block on network I/O (``blocking_io = True``): async routed functions refuse
    it; give them an :class:`AsyncRedisCooldownTracker`. Close it (``close()`` or ``with``) to
    stop its listener thread; a tracker forked into a child process starts a new one there.

    Build the client so that an outage costs one short timeout, not redis-py's default of ten
    retries with 5 s timeouts each: ``retry=Retry(NoBackoff(), 0)``, ``socket_timeout=0.5``,
    ``socket_connect_timeout=0.5``; :meth:`from_url` does. The tracker logs a WARNING when its
    client would stall routed calls longer.

    Args:
        client: a ``redis.Redis`` (one from ``redis.sentinel.Sentinel(...).master_for(...)``
            follows Sentinel's failovers) or a ``redis.cluster.RedisCluster``, configured as
            above (:meth:`from_url` and :meth:`from_sentinel` build them).
        prefix: namespace of the keys and of the events channel; trackers sharing a server
            (or a cluster) and a prefix share their state. The tracker puts it in braces, a
            Redis Cluster hash tag, so that a prefix's keys and channel share one slot.
        failure_threshold: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        cooldown: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        max_cooldown: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        growth: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        backoff: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        clock: for tests only: a clock (``resilient_routing.testing.FakeClock``) whose time
            the scripts use instead of the server's. Default None: the server's ``TIME``.
        wall_clock: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        state_ttl: seconds a provider's failure count and cooldown growth outlive its last
            failure or cooldown in Redis before expiring. Default 3600.
        listen: keep a local view current through pub/sub (a background thread). False: ask
            Redis at every check (one round trip per provider tried). Default True.
        retry_interval: seconds the tracker fails open after a Redis error before it tries
            Redis again. Default 2.
        health_check_interval: seconds of silence after which the listener pings Redis; a
            ping unanswered for as long counts as an outage. Default 5.
        logger: where outages are reported. Default ``logging.getLogger("resilient_routing")``.
        half_open: see :class:`~resilient_routing.cooldown.CooldownPolicy`: here the probe is
            one across every process sharing the server and ``prefix``, claimed atomically
            on the server, on its clock.
        probe_timeout: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        policy: a :class:`~resilient_routing.cooldown.CooldownPolicy` instead of the options
            it is made of (``failure_threshold`` to ``probe_timeout``).

    Raises:
        InvalidConfigError: an option is invalid.
    """

    #: Calls block on network I/O: async routed functions refuse this tracker.
    blocking_io: Final = True
    _is_async = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the listener thread (and close the client when :meth:`from_url` made it).

        The tracker still works afterwards, asking Redis at every check.
        """
        self._listener.close(timeout=POLL + socket_timeout(self._client) + 1.0)
        if self._owns_client:
            self._client.close()

    def wait_synced(self, timeout: float = 1.0) -> bool:
        """Wait until the local view is current (subscribed and loaded), up to ``timeout`` s.

        Not needed for correctness (until then the tracker asks Redis); useful at start-up or
        in tests that count round trips.

        Returns:
            Whether the view is current.
        """
        if not self._listen:
            return False
        self._listener.ensure_started()
        return self._view.ready.wait(timeout)

    def _call(self, script: Any, call: Call, writes: bool) -> Any:
        """Run a script, or return None (fail open) when Redis is not answering."""
        if not self._breaker.allow(writes):
            return None
        since = time.monotonic()
        try:
            reply = script(keys=call[0], args=call[1])
        except FAILURES as exc:
            if self._breaker.failed(exc, since):
                drop_idle(self._client)
            return None
        self._breaker.succeeded(since, "write" if writes else "read")
        return reply

    def is_available(self, name: str) -> bool:
        """Return True when ``name`` is not cooling down now (or Redis is not answering).

        Half-open, the caller that finds a cooldown over claims the probe on the server (one
        across every process on the prefix); the others get False until its outcome.
        """
        if not self.policy.half_open:
            return self.cooldown_remaining(name) <= 0.0
        return self.admit(name) != REFUSED

    def admit(self, name: str) -> int:
        """Return :meth:`is_available` as ``REFUSED`` (0), ``ADMITTED`` (1) or ``PROBE`` (2).

        ``PROBE``: admitted as the half-open probe (the other callers wait for its outcome).
        """
        if not self.policy.half_open:
            return ADMITTED if self.cooldown_remaining(name) <= 0.0 else REFUSED
        answer, now = self._local_admit(name)
        if answer is not None:
            return answer
        reply = self._call(self._scripts.claim, self._claim_call(name, now), True)
        return ADMITTED if reply is None else self._claim_done(name, reply, now)

    def cooldown_remaining(self, name: str) -> float:
        """Return the seconds left in the cooldown of ``name``, ``0.0`` when available."""
        remaining = self._local_remaining(name)
        if remaining is not None:
            return remaining
        now = self._clock.now()
        reply = self._call(self._scripts.peek, self._peek_call(name, now), False)
        return 0.0 if reply is None else self._peek_done(name, reply, now)

    def record_failure(self, name: str, exc: BaseException) -> bool:
        """Count a failure of ``name``; return True iff this failure started a cooldown.

        Returns False, recording nothing, while Redis is not answering.
        """
        if self._listen:
            self._listener.ensure_started()
        now = self._clock.now()
        reply = self._call(self._scripts.failure, self._failure_call(name, exc, now), True)
        return False if reply is None else self._failure_done(name, reply, now)

    def record_success(self, name: str) -> None:
        """Count a success of ``name``: failures and cooldown growth start again from zero.

        Costs no round trip when ``name`` has no recorded failure.
        """
        if self._view.can_skip_success(name):
            return
        now = self._clock.now()
        reply = self._call(self._scripts.clear, self._clear_call(name), True)
        if reply is not None:
            self._clear_done(name, reply, now)

    def reset(self, name: str | None = None, *, strict: bool = False) -> None:
        """Forget the state of ``name``, or of every provider sharing the prefix when None.

        Args:
            name: the provider, or None for all.
            strict: raise instead of failing open (for operators: the CLI's ``reset``).

        Raises:
            ConnectionError: with ``strict``, Redis did not answer.
        """
        now = self._clock.now()
        script, call = (
            (self._scripts.clear_all, self._clear_all_call())
            if name is None
            else (self._scripts.clear, self._clear_call(name))
        )
        if strict:
            try:
                reply = script(keys=call[0], args=call[1])
            except FAILURES as exc:
                raise ConnectionError(error_text(exc)) from exc
        else:
            reply = self._call(script, call, True)
        if reply is None:
            return
        if name is None:
            self._clear_all_done(reply)
        else:
            self._clear_done(name, reply, now)

    def states(self) -> list[ProviderState]:
        """Return every provider with state under the prefix, sorted by name (one round trip).

        For operators (the CLI's ``status``): unlike the routing methods it does not fail open.

        Raises:
            ConnectionError: Redis did not answer.
        """
        keys, args = self._states_call()
        try:
            reply = self._scripts.states(keys=keys, args=args)
        except FAILURES as exc:
            raise ConnectionError(error_text(exc)) from exc
        return self._states_done(reply)

    def cooldowns(self) -> dict[str, float]:
        """Return the providers cooling down now, with the seconds left for each.

        Read from Redis (one round trip); empty while Redis is not answering.
        """
        reply = self._call(self._scripts.snapshot, self._snapshot_call(self._clock.now()), False)
        return {} if reply is None else _cooling(parse_snapshot(reply)[2])


class AsyncRedisCooldownTracker(RedisTrackerBase[redis.asyncio.Redis]):
    """:class:`RedisCooldownTracker` for async routed functions, on ``redis.asyncio``.

    The same options, rules, keys and events as :class:`RedisCooldownTracker` (the two can
    share a prefix); its methods are coroutines and never block the event loop. Its listener
    is a task started on first use in the running loop: use one tracker per event loop and
    close it with ``await tracker.aclose()`` (or ``async with``).

    Its keyword options (``prefix``, ``failure_threshold``, ``cooldown``, ``max_cooldown``,
    ``growth``, ``backoff``, ``clock``, ``wall_clock``, ``state_ttl``, ``listen``,
    ``retry_interval``, ``health_check_interval``, ``logger``, ``half_open``,
    ``probe_timeout``, ``policy``) mean what they mean for :class:`RedisCooldownTracker`, with
    the same defaults; ``listen`` starts a task instead of a thread.

    Args:
        client: a ``redis.asyncio.Redis`` (Sentinel-managed or not) or a
            ``redis.asyncio.cluster.RedisCluster``, configured as advised for
            :class:`RedisCooldownTracker` (no retries, short socket timeouts).

    Raises:
        InvalidConfigError: an option is invalid.
    """

    _is_async = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the listener task (and close the client when :meth:`from_url` made it).

        The tracker still works afterwards, asking Redis at every check.
        """
        await self._listener.aclose()
        if self._owns_client:
            await self._client.aclose()

    async def wait_synced(self) -> None:
        """Wait until the local view is current (subscribed and loaded).

        Not needed for correctness (until then the tracker asks Redis); useful at start-up or
        in tests that count round trips. Bound it with ``asyncio.timeout()``; returns at once
        when ``listen`` is False.
        """
        if not self._listen:
            return
        self._listener.ensure_started()
        await self._listener.live.wait()

    async def _call(self, script: Any, call: Call, writes: bool) -> Any:
        """Run a script, or return None (fail open) when Redis is not answering."""
        if not self._breaker.allow(writes):
            return None
        since = time.monotonic()
        try:
            reply = await script(keys=call[0], args=call[1])
        except FAILURES as exc:
            if self._breaker.failed(exc, since):
                await drop_idle_async(self._client)
            return None
        self._breaker.succeeded(since, "write" if writes else "read")
        return reply

    async def is_available(self, name: str) -> bool:
        """Return True when ``name`` is not cooling down now (or Redis is not answering).

        Half-open: see :meth:`RedisCooldownTracker.is_available`.
        """
        if not self.policy.half_open:
            return await self.cooldown_remaining(name) <= 0.0
        return await self.admit(name) != REFUSED

    async def admit(self, name: str) -> int:
        """Return :meth:`is_available` as in :meth:`RedisCooldownTracker.admit`."""
        if not self.policy.half_open:
            return ADMITTED if await self.cooldown_remaining(name) <= 0.0 else REFUSED
        answer, now = self._local_admit(name)
        if answer is not None:
            return answer
        reply = await self._call(self._scripts.claim, self._claim_call(name, now), True)
        return ADMITTED if reply is None else self._claim_done(name, reply, now)

    async def cooldown_remaining(self, name: str) -> float:
        """Return the seconds left in the cooldown of ``name``, ``0.0`` when available."""
        remaining = self._local_remaining(name)
        if remaining is not None:
            return remaining
        now = self._clock.now()
        reply = await self._call(self._scripts.peek, self._peek_call(name, now), False)
        return 0.0 if reply is None else self._peek_done(name, reply, now)

    async def record_failure(self, name: str, exc: BaseException) -> bool:
        """Count a failure of ``name``; return True iff this failure started a cooldown.

        Returns False, recording nothing, while Redis is not answering.
        """
        if self._listen:
            self._listener.ensure_started()
        now = self._clock.now()
        reply = await self._call(self._scripts.failure, self._failure_call(name, exc, now), True)
        return False if reply is None else self._failure_done(name, reply, now)

    async def record_success(self, name: str) -> None:
        """Count a success of ``name``: failures and cooldown growth start again from zero.

        Costs no round trip when ``name`` has no recorded failure.
        """
        if self._view.can_skip_success(name):
            return
        now = self._clock.now()
        reply = await self._call(self._scripts.clear, self._clear_call(name), True)
        if reply is not None:
            self._clear_done(name, reply, now)

    async def reset(self, name: str | None = None) -> None:
        """Forget the state of ``name``, or of every provider sharing the prefix when None."""
        now = self._clock.now()
        if name is None:
            reply = await self._call(self._scripts.clear_all, self._clear_all_call(), True)
            if reply is not None:
                self._clear_all_done(reply)
            return
        reply = await self._call(self._scripts.clear, self._clear_call(name), True)
        if reply is not None:
            self._clear_done(name, reply, now)

    async def states(self) -> list[ProviderState]:
        """Return every provider with state under the prefix, sorted by name (one round trip).

        Raises:
            ConnectionError: Redis did not answer.
        """
        keys, args = self._states_call()
        try:
            reply = await self._scripts.states(keys=keys, args=args)
        except FAILURES as exc:
            raise ConnectionError(error_text(exc)) from exc
        return self._states_done(reply)

    async def cooldowns(self) -> dict[str, float]:
        """Return the providers cooling down now, with the seconds left for each.

        Read from Redis (one round trip); empty while Redis is not answering.
        """
        reply = await self._call(
            self._scripts.snapshot, self._snapshot_call(self._clock.now()), False
        )
        return {} if reply is None else _cooling(parse_snapshot(reply)[2])


spelled_out(RedisCooldownTracker, policy_parameters())
spelled_out(AsyncRedisCooldownTracker, policy_parameters())
