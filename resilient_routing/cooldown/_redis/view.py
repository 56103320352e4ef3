"""The Redis trackers' machinery: checks, the breaker, the local view and its listeners.

The listeners (a thread for the sync tracker, a task for the async one) keep the view current
from pub/sub; everything else here does no I/O. See ``_redis`` for the design.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

import redis
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from resilient_routing._exceptions import InvalidConfigError

from .scripts import _Keys

_DEFAULT_LOGGER: Final = logging.getLogger("resilient_routing")

#: Seconds a listener waits for messages before it looks at its stop flag again.
_POLL: Final = 0.1
#: In polling mode, a read of a provider found clean lets its success skip Redis this long.
_CHECKED_FOR: Final = 1.0
#: Beyond this many providers the local view forgets those with nothing left to remember.
_MAX_LOCAL: Final = 10_000
#: Redis errors are logged as type and message only, this long at most.
_MAX_ERROR_TEXT: Final = 200

# Errors that mean "Redis is not answering": they open the breaker instead of reaching the
# routed call. OSError covers sockets that redis-py did not wrap; ValueError a name the
# client cannot encode (a lone surrogate), which must not reach the routed call either.
_FAILURES: Final = (RedisError, OSError, ValueError)
# Of those, the ones that mean the server could not be reached at all.
_UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError, OSError)

# ---------------------------------------------------------------------------------------
# Small pieces shared by both trackers: no I/O in any of them.
# ---------------------------------------------------------------------------------------


def _text(value: object) -> str:
    """Return a reply element as text, whether the client decodes responses or not."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 3] + "..."


def _seconds(option: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidConfigError(f"{option} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix:
        raise InvalidConfigError(f"prefix must be a non-empty str, got {prefix!r}")
    return prefix


def _check_logger(logger: object) -> logging.Logger:
    if logger is None:
        return _DEFAULT_LOGGER
    if not isinstance(logger, logging.Logger):
        raise InvalidConfigError(f"logger must be a logging.Logger, got {logger!r}")
    return logger


def _is_async_client(client: object) -> bool:
    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


def _check_client(client: object, want_async: bool, owner: str) -> None:
    if not callable(getattr(client, "register_script", None)) or not callable(
        getattr(client, "pubsub", None)
    ):
        kind = "redis.asyncio.Redis" if want_async else "redis.Redis"
        raise InvalidConfigError(f"{owner} takes a {kind} client, got {client!r}")
    if _is_async_client(client) != want_async:
        if want_async:
            raise InvalidConfigError(
                f"{owner} takes a redis.asyncio.Redis client, got the sync {client!r}: "
                "use RedisCooldownTracker with it"
            )
        raise InvalidConfigError(
            f"{owner} takes a redis.Redis client, got the async {client!r}: "
            "use AsyncRedisCooldownTracker with it"
        )


def _advise_on_client(
    client: object, logger: logging.Logger, owner: str, fix: str = " (or use {owner}.from_url())"
) -> None:
    """Warn once when the client would make an outage cost far more than a timeout."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return
    retry = kwargs.get("retry")
    get_retries = getattr(retry, "get_retries", None)
    retries = get_retries() if callable(get_retries) else 0
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


class _Clock:
    """Local time for deadlines, and the "now" the scripts are given ('' = server time)."""

    __slots__ = ("now", "server_time")

    def __init__(self, clock: Callable[[], float] | None) -> None:
        if clock is not None and not callable(clock):
            raise InvalidConfigError(f"clock must be a callable returning seconds, got {clock!r}")
        self.now: Callable[[], float] = clock or time.monotonic
        self.server_time = clock is None

    def arg(self, now: float) -> str:
        return "" if self.server_time else str(round(now * 1000))


class _Breaker:
    """After a Redis error, stop asking Redis for ``interval`` seconds; log each transition once.

    When the interval is over, ONE caller is let through as a probe (the others keep failing
    open until it answers), so a hung server costs one client timeout per interval.
    """

    __slots__ = (
        "_down_since",
        "_lock",
        "_reopen_at",
        "_unreachable",
        "down",
        "interval",
        "label",
        "logger",
    )

    def __init__(self, interval: float, logger: logging.Logger, label: str) -> None:
        self.interval = interval
        self.logger = logger
        self.label = label
        self.down = False
        self._down_since = 0.0
        self._reopen_at = 0.0
        self._unreachable = False
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Return whether to ask Redis now."""
        if not self.down:
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._reopen_at:
                return False
            self._reopen_at = now + self.interval
            return True

    def wait_time(self) -> float:
        """Return the seconds before the next probe is allowed."""
        return max(0.0, self._reopen_at - time.monotonic()) if self.down else 0.0

    def failed(self, exc: BaseException) -> None:
        """Redis did not answer: fail open for ``interval`` seconds."""
        now = time.monotonic()
        with self._lock:
            self._reopen_at = now + self.interval
            # A server that answers PING may still refuse scripts (out of memory, a read-only
            # replica, no channel permission): then only a script's success proves recovery.
            self._unreachable = isinstance(exc, _UNREACHABLE)
            if self.down:
                return
            self.down = True
            self._down_since = now
        self.logger.warning(
            "%s lost Redis (%s): providers count as available and failures are not recorded "
            "until it answers again (next attempt in %g s)",
            self.label,
            _describe(exc),
            self.interval,
            extra={"error_type": type(exc).__name__, "redis_tracker": self.label},
        )

    def succeeded(self, since: float, *, ping: bool = False) -> None:
        """Redis answered a request sent at ``since`` (time.monotonic()).

        Args:
            since: when the request was sent.
            ping: it was only a PING, which proves the server reachable, not usable.
        """
        if not self.down:
            return
        with self._lock:
            # An answer to a request sent before the outage was noticed proves nothing.
            if not self.down or since < self._down_since or (ping and not self._unreachable):
                return
            self.down = False
        self.logger.info(
            "%s reached Redis again: tracking cooldowns again",
            self.label,
            extra={"redis_tracker": self.label},
        )


class _View:
    """This process's picture of the shared state, kept current by the events channel.

    Every update carries the sequence number of the state it describes; an update older than
    what is known of that provider (or than the last full reload) is ignored, so the order in
    which replies and events reach the process does not matter.
    """

    __slots__ = ("checked", "deadlines", "dirty", "floor", "live", "lock", "ready", "seqs")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.live = False
        self.floor = 0
        self.deadlines: dict[str, float] = {}
        self.dirty: set[str] = set()
        self.seqs: dict[str, int] = {}
        self.checked: dict[str, float] = {}

    def after_fork(self) -> None:
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.live = False

    def set_live(self, live: bool) -> None:
        self.live = live
        if live:
            self.ready.set()
        else:
            self.ready.clear()

    def remaining(self, name: str, now: float) -> float:
        deadline = self.deadlines.get(name)
        if deadline is None or deadline <= now:
            return 0.0
        return deadline - now

    def apply(self, name: str, seq: int, dirty: bool, remaining: float, now: float) -> None:
        """Record the state of ``name`` as of ``seq``, unless something newer is known."""
        with self.lock:
            if seq <= self.floor or seq <= self.seqs.get(name, 0):
                return
            self.seqs[name] = seq
            if remaining > 0:
                self.deadlines[name] = now + remaining
            else:
                self.deadlines.pop(name, None)
            if dirty:
                self.dirty.add(name)
            else:
                self.dirty.discard(name)
            if len(self.seqs) > _MAX_LOCAL:
                self._forget_clean(now)

    def _forget_clean(self, now: float) -> None:
        for name in [n for n in self.seqs if n not in self.dirty]:
            del self.seqs[name]
            self.deadlines.pop(name, None)
        self.checked.clear()

    def clear_all(self, seq: int) -> None:
        with self.lock:
            if seq <= self.floor:
                return
            self.floor = seq
            newer = {n: s for n, s in self.seqs.items() if s > seq}
            self.deadlines = {n: d for n, d in self.deadlines.items() if n in newer}
            self.dirty = {n for n in self.dirty if n in newer}
            self.seqs = newer

    def load(self, seq: int, dirty: Iterable[str], cooling: dict[str, float], now: float) -> None:
        """Replace the view with a full reload as of ``seq`` (keeping anything newer)."""
        with self.lock:
            if seq < self.floor:
                # The server's sequence went back (its clock did): nothing local can be trusted.
                self.seqs.clear()
            newer = {n: s for n, s in self.seqs.items() if s > seq}
            deadlines = {n: now + r for n, r in cooling.items() if n not in newer}
            deadlines.update({n: d for n, d in self.deadlines.items() if n in newer})
            marked = {n for n in dirty if n not in newer}
            marked.update(n for n in self.dirty if n in newer)
            self.deadlines, self.dirty, self.seqs, self.floor = deadlines, marked, newer, seq
            self.checked.clear()

    def wipe(self) -> None:
        with self.lock:
            self.deadlines, self.dirty, self.seqs, self.floor = {}, set(), {}, 0
            self.checked.clear()

    def note_checked(self, name: str) -> None:
        if len(self.checked) > _MAX_LOCAL:
            self.checked.clear()
        self.checked[name] = time.monotonic()

    def can_skip_success(self, name: str) -> bool:
        """Whether a success of ``name`` has nothing to clear in Redis, as far as is known."""
        if name in self.dirty:
            return False
        if self.live:
            return True
        checked = self.checked.get(name)
        return checked is not None and time.monotonic() - checked < _CHECKED_FOR


def _parse_snapshot(reply: Any) -> tuple[int, list[str], dict[str, float]]:
    seq, names, flat = reply
    cooling = {_text(flat[i]): int(flat[i + 1]) / 1000.0 for i in range(0, len(flat), 2)}
    return int(seq), [_text(n) for n in names], cooling


class _Health:
    """Pings an idle subscription so that a hung server is noticed, not waited on forever."""

    __slots__ = ("heard", "interval", "ping_sent")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.heard = time.monotonic()
        self.ping_sent: float | None = None

    def heard_from_server(self, now: float) -> float | None:
        """Record that the server spoke; return when the pending ping was sent, if any."""
        sent = self.ping_sent
        self.heard = now
        self.ping_sent = None
        return sent

    def ping_due(self, now: float, breaker: _Breaker) -> bool:
        """Return whether to send a PING now.

        Raises:
            redis.exceptions.TimeoutError: the last PING got no answer in time.
        """
        if self.ping_sent is not None:
            if now - self.ping_sent > self.interval:
                raise RedisTimeoutError(f"no reply to PING within {self.interval:g} s")
            return False
        # While the breaker is open the listener's PING is the probe that closes it.
        due = now - self.heard >= self.interval or (breaker.down and breaker.allow())
        if due:
            self.ping_sent = now
        return due


class _ListenerBase:
    """The listener's decisions, shared by the thread (sync) and the task (async) runners."""

    def __init__(
        self,
        view: _View,
        breaker: _Breaker,
        keys: _Keys,
        clock: _Clock,
        health_interval: float,
    ) -> None:
        self.view = view
        self.breaker = breaker
        self.keys = keys
        self.clock = clock
        self.health_interval = health_interval
        self.last_event_seq = 0
        self.went_live = False

    def snapshot_call(self) -> tuple[list[str], list[str], float]:
        now = self.clock.now()
        return [self.keys.names, self.keys.cooling, self.keys.seq], [self.clock.arg(now)], now

    def loaded(self, reply: Any, now: float, since: float) -> None:
        seq, dirty, cooling = _parse_snapshot(reply)
        self.view.load(seq, dirty, cooling, now)
        self.view.set_live(True)
        self.went_live = True
        self.breaker.succeeded(since)

    def event(self, data: object) -> bool:
        """Apply one event; return True when the view must be reloaded."""
        try:
            op, seq_text, remaining_text, name = _text(data).split("|", 3)
            seq, remaining = int(seq_text), int(remaining_text) / 1000.0
        except ValueError:
            return False  # not ours: someone else publishes on the channel
        if seq <= self.last_event_seq:
            # Events are numbered in the order they are published: a smaller number means the
            # server's sequence went back (its clock did), so nothing local can be trusted.
            self.view.wipe()
            self.last_event_seq = seq
            return True
        self.last_event_seq = seq
        if op == "Z":
            self.view.clear_all(seq)
        elif op in ("C", "F", "X"):
            self.view.apply(name, seq, op != "X", remaining, self.clock.now())
        return False

    def ended(self, exc: BaseException, since: float) -> bool:
        """A session started at ``since`` ended on ``exc``; return whether to reconnect at once."""
        self.view.set_live(False)
        went_live, self.went_live = self.went_live, False
        if went_live and time.monotonic() - since >= self.breaker.interval:
            # A long-lived subscription cut once (a server restart, a killed client) may come
            # back at once: try again before declaring Redis lost. Short ones (a server that
            # keeps dropping us) go through the breaker, lest the listener spin.
            return True
        self.breaker.failed(exc)
        return False


class _ThreadListener(_ListenerBase):
    """Keeps a sync tracker's view current from a daemon thread."""

    def __init__(
        self,
        client: redis.Redis,
        scripts: list[Any],
        view: _View,
        breaker: _Breaker,
        keys: _Keys,
        clock: _Clock,
        health_interval: float,
    ) -> None:
        super().__init__(view, breaker, keys, clock, health_interval)
        self.client = client
        self.scripts = scripts
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.start_lock = threading.Lock()
        self.closed = False
        self.pubsub: Any = None
        _THREAD_LISTENERS.add(self)

    def after_fork(self) -> None:
        # The thread did not survive the fork; the child starts its own on first use.
        self.thread = None
        self.stop_event = threading.Event()
        self.start_lock = threading.Lock()
        self.view.after_fork()
        self.breaker.after_fork()

    def ensure_started(self) -> None:
        if self.thread is not None or self.closed:
            return
        with self.start_lock:
            if self.thread is None and not self.closed:
                thread = threading.Thread(
                    target=self.run,
                    name=f"resilient_routing-redis-listener[{self.keys.prefix}]",
                    daemon=True,
                )
                self.thread = thread
                thread.start()

    def request_stop(self) -> None:
        self.closed = True
        self.stop_event.set()

    def close(self, timeout: float) -> None:
        with self.start_lock:
            self.closed = True
            thread = self.thread
        self.stop_event.set()
        if thread is None or thread is threading.current_thread():
            return
        # Shutting the socket down wakes the listener from its wait at once; closing it is
        # left to the listener, which owns the connection.
        sock = getattr(getattr(self.pubsub, "connection", None), "_sock", None)
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        thread.join(timeout)

    def run(self) -> None:
        stop = self.stop_event
        resume = False
        while not stop.is_set():
            if not resume and not self.breaker.allow():
                stop.wait(max(self.breaker.wait_time(), 0.01))
                continue
            since = time.monotonic()
            try:
                self.session(stop, since)
                resume = False
            except Exception as exc:  # the listener must outlive any error
                if stop.is_set():
                    break
                resume = self.ended(exc, since)
        self.view.set_live(False)

    def session(self, stop: threading.Event, since: float) -> None:
        self.last_event_seq = 0
        pubsub = self.pubsub = cast(Any, self.client).pubsub()
        try:
            pubsub.subscribe(self.keys.channel)
            health = _Health(self.health_interval)
            while not stop.is_set():
                message = pubsub.get_message(timeout=_POLL)
                now = time.monotonic()
                if message is not None:
                    sent = health.heard_from_server(now)
                    kind = message["type"]
                    if kind == "message":
                        if self.event(message["data"]):
                            self.reload(since)
                    elif kind == "subscribe":
                        # First subscription, or redis-py's own reconnection: either way
                        # events may have been missed.
                        self.reload(since)
                    elif kind == "pong" and sent is not None:
                        self.breaker.succeeded(sent, ping=True)
                if health.ping_due(now, self.breaker):
                    pubsub.ping()
        finally:
            self.view.set_live(False)
            self.pubsub = None
            with contextlib.suppress(Exception):
                pubsub.close()

    def reload(self, since: float) -> None:
        # Loading the scripts here, in the background, spares callers the NOSCRIPT round trips
        # after a server restart.
        pipe = cast(Any, self.client).pipeline(transaction=False)
        for script in self.scripts:
            pipe.script_load(script.script)
        pipe.execute()
        keys, args, now = self.snapshot_call()
        self.loaded(self.scripts[-1](keys=keys, args=args), now, since)


#: Every live thread listener, for the one at-fork hook (os.register_at_fork cannot be undone,
#: so one hook per tracker would outlive its tracker).
_THREAD_LISTENERS: weakref.WeakSet[_ThreadListener] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for listener in list(_THREAD_LISTENERS):
        listener.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _TaskListener(_ListenerBase):
    """Keeps an async tracker's view current from a task in the tracker's event loop."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        scripts: list[Any],
        view: _View,
        breaker: _Breaker,
        keys: _Keys,
        clock: _Clock,
        health_interval: float,
    ) -> None:
        super().__init__(view, breaker, keys, clock, health_interval)
        self.client = client
        self.scripts = scripts
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self.live = asyncio.Event()

    def ensure_started(self) -> None:
        task = self.task
        if self.closed or (task is not None and not task.done()):
            return
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"resilient_routing-redis-listener[{self.keys.prefix}]"
        )

    def cancel_soon(self) -> None:
        """Stop the task from any thread (the tracker was garbage-collected unclosed)."""
        self.closed = True
        task = self.task
        if task is not None and not task.done():
            with contextlib.suppress(RuntimeError):
                task.get_loop().call_soon_threadsafe(task.cancel)

    async def aclose(self) -> None:
        self.closed = True
        task, self.task = self.task, None
        if task is None or task.done():
            return
        if task.get_loop() is not asyncio.get_running_loop():
            with contextlib.suppress(RuntimeError):  # its loop is closed
                task.get_loop().call_soon_threadsafe(task.cancel)
            return
        # On Python 3.11, asyncio.wait_for (which redis.asyncio wraps every send in) loses a
        # cancellation that lands as the send completes: cancel again until the task is done.
        # It also stops by itself at its next look at `closed`.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=_POLL)

    async def run(self) -> None:
        resume = False
        try:
            while not self.closed:
                if not resume and not self.breaker.allow():
                    await asyncio.sleep(min(max(self.breaker.wait_time(), 0.01), _POLL * 5))
                    continue
                since = time.monotonic()
                try:
                    await self.session(since)
                except Exception as exc:  # the listener must outlive any error
                    resume = self.ended(exc, since)
        finally:
            self.view.set_live(False)

    async def session(self, since: float) -> None:
        self.last_event_seq = 0
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.keys.channel)
            health = _Health(self.health_interval)
            while not self.closed:
                wait = max(0.01, min(self.health_interval, _POLL * 5))
                message = await pubsub.get_message(timeout=wait)
                now = time.monotonic()
                if message is not None:
                    sent = health.heard_from_server(now)
                    kind = message["type"]
                    if kind == "message":
                        if self.event(message["data"]):
                            await self.reload(since)
                    elif kind == "subscribe":
                        await self.reload(since)
                    elif kind == "pong" and sent is not None:
                        self.breaker.succeeded(sent, ping=True)
                if health.ping_due(now, self.breaker):
                    await pubsub.ping()
        finally:
            self.view.set_live(False)
            self.live.clear()
            with contextlib.suppress(Exception):
                await cast(Any, pubsub).aclose()

    async def reload(self, since: float) -> None:
        pipe = cast(Any, self.client).pipeline(transaction=False)
        for script in self.scripts:
            pipe.script_load(script.script)
        await pipe.execute()
        keys, args, now = self.snapshot_call()
        self.loaded(await self.scripts[-1](keys=keys, args=args), now, since)
        self.live.set()


# ---------------------------------------------------------------------------------------
# The trackers.
# ---------------------------------------------------------------------------------------
