"""Streaming routes: fallback before the first item, the provider's stream after it."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    InvalidConfigError,
    RoutingTimeoutError,
    execute,
    execute_async,
    last_route,
    routed,
)
from resilient_routing._routing import route as route_module
from resilient_routing.strategies import Hedged, LeastBusy, LeastLatency
from resilient_routing.testing import EventRecorder, FakeClock

from .test_slow_calls import Broken

MID_STREAM = "resilient_routing: raised mid-stream by provider"


class Down(Exception):
    pass


class Streams:
    """Scripted provider streams that record how far they got and whether they were closed.

    ``script[name]``: the items, then optionally an exception to raise (before the first item
    when it comes first).
    """

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.finished: list[str] = []

    def gen(self, provider: str) -> Iterator[Any]:
        self.opened.append(provider)
        try:
            for step in self.script[provider]:
                if isinstance(step, BaseException):
                    raise step
                yield step
            self.finished.append(provider)
        except GeneratorExit:
            self.closed.append(provider)
            raise

    async def agen(self, provider: str) -> AsyncIterator[Any]:
        self.opened.append(provider)
        try:
            for step in self.script[provider]:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, float):  # a pause, in seconds
                    await asyncio.sleep(step)
                    continue
                yield step
            self.finished.append(provider)
        except (GeneratorExit, asyncio.CancelledError):
            self.closed.append(provider)
            raise


def drain(stream: Iterator[Any], into: list[Any]) -> None:
    """Consume ``stream`` into ``into`` (what arrived stays there when it raises)."""
    for item in stream:
        into.append(item)  # noqa: PERF402 - kept item by item: the stream may raise


async def adrain(stream: AsyncIterator[Any], into: list[Any]) -> None:
    """The async :func:`drain`."""
    async for item in stream:
        into.append(item)  # noqa: PERF401 - as in drain


class SDKStream:
    """An SDK-like stream object (openai's Stream): iterable once, with close()."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.closed = True


class AsyncSDKStream:
    """openai's AsyncStream: async iterable, with an async close()."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.closed = False

    async def _items(self) -> AsyncIterator[Any]:
        for item in self.items:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, float):
                await asyncio.sleep(item)
                continue
            yield item

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._items()

    async def close(self) -> None:
        self.closed = True


# -- sync: before the first item ----------------------------------------------------------


def test_routing_starts_at_the_first_item_and_falls_over_before_it(
    tracker: InMemoryCooldownTracker,
) -> None:
    s = Streams({"a": [Down("a")], "b": ["b1", "b2"]})

    @routed(providers=["a", "b"], cooldown=tracker)
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    stream = chat()
    assert s.opened == []  # nothing called yet
    assert list(stream) == ["b1", "b2"]
    assert s.opened == ["a", "b"]
    assert not tracker.is_available("a")
    route = last_route()
    assert route is not None and route.provider == "b" and route.attempt == 2
    assert [name for name, _ in route.failures] == ["a"]


def test_an_empty_stream_is_an_answer(tracker: InMemoryCooldownTracker) -> None:
    s = Streams({"a": [], "b": ["b"]})

    @routed(providers=["a", "b"], cooldown=tracker)
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    assert list(chat()) == []
    assert s.opened == ["a"]
    assert tracker.is_available("a")


def test_every_provider_fails_before_its_first_item(tracker: InMemoryCooldownTracker) -> None:
    s = Streams({"a": [Down("a")], "b": [Down("b")]})

    @routed(providers=["a", "b"], cooldown=tracker)
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    with pytest.raises(AllProvidersFailedError) as caught:
        next(chat())
    assert [name for name, _ in caught.value.failures] == ["a", "b"]


def test_rules_before_the_first_item_cooldown_skip_terminus_max_attempts(
    tracker: InMemoryCooldownTracker,
) -> None:
    tracker.record_failure("a", Down())
    s = Streams({"a": ["a"], "b": [Down("b")], "c": [Down("c")], "t": ["t"]})

    @routed(providers=["a", "b", "c", "t"], cooldown=tracker, max_attempts=2)
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    assert list(chat()) == ["t"]
    assert s.opened == ["b", "t"]  # a skipped (cooling), c left out for the terminus's slot
    route = last_route()
    assert route is not None and route.skipped == ("a",) and route.was_terminus


def test_fallback_on_before_the_first_item_propagates_at_once() -> None:
    s = Streams({"a": [ValueError("bad request")], "b": ["b"]})

    @routed(providers=["a", "b"], fallback_on=Down)
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    with pytest.raises(ValueError, match="bad request"):
        list(chat())
    assert s.opened == ["a"]


def test_sync_timeout_stops_new_attempts(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync stream's timeout starts no attempt past its deadline (time to first item)."""
    monkeypatch.setattr(route_module, "default_clock", clock)  # the routing's clock
    s = Streams({"a": [Down("a")], "b": ["b"]})

    @routed(providers=["a", "b"], timeout=1.0)
    def chat(provider: str) -> Iterator[str]:
        clock.advance(2.0)
        yield from s.gen(provider)

    with pytest.raises(RoutingTimeoutError):
        list(chat())
    assert s.opened == ["a"]


# -- sync: after the first item ------------------------------------------------------------


def test_a_failure_after_the_first_item_reaches_the_consumer_and_is_recorded(
    tracker: InMemoryCooldownTracker,
) -> None:
    cut = Down("connection reset")
    s = Streams({"a": ["a1", "a2", cut], "b": ["b1"]})

    @routed(providers=["a", "b"], cooldown=tracker)
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    received: list[str] = []
    with pytest.raises(Down) as caught:
        drain(chat(), received)
    assert caught.value is cut  # the provider's own exception
    assert f"{MID_STREAM} 'a'" in caught.value.__notes__
    assert received == ["a1", "a2"]
    assert s.opened == ["a"]  # no other provider started behind the consumer's back
    assert not tracker.is_available("a")  # recorded as a's failure


def test_an_exempt_provider_failing_mid_stream_is_not_recorded(
    tracker: InMemoryCooldownTracker,
) -> None:
    s = Streams({"a": ["a1", Down("cut")], "b": ["b1"]})

    @routed(providers=["a", "b"], cooldown=tracker, exempt={"a"})
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    with pytest.raises(Down) as caught:
        list(chat())
    assert f"{MID_STREAM} 'a'" in caught.value.__notes__
    assert tracker.is_available("a")


def test_a_mid_stream_failure_is_logged(
    tracker: InMemoryCooldownTracker, caplog: pytest.LogCaptureFixture
) -> None:
    s = Streams({"a": ["a1", Down("cut after a1")]})

    @routed(providers=["a"], cooldown=tracker)
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    with pytest.raises(Down):
        list(chat())
    messages = [r.getMessage() for r in caplog.records]
    assert "provider failed mid-stream: 'a': Down: cut after a1" in messages
    assert any(m.startswith("provider entering cooldown: 'a'") for m in messages)
    (record,) = [r for r in caplog.records if "mid-stream" in r.getMessage()]
    assert record.levelname == "WARNING"
    facts = ("provider", "is_terminus", "attempt", "error_type", "error", "classification")
    assert {k: getattr(record, k) for k in facts} == {
        "provider": "a",
        "is_terminus": True,
        "attempt": 1,
        "error_type": "Down",
        "error": "cut after a1",
        "classification": "counted",
    }
    assert record.exc_info is None  # type and text only: no traceback


@pytest.mark.parametrize("how", ["break", "close"])
def test_stopping_early_closes_the_provider_stream_and_is_no_failure(
    how: str, tracker: InMemoryCooldownTracker
) -> None:
    s = Streams({"a": ["a1", "a2", "a3"], "b": ["b1"]})
    rec = EventRecorder()

    @routed(providers=["a", "b"], cooldown=tracker, listeners=[rec])
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    stream = chat()
    for item in stream:
        assert item == "a1"
        break
    if how == "close":
        stream.close()
    else:
        del stream  # dropped: no reference cycle keeps it (and the provider's stream) open
    assert s.closed == ["a"]
    assert tracker.is_available("a")
    ended = rec.last("stream_ended")
    assert (ended.outcome, ended.items, ended.provider) == ("closed", 1, "a")
    assert rec.last("call_finished").outcome == "success"


def test_a_dropped_stream_closes_without_the_garbage_collector() -> None:
    s = Streams({"a": ["a1", "a2"]})

    @routed(providers=["a"])
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    gc.disable()
    try:
        result = chat.execute()
        assert result.provider == "a"
        del result
        assert s.closed == ["a"]
    finally:
        gc.enable()


def test_sdk_stream_objects_stream_true(tracker: InMemoryCooldownTracker) -> None:
    """stream=True routes a function returning a stream object; each one opened is closed."""
    made: dict[str, SDKStream] = {}

    @routed(providers=["a", "b"], cooldown=tracker, stream=True)
    def chat(provider: str, prompt: str) -> SDKStream:
        made[provider] = SDKStream([Down("429")] if provider == "a" else [prompt, "!"])
        return made[provider]

    assert list(chat("hi")) == ["hi", "!"]
    assert made["a"].closed and made["b"].closed
    assert not tracker.is_available("a")


def test_stream_true_without_a_stream_is_a_configuration_error() -> None:
    @routed(providers=["a", "b"], stream=True)
    def text(provider: str) -> str:
        return "not a stream"

    @routed(providers=["a", "b"], stream=True)
    def number(provider: str) -> int:
        return 3

    @routed(providers=["a", "b"], stream=True)
    def async_one(provider: str) -> AsyncSDKStream:
        return AsyncSDKStream([1])

    with pytest.raises(InvalidConfigError, match="returned str, expected an iterable"):
        list(text())
    with pytest.raises(InvalidConfigError, match="returned int"):
        list(number())
    with pytest.raises(InvalidConfigError, match="async def"):
        list(async_one())


def test_execute_returns_the_result_at_the_first_item(tracker: InMemoryCooldownTracker) -> None:
    s = Streams({"a": [Down("a")], "b": ["b1", "b2", "b3"]})

    @routed(providers=["a", "b"], cooldown=tracker)
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    result = chat.execute()
    assert s.opened == ["a", "b"]
    assert (result.provider, result.attempt, result.was_terminus) == ("b", 2, True)
    assert list(result.response) == ["b1", "b2", "b3"]  # every item, from the first
    assert s.finished == ["b"]


def test_functional_execute_streams() -> None:
    s = Streams({"a": ["a1", "a2"]})

    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    result = execute(["a"], chat)
    assert list(result.response) == ["a1", "a2"]
    objects = execute(["a"], lambda p: SDKStream([p]), stream=True)
    assert list(objects.response) == ["a"]


def test_a_routed_generator_method() -> None:
    class Client:
        def __init__(self) -> None:
            self.prefix = ">"

        @routed(providers=["a", "b"])
        def chat(self, provider: str, prompt: str) -> Iterator[str]:
            if provider == "a":
                raise Down("a")
            yield f"{self.prefix}{provider}:{prompt}"

    assert list(Client().chat("hi")) == [">b:hi"]
    assert "stream" in repr(Client.chat)


def test_sync_refuses_what_it_cannot_enforce() -> None:
    with pytest.raises(InvalidConfigError, match="first_item_timeout needs an async"):

        @routed(providers=["a"], first_item_timeout=1.0)
        def one(provider: str) -> Iterator[str]:
            yield provider

    with pytest.raises(InvalidConfigError, match="idle_timeout needs an async"):

        @routed(providers=["a"], idle_timeout=1.0)
        def two(provider: str) -> Iterator[str]:
            yield provider

    with pytest.raises(InvalidConfigError, match="hedged streaming route must be async"):

        @routed(providers=["a"], strategy=Hedged(delay=0.1))
        def three(provider: str) -> Iterator[str]:
            yield provider

    with pytest.raises(InvalidConfigError, match="idle_timeout is for streaming routes"):

        @routed(providers=["a"], idle_timeout=1.0)
        async def four(provider: str) -> str:
            return provider

    with pytest.raises(InvalidConfigError, match="use first_item_timeout"):

        @routed(providers=["a"], attempt_timeout=1.0)
        async def five(provider: str) -> AsyncIterator[str]:
            yield provider


def test_single_attempt_strategy_streams() -> None:
    s = Streams({"a": [Down("a")], "b": ["b"]})

    @routed(providers=["a", "b"], strategy="primary_only")
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    with pytest.raises(Down) as caught:
        list(chat())
    assert "resilient_routing: raised by provider 'a'" in caught.value.__notes__


def test_events_cover_the_stream(tracker: InMemoryCooldownTracker) -> None:
    s = Streams({"a": [Down("a")], "b": ["b1", "b2", "b3"]})
    rec = EventRecorder()

    @routed(providers=["a", "b"], cooldown=tracker, listeners=[rec])
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    stream = chat()
    assert next(stream) == "b1"
    assert rec.kinds()[-2:] == [("attempt_succeeded", "b"), ("first_item", "b")]
    assert "call_finished" not in [kind for kind, _ in rec.kinds()]  # the call goes on
    assert list(stream) == ["b2", "b3"]
    assert rec.kinds()[-2:] == [("stream_ended", "b"), ("call_finished", "b")]
    ended = rec.last("stream_ended")
    assert (ended.outcome, ended.items, ended.exception) == ("completed", 3, None)
    assert rec.last("first_item").latency >= rec.last("attempt_succeeded").latency


def test_events_of_a_stream_that_fails_mid_way(tracker: InMemoryCooldownTracker) -> None:
    cut = Down("cut")
    s = Streams({"a": ["a1", cut]})
    rec = EventRecorder()

    @routed(providers=["a"], cooldown=tracker, listeners=[rec])
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    with pytest.raises(Down):
        list(chat())
    ended = rec.last("stream_ended")
    assert (ended.outcome, ended.items, ended.exception) == ("failed", 1, cut)
    finished = rec.last("call_finished")
    assert (finished.outcome, finished.provider, finished.exception) == ("propagated", "a", cut)
    assert ("cooldown_started", "a") in rec.kinds()


def test_threads_streaming_at_once_each_get_their_stream() -> None:
    """Many threads stream at once: each stream whole, each failure before it counted."""
    tracker = InMemoryCooldownTracker(failure_threshold=10**9)
    count = 0
    lock = threading.Lock()

    @routed(providers=["a", "b"], cooldown=tracker)
    def chat(provider: str, n: int) -> Iterator[int]:
        nonlocal count
        if provider == "a":
            with lock:
                count += 1
            raise Down("a")
        yield from range(n)

    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for _ in range(200):
                assert list(chat(n)) == list(range(n))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count == 16 * 200


# -- async ---------------------------------------------------------------------------------


async def test_async_generator_falls_over_before_the_first_item(
    tracker: InMemoryCooldownTracker,
) -> None:
    s = Streams({"a": [Down("a")], "b": ["b1", "b2"]})

    chat = routed(providers=["a", "b"], cooldown=tracker)(s.agen)

    stream = chat()
    assert s.opened == []
    assert [item async for item in stream] == ["b1", "b2"]
    assert not tracker.is_available("a")
    route = last_route()
    assert route is not None and route.provider == "b"


async def test_async_mid_stream_failure_is_the_providers_own(
    tracker: InMemoryCooldownTracker,
) -> None:
    cut = Down("cut")
    s = Streams({"a": ["a1", cut], "b": ["b1"]})

    chat = routed(providers=["a", "b"], cooldown=tracker)(s.agen)

    received: list[str] = []
    with pytest.raises(Down) as caught:
        await adrain(chat(), received)
    assert caught.value is cut and f"{MID_STREAM} 'a'" in caught.value.__notes__
    assert received == ["a1"] and s.opened == ["a"]
    assert not tracker.is_available("a")


async def test_first_item_timeout_closes_the_slow_provider_and_falls_over(
    tracker: InMemoryCooldownTracker,
) -> None:
    s = Streams({"a": [30.0, "late"], "b": ["b1"]})

    chat = routed(providers=["a", "b"], cooldown=tracker, first_item_timeout=0.05)(s.agen)

    result = await chat.execute()
    assert result.provider == "b"
    ((name, error),) = result.failures
    assert name == "a" and isinstance(error, TimeoutError)
    assert "first_item_timeout=0.05" in str(error)
    assert s.closed == ["a"]  # the abandoned stream was closed
    assert not tracker.is_available("a")
    assert [item async for item in result.response] == ["b1"]


async def test_stream_true_first_item_timeout_closes_sdk_stream() -> None:
    made: dict[str, AsyncSDKStream] = {}

    @routed(providers=["a", "b"], stream=True, first_item_timeout=0.05)
    async def chat(provider: str) -> AsyncSDKStream:
        made[provider] = AsyncSDKStream([30.0] if provider == "a" else ["b1", "b2"])
        return made[provider]

    assert [item async for item in chat()] == ["b1", "b2"]
    assert made["a"].closed and made["b"].closed


async def test_idle_timeout_fails_a_stalled_stream(tracker: InMemoryCooldownTracker) -> None:
    s = Streams({"a": ["a1", 30.0, "a2"], "b": ["b1"]})

    chat = routed(providers=["a", "b"], cooldown=tracker, idle_timeout=0.05)(s.agen)

    received: list[str] = []
    with pytest.raises(TimeoutError, match=r"provider 'a' sent no item within idle_timeout=0.05"):
        await adrain(chat(), received)
    assert received == ["a1"]
    assert s.closed == ["a"] and s.opened == ["a"]
    assert not tracker.is_available("a")


async def test_async_timeout_bounds_the_time_to_first_item() -> None:
    s = Streams({"a": [30.0, "a"], "b": [30.0, "b"]})

    chat = routed(providers=["a", "b"], timeout=0.05)(s.agen)

    with pytest.raises(RoutingTimeoutError):
        await chat().__anext__()
    assert s.closed == ["a"]


@pytest.mark.parametrize("how", ["aclose", "break"])
async def test_async_stopping_early_closes_the_provider_stream(
    how: str, tracker: InMemoryCooldownTracker
) -> None:
    s = Streams({"a": ["a1", "a2", "a3"]})
    rec = EventRecorder()

    chat = routed(providers=["a"], cooldown=tracker, listeners=[rec])(s.agen)

    stream = chat()
    async for item in stream:
        assert item == "a1"
        break
    if how == "aclose":
        await stream.aclose()
    else:
        del stream  # dropped: asyncio finalizes it on its loop
        for _ in range(5):
            await asyncio.sleep(0)
    assert s.closed == ["a"]
    assert tracker.is_available("a")
    assert rec.last("stream_ended").outcome == "closed"


async def test_cancelled_consumer_records_nothing_and_closes_the_stream(
    tracker: InMemoryCooldownTracker,
) -> None:
    s = Streams({"a": ["a1", 30.0, "a2"], "b": ["b1"]})
    rec = EventRecorder()

    chat = routed(providers=["a", "b"], cooldown=tracker, listeners=[rec])(s.agen)

    got: list[str] = []
    task = asyncio.create_task(adrain(chat(), got))
    await asyncio.sleep(0.02)
    assert got == ["a1"]  # and the provider stalls
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert s.closed == ["a"] and s.opened == ["a"]
    assert tracker.is_available("a")
    assert rec.last("stream_ended").outcome == "cancelled"
    assert rec.last("call_finished").outcome == "cancelled"


async def test_cancelled_before_the_first_item_records_nothing(
    tracker: InMemoryCooldownTracker,
) -> None:
    s = Streams({"a": [30.0, "a1"], "b": ["b1"]})

    chat = routed(providers=["a", "b"], cooldown=tracker)(s.agen)

    task = asyncio.create_task(chat().__anext__())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert s.opened == ["a"] and s.closed == ["a"]
    assert tracker.is_available("a")


async def test_hedged_stream_first_item_wins_and_the_others_are_closed() -> None:
    s = Streams({"slow": [30.0, "slow1"], "fast": [0.01, "fast1", "fast2"]})

    chat = routed(providers=["slow", "fast"], strategy=Hedged(delay=0.01))(s.agen)

    before = asyncio.all_tasks()
    result = await chat.execute()
    assert result.provider == "fast" and result.hedges == ("fast",)
    assert s.closed == ["slow"]  # the loser's stream
    assert asyncio.all_tasks() == before  # no attempt outlives the race
    assert [item async for item in result.response] == ["fast1", "fast2"]


async def test_hedged_stream_a_loser_that_answered_is_closed() -> None:
    """Two first items landing together: the one that lost the race is closed."""
    made: dict[str, AsyncSDKStream] = {}
    gate = asyncio.Event()

    class Gated(AsyncSDKStream):
        async def _items(self) -> AsyncIterator[Any]:
            await gate.wait()
            for item in self.items:
                yield item

    @routed(providers=["a", "b"], strategy=Hedged(delay=0.001), stream=True)
    async def chat(provider: str) -> AsyncSDKStream:
        made[provider] = Gated([provider])
        if provider == "b":
            gate.set()  # both first items are ready on the same loop turn
        return made[provider]

    result = await chat.execute()
    winner, loser = ("a", "b") if result.provider == "a" else ("b", "a")
    assert made[loser].closed
    assert [item async for item in result.response] == [winner]


async def test_hedged_stream_cancelled_again_while_a_loser_ends_still_closes_it() -> None:
    """The caller leaves at once; a loser that answers late is still closed."""
    made: dict[str, AsyncSDKStream] = {}
    ending = asyncio.Event()

    class Late(AsyncSDKStream):
        """Its first item comes even when cancelled (a client that finishes what it read)."""

        async def _items(self) -> AsyncIterator[Any]:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                ending.set()
                await asyncio.sleep(0.05)
            yield self.items[0]

    @routed(providers=["slow", "fast"], strategy=Hedged(delay=0.001), stream=True)
    async def chat(provider: str) -> AsyncSDKStream:
        if provider == "fast":
            await asyncio.sleep(0.01)
        made[provider] = (Late if provider == "slow" else AsyncSDKStream)([provider])
        return made[provider]

    call = asyncio.ensure_future(chat.execute())
    await ending.wait()  # fast won; slow, cancelled, is ending
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert made["fast"].closed  # the winner's stream, which nobody will read
    for _ in range(100):
        if made["slow"].closed:
            break
        await asyncio.sleep(0.01)
    assert made["slow"].closed


async def test_async_sdk_stream_awaited_then_iterated(tracker: InMemoryCooldownTracker) -> None:
    made: dict[str, AsyncSDKStream] = {}

    @routed(providers=["a", "b"], cooldown=tracker, stream=True)
    async def chat(provider: str, prompt: str) -> AsyncSDKStream:
        if provider == "a":
            raise Down("429 before the stream")
        made[provider] = AsyncSDKStream([prompt, "!"])
        return made[provider]

    assert [item async for item in chat("hi")] == ["hi", "!"]
    assert made["b"].closed
    result = await execute_async(
        ["a", "b"], lambda p: chat.__wrapped__(p, "x"), stream=True, cooldown=tracker
    )
    assert result.provider == "b"


async def test_async_stream_true_refuses_a_sync_result() -> None:
    @routed(providers=["a"], stream=True)
    async def chat(provider: str) -> list[str]:
        return ["a"]

    with pytest.raises(InvalidConfigError, match="expected an async iterable"):
        await chat().__anext__()


async def test_many_tasks_stream_at_once() -> None:
    tracker = InMemoryCooldownTracker(failure_threshold=10**9)
    failures = 0

    @routed(providers=["a", "b"], cooldown=tracker)
    async def chat(provider: str, n: int) -> AsyncIterator[int]:
        nonlocal failures
        if provider == "a":
            failures += 1
            raise Down("a")
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def consume(n: int) -> list[int]:
        return [i async for i in chat(n)]

    results = await asyncio.gather(*(consume(n % 7) for n in range(300)))
    assert results == [list(range(n % 7)) for n in range(300)]
    assert failures == 300


# -- the rules, over many scripts -----------------------------------------------------------

Script = tuple[int, bool]  # items before the end, and whether it ends by raising


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=5))
def test_the_consumer_gets_the_first_stream_that_yields(scripts: list[Script]) -> None:
    """The first provider to yield (or end empty) owns the stream; those before it fell over.

    Each provider failing before its first item is recorded and passed over; the owner's
    stream reaches the consumer whole and ends as it ends; nobody after it is called.
    """
    names = [f"p{i}" for i in range(len(scripts))]
    tracker = InMemoryCooldownTracker(failure_threshold=1)
    opened: list[str] = []

    @routed(providers=names, cooldown=tracker)
    def chat(provider: str) -> Iterator[str]:
        opened.append(provider)
        items, raises = scripts[names.index(provider)]
        for n in range(items):
            yield f"{provider}:{n}"
        if raises:
            raise Down(provider)

    owner = next((i for i, (items, raises) in enumerate(scripts) if items or not raises), None)
    received: list[str] = []
    if owner is None:
        with pytest.raises(AllProvidersFailedError):
            drain(chat(), received)
        assert opened == names
    else:
        items, raises = scripts[owner]
        if raises:
            with pytest.raises(Down) as caught:
                drain(chat(), received)
            assert f"{MID_STREAM} {names[owner]!r}" in caught.value.__notes__
        else:
            drain(chat(), received)
        assert received == [f"{names[owner]}:{n}" for n in range(items)]
        assert opened == names[: owner + 1]  # nobody after the owner
        assert tracker.is_available(names[owner]) is not raises
    for name in opened if owner is None else opened[:-1]:
        assert not tracker.is_available(name)  # failed before a first item: recorded


def test_a_provider_cutting_every_stream_reaches_its_threshold(clock: FakeClock) -> None:
    """A stream's success counts when it ends well: first items alone clear nothing."""
    tracker = InMemoryCooldownTracker(failure_threshold=3, cooldown=30, clock=clock)
    s = Streams({"a": ["a1", "a2", Down("cut")], "b": ["b1"]})

    @routed(providers=["a", "b"], cooldown=tracker)
    def chat(provider: str) -> Iterator[str]:
        s.script["a"] = ["a1", "a2", Down("cut")]  # a fresh cut for every stream
        yield from s.gen(provider)

    for _ in range(3):
        with pytest.raises(Down):
            list(chat())
    assert not tracker.is_available("a")  # three cuts in a row: cooling
    assert list(chat()) == ["b1"]


def test_a_stream_that_ends_well_clears_its_providers_failures(clock: FakeClock) -> None:
    tracker = InMemoryCooldownTracker(failure_threshold=3, cooldown=30, clock=clock)
    tracker.record_failure("a", Down())
    s = Streams({"a": ["a1", "a2"]})

    @routed(providers=["a"], cooldown=tracker)
    def chat(provider: str) -> Iterator[str]:
        yield from s.gen(provider)

    stream = chat()
    assert next(stream) == "a1"
    assert [st.failures for st in tracker.states()] == [1]  # not yet: the stream goes on
    assert list(stream) == ["a2"]
    assert tracker.states() == []  # it ended well: the failure is cleared


# -- a RouteResult's stream closed unread -------------------------------------------------


def test_a_result_stream_closed_unread_closes_the_provider_stream(
    tracker: InMemoryCooldownTracker,
) -> None:
    made: list[SDKStream] = []
    rec = EventRecorder()

    @routed(providers=["a", "b"], cooldown=tracker, stream=True, listeners=[rec])
    def chat(provider: str) -> SDKStream:
        made.append(SDKStream([provider, "!"]))
        return made[-1]

    result = chat.execute()
    result.response.close()
    assert made[0].closed
    assert rec.last("stream_ended").outcome == "closed"
    assert rec.last("call_finished").outcome == "success"


async def test_async_result_stream_closed_unread_closes_the_provider_stream(
    tracker: InMemoryCooldownTracker,
) -> None:
    made: list[AsyncSDKStream] = []
    rec = EventRecorder()

    @routed(providers=["a", "b"], cooldown=tracker, stream=True, listeners=[rec])
    async def chat(provider: str) -> AsyncSDKStream:
        made.append(AsyncSDKStream([provider, "!"]))
        return made[-1]

    result = await chat.execute()
    await result.response.aclose()
    assert made[0].closed
    assert rec.last("stream_ended").outcome == "closed"


# -- load-aware strategies: a provider streaming an answer is busy until the stream ends ------


def test_least_busy_counts_a_stream_in_flight_until_it_ends() -> None:
    """The provider of an open stream is busy: the next call goes to the least busy other."""
    strategy = LeastBusy()
    s = Streams({"a": ["a1", "a2"], "b": ["b1", "b2"], "t": ["t1"]})
    chat = routed(providers=["a", "b", "t"], strategy=strategy, cooldown=None)(s.gen)
    first = chat()
    assert next(first) == "a1"
    assert strategy.in_flight("a") == 1
    second = chat()
    assert next(second) == "b1"  # a is busy streaming
    assert list(first) == ["a2"]  # ran out: a is free again
    assert (strategy.in_flight("a"), strategy.in_flight("b")) == (0, 1)
    second.close()  # closed early: b is free again
    assert strategy.in_flight("b") == 0
    third = chat()
    assert next(third) == "a1"
    third.close()


class Hooks:
    """A strategy in list order that records every attempt hook it hears."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, ...]] = []

    def order(self, providers: Any) -> range:
        return range(len(providers))

    def on_attempt_start(self, name: str) -> None:
        self.heard.append(("start", name))

    def on_attempt_end(self, name: str, seconds: float, ok: bool) -> None:
        self.heard.append(("end", name, "ok" if ok else "failed"))


ANSWERED = [("start", "a"), ("end", "a", "ok")]


@pytest.mark.parametrize(
    ("end", "heard"),
    [
        ("runs out", ANSWERED),
        ("fails mid-stream", ANSWERED),
        ("closed early", ANSWERED),
        ("dropped unread", ANSWERED),
        (
            "routing fails",
            [("start", "a"), ("end", "a", "failed"), ("start", "t"), ("end", "t", "failed")],
        ),
        ("a slow first item cannot be recorded", ANSWERED),
    ],
)
def test_a_streams_attempt_ends_once_however_the_stream_ends(
    end: str, heard: list[tuple[str, ...]], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each attempt a strategy hears start ends once: the winner's when its stream ends."""
    monkeypatch.setattr(route_module, "default_clock", clock)
    hooks, busy = Hooks(), LeastBusy()
    s = Streams({"a": ["a1", "a2"], "t": [Down("t")]})

    def chat(provider: str) -> Iterator[str]:
        clock.advance(2.0)  # slower than slow_call: recorded as a failure, then delivered
        yield from s.gen(provider)

    for strategy in (hooks, busy):
        tracker = Broken() if end.startswith("a slow") else None
        slow = 1.0 if tracker is not None else None
        stream = routed(providers=["a", "t"], strategy=strategy, cooldown=tracker, slow_call=slow)(
            chat
        )()
        if end == "runs out":
            assert list(stream) == ["a1", "a2"]
        elif end == "fails mid-stream":
            s.script["a"] = ["a1", Down("cut")]
            with pytest.raises(Down):
                list(stream)
        elif end == "closed early":
            assert next(stream) == "a1"
            stream.close()
        elif end == "dropped unread":
            assert next(stream) == "a1"
            del stream
            gc.collect()
        elif end == "routing fails":
            s.script["a"] = [Down("a")]
            with pytest.raises(AllProvidersFailedError):
                next(stream)
        else:
            with pytest.raises(RuntimeError, match="tracker down"):
                next(stream)
        s.script["a"] = ["a1", "a2"]
    assert hooks.heard == heard
    assert (busy.in_flight("a"), busy.in_flight("t")) == (0, 0)


def test_least_busy_frees_the_provider_of_an_async_stream_cancelled_mid_stream() -> None:
    """An async consumer cancelled while waiting for an item: its provider is free again."""
    strategy = LeastBusy()
    s = Streams({"a": ["a1", 10.0, "a2"], "t": ["t1"]})
    chat = routed(providers=["a", "t"], strategy=strategy, cooldown=None)(s.agen)

    async def scenario() -> tuple[int, int]:
        stream = chat()
        assert await stream.__anext__() == "a1"
        busy = strategy.in_flight("a")
        waiting = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await stream.aclose()
        return busy, strategy.in_flight("a")

    assert asyncio.run(scenario()) == (1, 0)
    assert s.closed == ["a"]


def test_least_latency_learns_a_streams_time_to_first_item(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a stream teaches least_latency is its time to first item, not its length."""
    monkeypatch.setattr(route_module, "default_clock", clock)
    strategy = LeastLatency(alpha=1.0)

    @routed(providers=["a", "t"], strategy=strategy, cooldown=None)
    def chat(provider: str) -> Iterator[str]:
        clock.advance(0.25)  # to the first item
        yield "first"
        clock.advance(30.0)  # a long answer
        yield "last"

    stream = chat()
    assert next(stream) == "first"
    assert strategy.latency("a") is None  # learned when the stream ends
    assert list(stream) == ["last"]
    assert strategy.latency("a") == pytest.approx(0.25)
