"""The listeners that keep a tracker's view current from pub/sub: a thread, or a task."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Final, cast

import redis
import redis.asyncio
from redis.exceptions import RedisError

from resilient_routing.cooldown._breaker import Breaker

from .client import (
    FAILURES,
    ServerClock,
    close_pubsub,
    drop_idle,
    drop_idle_async,
    socket_timeout,
    subscribed,
    text,
)
from .health import Health
from .scripts import Keys, Registered
from .view import View, parse_snapshot

__all__ = ["POLL", "ChannelMoved", "TaskListener", "ThreadListener"]

#: Seconds a listener waits for messages before it looks at its stop flag again.
POLL: Final = 0.1
#: Message types carrying an event: on a channel, or on a shard channel (Redis Cluster).
_EVENT: Final = frozenset({"message", "smessage"})
#: Message types confirming a (re)subscription, after which events may have been missed.
_SUBSCRIBED: Final = frozenset({"subscribe", "ssubscribe"})


class ChannelMoved(RedisError):
    """The server dropped the shard channel's subscription: its slot moved to another node.

    The session ends and the listener subscribes again where the slot is now.
    """


@dataclass(eq=False, repr=False)
class ListenerBase:
    """The listener's decisions, shared by the thread (sync) and the task (async) runners."""

    client: Any
    scripts: Registered
    view: View
    breaker: Breaker
    keys: Keys
    clock: ServerClock
    health_interval: float
    #: How long the client waits for a reply (its socket timeout).
    answer_within: float = field(init=False)
    last_event_seq: int = field(default=0, init=False)
    went_live: bool = field(default=False, init=False)
    moved_at: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        self.answer_within = socket_timeout(self.client)

    def begin(self) -> None:
        """A session begins: events are numbered anew, and what the view held is older."""
        self.last_event_seq = 0
        self.view.begin_session()

    def snapshot_call(self) -> tuple[list[str], list[str], float]:
        now = self.clock.now()
        return [self.keys.names, self.keys.cooling, self.keys.seq], [self.clock.arg(now)], now

    def probe_call(self) -> tuple[list[str], list[str]]:
        return [self.keys.probe], [str(max(1, round(self.breaker.interval * 1000)))]

    def loaded(self, reply: Any, now: float, since: float) -> None:
        seq, dirty, cooling = parse_snapshot(reply)
        self.view.load(seq, dirty, cooling, now)
        self.view.set_live(True)
        self.went_live = True
        self.breaker.succeeded(since, "read")

    def event(self, data: object) -> bool:
        """Apply one event; return True when the view must be reloaded."""
        try:
            op, seq_text, remaining_text, name = text(data).split("|", 3)
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
        elif op in ("C", "F", "X", "P"):  # cooldown, failure, cleared, probe claimed
            self.view.apply(name, seq, op != "X", remaining, self.clock.now())
        return False

    def heard(self, message: dict[str, Any], health: Health, now: float) -> bool:
        """Take one pub/sub message in; return True when the view must be reloaded.

        Raises:
            ChannelMoved: the server unsubscribed the session (the slot moved).
        """
        kind = message["type"]
        sent = health.heard_from_server(now, kind == "pong")
        if kind in _EVENT:
            return self.event(message["data"])
        if kind in _SUBSCRIBED:
            # First subscription, or redis-py's own reconnection: either way events may have
            # been missed, and what was heard before may be history the server lost.
            self.begin()
            return True
        if kind == "sunsubscribe":
            raise ChannelMoved(self.keys.channel)
        if kind == "pong" and sent is not None and now - sent <= self.answer_within:
            self.breaker.succeeded(sent, "ping")  # a slow pong: commands would time out still
        return False

    def ended(self, exc: BaseException, since: float) -> tuple[bool, bool]:
        """A session started at ``since`` ended on ``exc``.

        Returns:
            Whether to reconnect at once, and whether this opened the breaker (then the
            pool's idle connections are dropped: the same fault most likely broke them).
        """
        self.view.set_live(False)
        went_live, self.went_live = self.went_live, False
        now = time.monotonic()
        if isinstance(exc, ChannelMoved) and now - self.moved_at >= self.breaker.interval:
            # Not an outage: the slot moved (resharding); subscribe again where it went. A
            # slot that keeps moving goes through the breaker, lest the listener spin.
            self.moved_at = now
            return True, False
        if went_live and time.monotonic() - since >= self.breaker.interval:
            # A long-lived subscription cut once (a server restart, a killed client) may come
            # back at once: try again before declaring Redis lost. Short ones (a server that
            # keeps dropping us) go through the breaker, lest the listener spin.
            return True, False
        return False, self.breaker.failed(exc)


class ThreadListener(ListenerBase):
    """Keeps a sync tracker's view current from a daemon thread."""

    client: redis.Redis

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.start_lock = threading.Lock()
        self.closed = False
        self.pubsub: Any = None
        _THREAD_LISTENERS.add(self)

    def after_fork(self) -> None:
        # The thread did not survive the fork; the child starts its own on first use.
        self.thread = None
        # The parent's subscription, whose socket the child shares: close() must not shut it.
        self.pubsub = None
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

    def stop_soon(self) -> None:
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
                self.session(stop)
                resume = False
            except Exception as exc:  # the listener must outlive any error
                if stop.is_set():
                    break
                resume, opened = self.ended(exc, since)
                if opened:
                    drop_idle(self.client)
        self.view.set_live(False)

    def session(self, stop: threading.Event) -> None:
        self.begin()
        pubsub = self.pubsub = self.subscribe()
        try:
            health = Health(self.health_interval)
            while not stop.is_set():
                message = pubsub.get_message(timeout=POLL)
                now = time.monotonic()
                if message is not None and self.heard(message, health, now):
                    self.reload()
                due = health.due(now, self.breaker)
                if due == "ping":
                    pubsub.ping()
                elif due == "probe":
                    self.probe()
        finally:
            self.view.set_live(False)
            self.pubsub = None
            with contextlib.suppress(Exception):
                pubsub.close()

    def subscribe(self) -> Any:
        """Return a pub/sub connection subscribed to the events channel."""
        return subscribed(cast(Any, self.client).pubsub(), "subscribe", self.keys.channel)

    def load_scripts(self) -> None:
        # Loading the scripts here, in the background, spares callers the NOSCRIPT round trips
        # after a server restart.
        pipe = cast(Any, self.client).pipeline(transaction=False)
        for script in self.scripts.all:
            pipe.script_load(script.script)
        pipe.execute()

    def reload(self) -> None:
        self.load_scripts()
        # Sent now, not at the session's start: redis-py may have resubscribed within the
        # session after an outage began, and only an answer sent after it proves recovery.
        since = time.monotonic()
        keys, args, now = self.snapshot_call()
        self.loaded(self.scripts.snapshot(keys=keys, args=args), now, since)

    def probe(self) -> None:
        since = time.monotonic()
        keys, args = self.probe_call()
        try:
            self.scripts.probe(keys=keys, args=args)
        except FAILURES as exc:
            self.breaker.failed(exc, since)
        else:
            self.breaker.succeeded(since, "write")


#: Every live thread listener, for the one at-fork hook (os.register_at_fork cannot be undone,
#: so one hook per tracker would outlive its tracker).
_THREAD_LISTENERS: weakref.WeakSet[ThreadListener] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for listener in list(_THREAD_LISTENERS):
        listener.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class TaskListener(ListenerBase):
    """Keeps an async tracker's view current from a task in the tracker's event loop."""

    client: redis.asyncio.Redis

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
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

    def stop_soon(self) -> None:
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
            await asyncio.wait({task}, timeout=POLL)

    async def run(self) -> None:
        resume = False
        try:
            while not self.closed:
                if not resume and not self.breaker.allow():
                    await asyncio.sleep(min(max(self.breaker.wait_time(), 0.01), POLL * 5))
                    continue
                since = time.monotonic()
                try:
                    await self.session()
                except Exception as exc:  # the listener must outlive any error
                    resume, opened = self.ended(exc, since)
                    if opened:
                        await drop_idle_async(self.client)
        finally:
            self.view.set_live(False)

    async def session(self) -> None:
        self.begin()
        pubsub = await self.subscribe()
        try:
            health = Health(self.health_interval)
            while not self.closed:
                wait = max(0.01, min(self.health_interval, POLL * 5))
                message = await pubsub.get_message(timeout=wait)
                now = time.monotonic()
                if message is not None and self.heard(message, health, now):
                    await self.reload()
                due = health.due(now, self.breaker)
                if due == "ping":
                    await pubsub.ping()
                elif due == "probe":
                    await self.probe()
        finally:
            self.view.set_live(False)
            self.live.clear()
            await close_pubsub(pubsub)

    async def subscribe(self) -> Any:
        """Return a pub/sub connection subscribed to the events channel."""
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.keys.channel)
        except BaseException:
            await close_pubsub(pubsub)
            raise
        return pubsub

    async def load_scripts(self) -> None:
        pipe = cast(Any, self.client).pipeline(transaction=False)
        for script in self.scripts.all:
            pipe.script_load(script.script)
        await pipe.execute()

    async def reload(self) -> None:
        await self.load_scripts()
        since = time.monotonic()  # see ThreadListener.reload
        keys, args, now = self.snapshot_call()
        self.loaded(await self.scripts.snapshot(keys=keys, args=args), now, since)
        self.live.set()

    async def probe(self) -> None:
        since = time.monotonic()
        keys, args = self.probe_call()
        try:
            await self.scripts.probe(keys=keys, args=args)
        except FAILURES as exc:
            self.breaker.failed(exc, since)
        else:
            self.breaker.succeeded(since, "write")
