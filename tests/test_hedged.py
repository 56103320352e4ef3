"""Hedged routing: parallel attempts after a delay, the first success wins."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import subprocess
import sys
import threading
import time

import pytest

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    InvalidConfigError,
    RoutingTimeoutError,
    routed,
)
from resilient_routing.strategies import Hedged
from resilient_routing.testing import EventRecorder, FakeClock


class Down(Exception):
    pass


async def test_async_slow_first_is_hedged_and_cancelled() -> None:
    """The second provider starts after the delay and wins; the first is cancelled before return."""
    cancelled: list[str] = []

    @routed(providers=["slow", "fast", "t"], strategy=Hedged(delay=0.01), cooldown=None)
    async def call(provider: str) -> str:
        if provider == "slow":
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(provider)
                raise
        return provider

    before = asyncio.all_tasks()
    result = await call.execute()
    assert result.provider == "fast" and result.hedges == ("fast",) and result.attempt == 2
    assert cancelled == ["slow"], "the loser was cancelled before the call returned"
    assert asyncio.all_tasks() == before, "no task left running"


async def test_async_fast_first_starts_nothing_else() -> None:
    """A first provider answering within the delay is the only call."""
    calls: list[str] = []

    @routed(providers=["a", "b"], strategy=Hedged(delay=5), cooldown=None)
    async def call(provider: str) -> str:
        calls.append(provider)
        return provider

    result = await call.execute()
    assert calls == ["a"] and result.hedges == ()


async def test_async_failure_falls_over_at_once() -> None:
    """A failure starts the next provider without waiting for the hedge delay."""

    @routed(providers=["a", "b"], strategy=Hedged(delay=30), cooldown=None)
    async def call(provider: str) -> str:
        if provider == "a":
            raise Down()
        return provider

    async with asyncio.timeout(5):
        result = await call.execute()
    assert result.provider == "b" and result.hedges == () and result.failures[0][0] == "a"


async def test_async_all_fail(clock: FakeClock) -> None:
    """All attempts failing ends in AllProvidersFailedError, each failure recorded once."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, clock=clock)

    @routed(providers=["a", "b", "t"], strategy=Hedged(delay=0, max_hedges=2), cooldown=tracker)
    async def call(provider: str) -> str:
        await asyncio.sleep(0.01)
        raise Down(provider)

    with pytest.raises(AllProvidersFailedError) as info:
        await call()
    assert sorted(n for n, _ in info.value.failures) == ["a", "b", "t"]
    assert not tracker.is_available("a") and not tracker.is_available("b")


async def test_async_cancelling_the_call_cancels_every_attempt() -> None:
    """Cancelling a hedged call leaves no attempt running."""
    started = asyncio.Event()
    cancelled: list[str] = []

    @routed(providers=["a", "b", "c"], strategy=Hedged(delay=0, max_hedges=2), cooldown=None)
    async def call(provider: str) -> str:
        if provider == "c":
            started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(provider)
            raise
        return provider

    before = asyncio.all_tasks()
    task = asyncio.create_task(call())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == ["a", "b", "c"]
    assert asyncio.all_tasks() == before


async def test_async_hedged_timeout() -> None:
    """timeout= bounds a hedged call too."""

    @routed(providers=["a", "b"], strategy=Hedged(delay=0.01), timeout=0.05, cooldown=None)
    async def call(provider: str) -> str:
        await asyncio.sleep(60)
        return provider

    with pytest.raises(RoutingTimeoutError):
        await call()


async def test_async_hedge_attempt_timeout_is_not_the_calls_deadline() -> None:
    """A hedge bounded by the deadline does not make another attempt's timeout the call's."""
    # a: budget attempt_timeout (0.8 s, under the 1 s left); b, started at 0.3 s: the 0.7 s
    # left. a runs out at 0.8 s: a's failure, and b answers at 0.9 s, within the deadline.
    expired: list[str] = []

    @routed(
        providers=["a", "b"],
        strategy=Hedged(delay=0.3),
        attempt_timeout=0.8,
        timeout=1.0,
        cooldown=None,
    )
    async def call(provider: str) -> str:
        try:
            await asyncio.sleep(60 if provider == "a" else 0.6)
        except asyncio.CancelledError:
            expired.append(provider)
            raise
        return provider

    result = await call.execute()
    assert result.provider == "b"
    assert [(name, type(exc)) for name, exc in result.failures] == [("a", TimeoutError)]
    assert expired == ["a"]


def test_sync_slow_first_is_abandoned_not_waited_for() -> None:
    """Sync: the winner returns while the abandoned attempt is still running."""
    release = threading.Event()
    finished: list[str] = []

    @routed(providers=["slow", "fast", "t"], strategy=Hedged(delay=0.01), cooldown=None)
    def call(provider: str) -> str:
        if provider == "slow":
            release.wait(10)
            finished.append(provider)
        return provider

    result = call.execute()
    assert result.provider == "fast" and result.hedges == ("fast",)
    assert finished == [], "the call returned without waiting for the slow attempt"
    release.set()


def test_sync_failure_falls_over_at_once() -> None:
    """Sync: a failure starts the next provider without the delay."""

    @routed(providers=["a", "b"], strategy=Hedged(delay=30), cooldown=None)
    def call(provider: str) -> str:
        if provider == "a":
            raise Down()
        return provider

    start = time.monotonic()
    assert call() == "b"
    assert time.monotonic() - start < 10


def test_sync_bad_request_propagates() -> None:
    """An exception outside fallback_on propagates from a hedged call too."""

    @routed(providers=["a", "b"], strategy=Hedged(delay=1), fallback_on=Down, cooldown=None)
    def call(provider: str) -> str:
        raise KeyError(provider)

    with pytest.raises(KeyError):
        call()


def test_sync_all_fail_and_max_hedges_in_flight() -> None:
    """At most 1 + max_hedges attempts run at once; all failing raises."""
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    @routed(providers=list("abcdef"), strategy=Hedged(delay=0, max_hedges=2), cooldown=None)
    def call(provider: str) -> str:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.01)
        with lock:
            in_flight -= 1
        raise Down(provider)

    with pytest.raises(AllProvidersFailedError) as info:
        call()
    assert len(info.value.failures) == 6
    assert peak <= 3


class Recorded(Hedged):
    """Hedging that records the attempt hooks it hears (what a learning strategy relies on)."""

    def __init__(self, delay: float, executor: concurrent.futures.Executor | None = None) -> None:
        super().__init__(delay=delay, executor=executor)
        self.started: list[str] = []
        self.ended: list[str] = []
        self.lock = threading.Lock()

    def on_attempt_start(self, name: str) -> None:
        with self.lock:
            self.started.append(name)

    def on_attempt_end(self, name: str, seconds: float, ok: bool) -> None:
        with self.lock:
            self.ended.append(name)

    def balanced(self, timeout: float = 5.0) -> bool:
        """Wait until every attempt started has ended (losers end in their own threads)."""
        deadline = time.monotonic() + timeout
        while sorted(self.ended) != sorted(self.started):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True


class Interrupted(BaseException):
    """What a provider's code may raise past Exception (SystemExit, KeyboardInterrupt)."""


def test_sync_a_hedge_still_queued_when_the_call_returns_never_runs() -> None:
    """A hedge waiting for a free thread when the call returns is dropped: no call after it.

    Otherwise a saturated pool would call a provider (billed, rate-limited) for a call that
    has already returned; the strategy still hears the attempt end.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    other_work = threading.Event()
    b_queued = threading.Event()
    calls: list[str] = []

    class Watching(Recorded):
        def on_attempt_start(self, name: str) -> None:
            super().on_attempt_start(name)
            if name == "b":
                b_queued.set()  # the driver queues it right after this

    strategy = Watching(delay=0.01, executor=pool)

    @routed(providers=["a", "b"], strategy=strategy, cooldown=None)
    def call(provider: str) -> str:
        calls.append(provider)
        pool.submit(other_work.wait, 10)  # the pool's next work, ahead of the hedge
        b_queued.wait(10)
        return provider

    try:
        assert call() == "a"
        other_work.set()
        pool.shutdown(wait=True)  # whatever is still queued runs now
        assert calls == ["a"]
        assert strategy.started == ["a", "b"] and strategy.balanced()
    finally:
        other_work.set()
        pool.shutdown(wait=False)


def test_sync_attempts_still_queued_when_the_call_times_out_never_run() -> None:
    """The call's ``timeout`` ends it with its attempts still queued: none of them runs later."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    busy = threading.Event()
    calls: list[str] = []
    strategy = Recorded(delay=0.01, executor=pool)
    pool.submit(busy.wait, 10)  # the only thread is busy: every attempt queues

    @routed(providers=["a", "b"], strategy=strategy, cooldown=None, timeout=0.1)
    def call(provider: str) -> str:
        calls.append(provider)
        return provider

    try:
        with pytest.raises(RoutingTimeoutError):
            call()
        busy.set()
        pool.shutdown(wait=True)
        assert calls == []
        assert strategy.started == ["a", "b"] and strategy.balanced()
    finally:
        busy.set()
        pool.shutdown(wait=False)


def test_sync_a_hedged_attempt_raising_past_exception_ends_for_the_strategy() -> None:
    """The winner's interruption propagates; a loser's ends in its thread; every attempt ends."""
    strategy = Recorded(delay=5)

    @routed(providers=["a", "b"], strategy=strategy, cooldown=None)
    def interrupted(provider: str) -> str:
        raise Interrupted()

    with pytest.raises(Interrupted):
        interrupted()
    assert strategy.started == ["a"] and strategy.balanced()

    loser = Recorded(delay=0.01)
    b_answered = threading.Event()

    @routed(providers=["a", "b"], strategy=loser, cooldown=None)
    def slow_interrupted(provider: str) -> str:
        if provider == "a":
            b_answered.wait(10)
            raise Interrupted()
        return provider

    assert slow_interrupted() == "b"
    b_answered.set()
    assert sorted(loser.started) == ["a", "b"] and loser.balanced()


async def test_async_a_hedged_attempt_cancelled_on_its_own_ends_for_the_strategy() -> None:
    """An attempt raising CancelledError itself (an inner cancel scope) ends like any other."""
    strategy = Recorded(delay=5)

    @routed(providers=["a", "b"], strategy=strategy, cooldown=None)
    async def call(provider: str) -> str:
        raise asyncio.CancelledError()

    with pytest.raises(asyncio.CancelledError):
        await call()
    assert strategy.started == ["a"] and strategy.ended == ["a"]


async def test_hedged_attempts_are_reported_with_their_own_numbers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first attempt failing after a hedge started is still attempt 1 in logs and events."""
    recorder = EventRecorder()
    b_started = asyncio.Event()

    @routed(
        providers=["a", "b", "t"],
        strategy=Hedged(delay=0.01),
        cooldown=None,
        listeners=[recorder],
        logger=logging.getLogger("resilient_routing.tests.hedged"),
    )
    async def call(provider: str) -> str:
        if provider == "a":
            await b_started.wait()
            raise ConnectionError("down")
        b_started.set()
        await asyncio.sleep(0.2)
        return provider

    with caplog.at_level(logging.INFO, logger="resilient_routing.tests.hedged"):
        result = await call.execute()
    assert result.provider == "b" and result.attempt == 3  # "t" started when "a" failed
    numbers = [(e.kind, e.provider, e.attempt) for e in recorder if e.provider is not None]
    assert numbers == [
        ("attempt_started", "a", 1),
        ("attempt_started", "b", 2),
        ("attempt_failed", "a", 1),
        ("terminus_used", "t", 3),
        ("attempt_started", "t", 3),
        ("attempt_succeeded", "b", 2),
        ("call_finished", "b", 3),  # a call's event: the attempts it made
    ]
    assert [r.getMessage() for r in caplog.records] == [
        "provider failed: 'a' (attempt 1 of 3): ConnectionError: down",
        "succeeded on fallback provider: 'b' (attempt 2)",
    ]
    assert [getattr(r, "attempt", None) for r in caplog.records] == [1, 2]


_OUTLIVING_MAIN = """
import concurrent.futures
import threading
import time
from resilient_routing import routed
from resilient_routing.strategies import Hedged

@routed(providers=["a", "b"], strategy=Hedged(delay=0.01), cooldown=None)
def call(provider):
    if provider == "a":
        raise ConnectionError("down")
    return provider

assert call() == "b"  # the shared pool exists
main = threading.main_thread()

def worker():
    main.join()
    probe = concurrent.futures.ThreadPoolExecutor(1)
    while True:  # until concurrent.futures, at the main thread's exit, refuses any work
        try:
            probe.submit(int).result()
        except RuntimeError:
            break
        time.sleep(0.01)
    print("after the main thread:", call(), flush=True)

threading.Thread(target=worker).start()
"""


def test_sync_hedging_in_a_thread_outliving_the_main_thread_still_routes() -> None:
    """After the main thread ends no pool takes work: attempts run in the caller's thread."""
    done = subprocess.run(
        [sys.executable, "-c", _OUTLIVING_MAIN], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "after the main thread: b\n", done.stderr


def test_sync_hedging_on_an_executor_shut_down_runs_attempts_in_the_callers_thread() -> None:
    """A user's executor that takes no more work: the call still routes, one attempt at a time."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    pool.shutdown()
    strategy = Recorded(delay=0.01, executor=pool)
    threads: list[str] = []

    @routed(providers=["a", "b"], strategy=strategy, cooldown=None)
    def call(provider: str) -> str:
        threads.append(threading.current_thread().name)
        if provider == "a":
            raise Down(provider)
        return provider

    assert call() == "b"
    assert threads == [threading.current_thread().name] * 2
    assert strategy.started == ["a", "b"] and strategy.balanced()


def test_sync_an_interruption_in_the_callers_thread_propagates_at_once() -> None:
    """An attempt run in the caller's thread, interrupted there (Ctrl-C), ends the call.

    The pool stopped taking work mid-call; an earlier attempt's answer waits unread.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    strategy = Recorded(delay=0.01, executor=pool)
    answered, second = threading.Event(), threading.Event()

    @routed(providers=["one", "two", "t"], strategy=strategy, cooldown=None)
    def call(provider: str) -> str:
        if provider == "one":
            pool.shutdown(wait=False)  # the pool takes no more work from now on
            second.wait(5)
            answered.set()
            return "one"
        second.set()  # in the caller's thread
        answered.wait(5)  # "one" has answered: its outcome waits to be read
        raise Interrupted()

    with pytest.raises(Interrupted):
        call()
    assert strategy.balanced()


@pytest.mark.parametrize(
    ("options", "message"),
    [({"delay": -1}, "delay"), ({"delay": "x"}, "delay"), ({"max_hedges": 0}, "max_hedges")],
)
def test_hedged_validates(options: dict[str, object], message: str) -> None:
    """Bad hedging options are refused."""
    with pytest.raises(InvalidConfigError, match=message):
        Hedged(**options)  # type: ignore[arg-type]


def test_hedged_repr() -> None:
    """The repr shows the options."""
    assert repr(Hedged(delay=0.1, max_hedges=2)) == "Hedged(delay=0.1, max_hedges=2)"
