"""Cooldown state shared through Redis, so every process using one server and prefix agrees.

How it works:

- **One Lua script per state change.** Counting a failure, clearing a provider and resetting
  everything are each a single ``EVALSHA`` (scripts registered once with redis-py's
  ``register_script``, which reloads them after a server restart): no read-then-write race, so
  when many processes fail one provider at once exactly one of them starts the cooldown.
- **Server time.** The scripts read the clock with ``TIME`` on the server, never the clients'
  clocks, which disagree between hosts; only tests inject a clock (``clock=``).
- **Keys** (``P`` is the prefix), each with a TTL so that abandoned providers vanish:

  ========================  ============================================================
  ``P:p:<name>``            hash: ``f`` consecutive failures, ``l`` consecutive cooldowns,
                            ``u`` end of the cooldown (ms)
  ``P:names``               sorted set: providers with state -> when their hash expires
  ``P:cooling``             sorted set: providers cooling down -> end of the cooldown
  ``P:seq``                 the sequence number of the last published event
  ``P:events:<db>``         pub/sub channel: ``op|seq|remaining_ms|name`` (pub/sub spans
                            databases, so the channel names the database)
  ========================  ============================================================

- **A local view, no round trip on the happy path.** Each tracker keeps which providers are
  cooling down (name -> local deadline) and which have state in Redis ("dirty": a success of
  a provider that never failed costs nothing). A background listener (a daemon thread, or a
  task for the async tracker) subscribes to ``P:events:<db>`` and, on every (re)subscription,
  reloads the whole state from the two sorted sets. Events and replies carry a sequence
  number anchored to the server's clock, so a late event never overwrites newer state.
- **Fail-open.** Any Redis error opens a breaker of the tracker's own for ``retry_interval``
  seconds: providers count as available, outcomes are not recorded, nothing raises, one
  WARNING when Redis is lost and one INFO when it is back. Then one caller (or the listener)
  probes; the others keep failing open until it answers.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Self, TypeVar

import redis
import redis.asyncio
from tenacity.wait import wait_base

from resilient_routing import _validate
from resilient_routing._exceptions import error_text
from resilient_routing.cooldown._breaker import Breaker
from resilient_routing.cooldown._policy import CooldownPolicy, policy_of
from resilient_routing.cooldown._state import ProviderState

from . import scripts
from .client import (
    FAILURES,
    UNREACHABLE,
    ServerClock,
    advise_on_client,
    check_client,
    check_prefix,
    database,
    make_client,
    socket_timeout,
    text,
)
from .listener import POLL, TaskListener, ThreadListener
from .view import View, parse_snapshot

if TYPE_CHECKING:
    pass

__all__ = ["AsyncRedisCooldownTracker", "RedisCooldownTracker"]

ClientT = TypeVar("ClientT")

_DEFAULT_LOGGER = logging.getLogger("resilient_routing")

#: What a script is run with: its keys and its arguments.
Call = tuple[list[str], list[str]]


class _RedisTracker(Generic[ClientT]):
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
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        max_cooldown: float = 300.0,
        growth: float = 2.0,
        backoff: wait_base | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
        state_ttl: float = 3600.0,
        listen: bool = True,
        retry_interval: float = 2.0,
        health_check_interval: float = 5.0,
        logger: logging.Logger | None = None,
        policy: CooldownPolicy | None = None,
    ) -> None:
        owner = type(self).__name__
        self.policy = policy_of(
            policy,
            owner,
            failure_threshold=failure_threshold,
            cooldown=cooldown,
            max_cooldown=max_cooldown,
            growth=growth,
            backoff=backoff,
            wall_clock=wall_clock,
        )
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
        self._breaker = Breaker(
            _validate.seconds("retry_interval", retry_interval),
            self._logger,
            f"{owner}({self.prefix!r})",
            UNREACHABLE,
        )
        self._owns_client = False
        register: Any = client.register_script  # type: ignore[attr-defined]
        # register_script is local (no round trip) for both clients; the scripts load on use.
        self._failure: Any = register(scripts.FAILURE)
        self._clear: Any = register(scripts.CLEAR)
        self._clear_all: Any = register(scripts.CLEAR_ALL)
        self._peek: Any = register(scripts.PEEK)
        self._snapshot: Any = register(scripts.SNAPSHOT)
        self._states: Any = register(scripts.STATES)
        index_ttl_ms = keep_ms + round(self.policy.max_cooldown * 1000) + 1000
        self._index_ttl = str(index_ttl_ms)
        self._failure_tail = [str(keep_ms), self._index_ttl, str(self.policy.failure_threshold)]
        # A user's backoff may draw jitter: then each failure takes a fresh schedule.
        self._jitter = self.policy.custom_backoff
        self._schedule = self._schedule_ms()
        health = _validate.seconds("health_check_interval", health_check_interval)
        routing = [self._failure, self._clear, self._clear_all, self._peek, self._snapshot]
        listener = TaskListener if self._is_async else ThreadListener
        self._listener: Any = listener(
            client,  # type: ignore[arg-type]
            routing,
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
        socket_timeout: float = 0.5,
        client_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        """Return a tracker on a new client for ``url``, configured to fail open quickly.

        The client never retries a failed command and gives up on a silent server after
        ``socket_timeout`` seconds; the tracker closes it when it is closed.

        Args:
            url: a Redis URL, such as ``redis://localhost:6379/0``.
            socket_timeout: seconds to wait for a connection or a reply. Default 0.5.
            client_options: more keyword arguments for the client's ``from_url``.
            **options: the tracker's keyword options (``prefix``, ``failure_threshold``...).

        Returns:
            The tracker, owning its client.
        """
        client = make_client(
            url, is_async=cls._is_async, timeout=socket_timeout, options=client_options
        )
        tracker = cls(client, **options)
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
        args = [self._clock.arg(now), name, keys.channel, *self._failure_tail, hinted_ms]
        schedule = self._schedule_ms() if self._jitter else self._schedule
        return [keys.state(name), keys.names, keys.cooling, keys.seq], args + schedule

    def _clear_call(self, name: str) -> Call:
        keys = self._keys
        return (
            [keys.state(name), keys.names, keys.cooling, keys.seq],
            [name, keys.channel, self._index_ttl],
        )

    def _clear_all_call(self) -> Call:
        keys = self._keys
        return (
            [keys.names, keys.cooling, keys.seq],
            [keys.state_prefix, keys.channel, self._index_ttl],
        )

    def _peek_call(self, name: str, now: float) -> Call:
        return [self._keys.state(name), self._keys.seq], [self._clock.arg(now)]

    def _snapshot_call(self, now: float) -> Call:
        keys = self._keys
        return [keys.names, keys.cooling, keys.seq], [self._clock.arg(now)]

    def _states_call(self) -> Call:
        return [self._keys.names], [self._clock.arg(self._clock.now()), self._keys.state_prefix]

    # -- the replies -----------------------------------------------------------------------

    def _failure_done(self, name: str, reply: Any, now: float) -> bool:
        started, remaining_ms, seq = (int(v) for v in reply)
        self._view.apply(name, seq, True, remaining_ms / 1000.0, now)
        return started == 1

    def _peek_done(self, name: str, reply: Any, now: float) -> float:
        exists, remaining_ms, seq = (int(v) for v in reply)
        self._view.apply(name, seq, bool(exists), remaining_ms / 1000.0, now)
        self._view.note_checked(name)
        return remaining_ms / 1000.0

    def _clear_done(self, name: str, reply: Any, now: float) -> None:
        _, seq = (int(v) for v in reply)
        self._view.apply(name, seq, False, 0.0, now)

    def _clear_all_done(self, reply: Any) -> None:
        self._view.clear_all(int(reply))

    @staticmethod
    def _states_done(reply: Any) -> list[ProviderState]:
        items = list(reply)
        states = [
            ProviderState(
                text(items[k]), int(items[k + 1]), int(items[k + 2]), int(items[k + 3]) / 1000.0
            )
            for k in range(0, len(items), 4)
        ]
        return sorted(states, key=lambda s: s.name)

    def _local_remaining(self, name: str) -> float | None:
        """The seconds left for ``name`` from the local view, None when it cannot tell."""
        if self._view.live and not self._breaker.down:
            return self._view.remaining(name, self._clock.now())
        if self._listen:
            self._listener.ensure_started()
        return None


class RedisCooldownTracker(_RedisTracker[redis.Redis]):
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
        client: a ``redis.Redis``, configured as above.
        prefix: namespace of the keys and of the events channel; trackers sharing a server
            and a prefix share their state. For Redis Cluster use a hash tag (``"{rr}"``) so
            that every key lands in one slot.
        failure_threshold: consecutive failures that start a cooldown. Default 3.
        cooldown: seconds of a first cooldown. Default 30.
        max_cooldown: the longest cooldown, whatever the growth or Retry-After. Default 300.
        growth: factor between consecutive cooldowns (>= 1; 1 disables growth). Default 2.
        backoff: a tenacity wait strategy for the N-th consecutive cooldown, instead of
            ``cooldown`` and ``growth``.
        clock: for tests only: a clock (``resilient_routing.testing.FakeClock``) whose time
            the scripts use instead of the server's. Default None: the server's ``TIME``.
        wall_clock: Unix time, to read an HTTP-date Retry-After.
        state_ttl: seconds a provider's failure count and cooldown growth outlive its last
            failure or cooldown in Redis before expiring. Default 3600.
        listen: keep a local view current through pub/sub (a background thread). False: ask
            Redis at every check (one round trip per provider tried). Default True.
        retry_interval: seconds the tracker fails open after a Redis error before it tries
            Redis again. Default 2.
        health_check_interval: seconds of silence after which the listener pings Redis; a
            ping unanswered for as long counts as an outage. Default 5.
        logger: where outages are reported. Default ``logging.getLogger("resilient_routing")``.
        policy: a :class:`~resilient_routing.cooldown.CooldownPolicy` instead of the options
            it is made of (``failure_threshold`` to ``wall_clock``).

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

    def _call(self, script: Any, call: Call) -> Any:
        """Run a script, or return None (fail open) when Redis is not answering."""
        if not self._breaker.allow():
            return None
        since = time.monotonic()
        try:
            reply = script(keys=call[0], args=call[1])
        except FAILURES as exc:
            self._breaker.failed(exc)
            return None
        self._breaker.succeeded(since)
        return reply

    def is_available(self, name: str) -> bool:
        """Return True when ``name`` is not cooling down now (or Redis is not answering)."""
        return self.cooldown_remaining(name) <= 0.0

    def cooldown_remaining(self, name: str) -> float:
        """Return the seconds left in the cooldown of ``name``, ``0.0`` when available."""
        remaining = self._local_remaining(name)
        if remaining is not None:
            return remaining
        now = self._clock.now()
        reply = self._call(self._peek, self._peek_call(name, now))
        return 0.0 if reply is None else self._peek_done(name, reply, now)

    def record_failure(self, name: str, exc: BaseException) -> bool:
        """Count a failure of ``name``; return True iff this failure started a cooldown.

        Returns False, recording nothing, while Redis is not answering.
        """
        if self._listen:
            self._listener.ensure_started()
        now = self._clock.now()
        reply = self._call(self._failure, self._failure_call(name, exc, now))
        return False if reply is None else self._failure_done(name, reply, now)

    def record_success(self, name: str) -> None:
        """Count a success of ``name``: failures and cooldown growth start again from zero.

        Costs no round trip when ``name`` has no recorded failure.
        """
        if self._view.can_skip_success(name):
            return
        now = self._clock.now()
        reply = self._call(self._clear, self._clear_call(name))
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
            (self._clear_all, self._clear_all_call())
            if name is None
            else (self._clear, self._clear_call(name))
        )
        if strict:
            try:
                reply = script(keys=call[0], args=call[1])
            except FAILURES as exc:
                raise ConnectionError(error_text(exc)) from exc
        else:
            reply = self._call(script, call)
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
            reply = self._states(keys=keys, args=args)
        except FAILURES as exc:
            raise ConnectionError(error_text(exc)) from exc
        return self._states_done(reply)

    def cooldowns(self) -> dict[str, float]:
        """Return the providers cooling down now, with the seconds left for each.

        Read from Redis (one round trip); empty while Redis is not answering.
        """
        reply = self._call(self._snapshot, self._snapshot_call(self._clock.now()))
        return {} if reply is None else parse_snapshot(reply)[2]


class AsyncRedisCooldownTracker(_RedisTracker[redis.asyncio.Redis]):
    """:class:`RedisCooldownTracker` for async routed functions, on ``redis.asyncio``.

    The same options, rules, keys and events as :class:`RedisCooldownTracker` (the two can
    share a prefix); its methods are coroutines and never block the event loop. Its listener
    is a task started on first use in the running loop: use one tracker per event loop and
    close it with ``await tracker.aclose()`` (or ``async with``).

    Args:
        client: a ``redis.asyncio.Redis``, configured as advised for
            :class:`RedisCooldownTracker` (no retries, short socket timeouts).
        prefix: see :class:`RedisCooldownTracker`.
        failure_threshold: see :class:`RedisCooldownTracker`.
        cooldown: see :class:`RedisCooldownTracker`.
        max_cooldown: see :class:`RedisCooldownTracker`.
        growth: see :class:`RedisCooldownTracker`.
        backoff: see :class:`RedisCooldownTracker`.
        clock: see :class:`RedisCooldownTracker`.
        wall_clock: see :class:`RedisCooldownTracker`.
        state_ttl: see :class:`RedisCooldownTracker`.
        listen: see :class:`RedisCooldownTracker` (a task instead of a thread).
        retry_interval: see :class:`RedisCooldownTracker`.
        health_check_interval: see :class:`RedisCooldownTracker`.
        logger: see :class:`RedisCooldownTracker`.
        policy: see :class:`RedisCooldownTracker`.

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

    async def _call(self, script: Any, call: Call) -> Any:
        """Run a script, or return None (fail open) when Redis is not answering."""
        if not self._breaker.allow():
            return None
        since = time.monotonic()
        try:
            reply = await script(keys=call[0], args=call[1])
        except FAILURES as exc:
            self._breaker.failed(exc)
            return None
        self._breaker.succeeded(since)
        return reply

    async def is_available(self, name: str) -> bool:
        """Return True when ``name`` is not cooling down now (or Redis is not answering)."""
        return await self.cooldown_remaining(name) <= 0.0

    async def cooldown_remaining(self, name: str) -> float:
        """Return the seconds left in the cooldown of ``name``, ``0.0`` when available."""
        remaining = self._local_remaining(name)
        if remaining is not None:
            return remaining
        now = self._clock.now()
        reply = await self._call(self._peek, self._peek_call(name, now))
        return 0.0 if reply is None else self._peek_done(name, reply, now)

    async def record_failure(self, name: str, exc: BaseException) -> bool:
        """Count a failure of ``name``; return True iff this failure started a cooldown.

        Returns False, recording nothing, while Redis is not answering.
        """
        if self._listen:
            self._listener.ensure_started()
        now = self._clock.now()
        reply = await self._call(self._failure, self._failure_call(name, exc, now))
        return False if reply is None else self._failure_done(name, reply, now)

    async def record_success(self, name: str) -> None:
        """Count a success of ``name``: failures and cooldown growth start again from zero.

        Costs no round trip when ``name`` has no recorded failure.
        """
        if self._view.can_skip_success(name):
            return
        now = self._clock.now()
        reply = await self._call(self._clear, self._clear_call(name))
        if reply is not None:
            self._clear_done(name, reply, now)

    async def reset(self, name: str | None = None) -> None:
        """Forget the state of ``name``, or of every provider sharing the prefix when None."""
        now = self._clock.now()
        if name is None:
            reply = await self._call(self._clear_all, self._clear_all_call())
            if reply is not None:
                self._clear_all_done(reply)
            return
        reply = await self._call(self._clear, self._clear_call(name))
        if reply is not None:
            self._clear_done(name, reply, now)

    async def states(self) -> list[ProviderState]:
        """Return every provider with state under the prefix, sorted by name (one round trip).

        Raises:
            ConnectionError: Redis did not answer.
        """
        keys, args = self._states_call()
        try:
            reply = await self._states(keys=keys, args=args)
        except FAILURES as exc:
            raise ConnectionError(error_text(exc)) from exc
        return self._states_done(reply)

    async def cooldowns(self) -> dict[str, float]:
        """Return the providers cooling down now, with the seconds left for each.

        Read from Redis (one round trip); empty while Redis is not answering.
        """
        reply = await self._call(self._snapshot, self._snapshot_call(self._clock.now()))
        return {} if reply is None else parse_snapshot(reply)[2]
