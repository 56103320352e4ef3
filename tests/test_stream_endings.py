"""How a routed stream ends when its consumer, stream object or tracker misbehaves.

What was opened is closed, the consumer's doings are not the provider's failures, and the
call's last events always come.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from resilient_routing import InMemoryCooldownTracker, InvalidConfigError, last_route, routed
from resilient_routing.strategies import Hedged
from resilient_routing.testing import EventRecorder

from .harness import Kept, assert_freed
from .test_streams import AsyncSDKStream, Down, SDKStream


class ConsumerAbort(Exception):
    """What a consumer throws into a stream it reads."""


@pytest.fixture
def tracker() -> InMemoryCooldownTracker:
    return InMemoryCooldownTracker(failure_threshold=1, cooldown=60)


def test_a_stream_object_that_cannot_be_read_is_closed() -> None:
    """Refused (an async def returning a sync stream) or failing in __aiter__: closed."""
    made: list[AsyncSDKStream | SDKStream] = []

    class Eager(AsyncSDKStream):
        def __aiter__(self) -> AsyncIterator[Any]:
            raise ConnectionError("connecting failed in __aiter__")

    @routed(providers=["a"], stream=True, cooldown=None)
    async def refused(provider: str) -> Any:
        made.append(SDKStream(["x"]))
        return made[-1]

    @routed(providers=["a", "b"], stream=True, cooldown=None)
    async def eager(provider: str) -> Any:
        made.append(Eager([1]) if provider == "a" else AsyncSDKStream([2]))
        return made[-1]

    async def main() -> list[Any]:
        with pytest.raises(InvalidConfigError):
            await refused().__anext__()
        return [item async for item in eager()]

    assert asyncio.run(main()) == [2]
    assert [stream.closed for stream in made] == [True, True, True]

    class Failing(SDKStream):
        def __iter__(self) -> Iterator[Any]:
            raise ConnectionError("connecting failed in __iter__")

    opened: list[SDKStream] = []

    @routed(providers=["a", "b"], stream=True, cooldown=None)
    def sync(provider: str) -> Any:
        opened.append(Failing([1]) if provider == "a" else SDKStream([2]))
        return opened[-1]

    assert list(sync()) == [2]
    assert [stream.closed for stream in opened] == [True, True]


@pytest.mark.parametrize("listeners", [0, 1], ids=["no listener", "a listener"])
def test_stopping_early_is_no_failure_even_when_the_provider_fails_to_close(
    listeners: int, tracker: InMemoryCooldownTracker
) -> None:
    """The consumer's close() after a few items: no failure recorded, whoever listens."""

    @routed(providers=["a", "b"], cooldown=tracker, listeners=[EventRecorder()] * listeners)
    def chat(provider: str) -> Iterator[int]:
        try:
            yield 1
            yield 2
            yield 3
        finally:
            raise Down("closing the connection failed")

    stream = chat()
    assert [next(stream), next(stream)] == [1, 2]
    stream.close()
    assert tracker.is_available("a")


def test_what_the_consumer_throws_in_is_not_the_providers_failure(
    tracker: InMemoryCooldownTracker,
) -> None:
    """throw() / athrow(): the call ends with the consumer's exception, nothing recorded."""
    rec = EventRecorder()

    @routed(providers=["a", "b"], cooldown=tracker, listeners=[rec])
    def chat(provider: str) -> Iterator[int]:
        yield 1
        yield 2

    @routed(providers=["a", "b"], cooldown=tracker)
    async def achat(provider: str) -> AsyncIterator[int]:
        yield 1
        yield 2

    stream = chat()
    assert next(stream) == 1
    with pytest.raises(ConsumerAbort) as info:
        stream.throw(ConsumerAbort("the consumer's own"))
    assert not getattr(info.value, "__notes__", None)
    assert rec.last("call_finished").outcome == "propagated"  # type: ignore[union-attr]

    async def main() -> None:
        astream = achat()
        assert await astream.__anext__() == 1
        with pytest.raises(ConsumerAbort):
            await astream.athrow(ConsumerAbort("the consumer's own"))

    asyncio.run(main())
    assert tracker.is_available("a")


def test_a_consumer_cancelled_in_its_loop_body_records_nothing() -> None:
    """Its task cancelled while it handles an item: the stream closes, no success recorded."""
    rec = EventRecorder()
    successes: list[str] = []

    class Tracker(InMemoryCooldownTracker):
        def record_success(self, name: str) -> None:
            successes.append(name)
            super().record_success(name)

    @routed(providers=["a", "b"], cooldown=Tracker(), listeners=[rec])
    async def chat(provider: str) -> AsyncIterator[int]:
        for i in range(100):
            await asyncio.sleep(0)
            yield i

    handling = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(chat()) as stream:
            async for _ in stream:
                handling.set()
                await asyncio.sleep(10)  # passing the chunk on to a slow client

    async def main() -> None:
        task = asyncio.create_task(consume())
        await handling.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert rec.last("call_finished").outcome == "cancelled"  # type: ignore[union-attr]
    assert successes == []


class SlowSuccess:
    """An async tracker whose record_success takes a while (Redis over a slow link)."""

    def __init__(self) -> None:
        self.inner = InMemoryCooldownTracker(failure_threshold=1)

    async def is_available(self, name: str) -> bool:
        return self.inner.is_available(name)

    async def cooldown_remaining(self, name: str) -> float:
        return self.inner.cooldown_remaining(name)

    async def record_failure(self, name: str, exc: BaseException) -> bool:
        return self.inner.record_failure(name, exc)

    async def record_success(self, name: str) -> None:
        await asyncio.sleep(10)

    async def reset(self, name: str | None = None) -> None:
        self.inner.reset(name)


class BrokenSuccess(InMemoryCooldownTracker):
    def record_success(self, name: str) -> None:
        raise RuntimeError("the tracker's backend is down")


def test_the_calls_last_events_come_when_its_closing_tracker_step_fails() -> None:
    """The success recorded at a stream's end raises, or is cancelled: CallFinished still."""
    rec, arec = EventRecorder(), EventRecorder()

    @routed(providers=["a", "b"], cooldown=BrokenSuccess(failure_threshold=1), listeners=[rec])
    def chat(provider: str) -> Iterator[int]:
        yield 1

    with pytest.raises(RuntimeError, match="backend is down"):
        list(chat())
    assert rec.last("call_finished").outcome == "propagated"  # type: ignore[union-attr]

    @routed(providers=["a", "b"], cooldown=SlowSuccess(), listeners=[arec])
    async def achat(provider: str) -> AsyncIterator[int]:
        yield 1

    async def main() -> None:
        read = asyncio.Event()

        async def consume() -> None:
            async for _ in achat():
                read.set()

        task = asyncio.create_task(consume())
        await read.wait()
        await asyncio.sleep(0.01)  # the stream ran out: its success is being recorded
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert arec.last("call_finished").outcome == "cancelled"  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_a_hedged_call_cancelled_as_its_losers_settle_leaves_last_route_as_it_was(
    stream: bool,
) -> None:
    """It raises (the caller's deadline, during the losers' cleanup): it is not the last route."""

    async def slow_cleanup() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # closing its connection takes a while
            raise

    @routed(strategy=Hedged(delay=0.01), providers=["slow", "fast"], cooldown=None)
    async def call(provider: str) -> str:
        if provider == "slow":
            await slow_cleanup()
        return provider

    @routed(strategy=Hedged(delay=0.01), providers=["slow", "fast"], cooldown=None)
    async def chat(provider: str) -> AsyncIterator[str]:
        if provider == "slow":
            await slow_cleanup()
        yield provider

    async def main() -> object:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await (chat().__anext__() if stream else call())
        return last_route()

    assert asyncio.run(main()) is None


def test_a_hedged_call_cancelled_as_its_losers_settle_keeps_other_tasks_calls() -> None:
    """What it puts back is only its own place: another task's call that returned stays."""
    cancelled = asyncio.Event()

    @routed(strategy=Hedged(delay=0.0), providers=["slow", "fast", "t"], cooldown=None)
    async def hedged(provider: str) -> str:
        if provider == "slow":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                await asyncio.sleep(0.2)  # settles slowly
                raise
        await asyncio.sleep(0.01)
        return provider

    @routed(providers=["other"], cooldown=None)
    async def plain(provider: str) -> str:
        return provider

    async def main() -> None:
        task = asyncio.create_task(hedged())
        await cancelled.wait()  # it won; its loser settles
        assert await plain() == "other"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    route = last_route()
    assert route is not None and route.provider == "other"


def test_the_calls_last_events_come_when_it_is_cancelled_while_the_stream_closes() -> None:
    """Cancelled while the provider's stream closes: the listeners still hear the call end.

    (The consumer stopped; an SDK's HTTP response takes a while to close.)
    """
    rec = EventRecorder()
    closing = asyncio.Event()

    @routed(providers=["a", "b"], cooldown=None, listeners=[rec])
    async def chat(provider: str) -> AsyncIterator[int]:
        try:
            for i in range(100):
                yield i
                await asyncio.sleep(0)
        finally:
            closing.set()
            await asyncio.sleep(10)

    async def consume() -> None:
        async with contextlib.aclosing(chat()) as stream:
            async for _ in stream:
                break

    async def main() -> None:
        task = asyncio.create_task(consume())
        await closing.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert rec.last("call_finished").outcome == "cancelled"  # type: ignore[union-attr]


@pytest.mark.parametrize("when", ["before the first item", "mid-stream", "every provider"])
@pytest.mark.parametrize("mode", ["sync", "async", "async hedged"])
def test_a_streams_failures_leave_nothing_to_the_cycle_collector(mode: str, when: str) -> None:
    """A stream's failures are freed once it has ended and nothing holds its error.

    A failure's traceback keeps the stream's frame, locals and all, past its end: a decision
    left there (it holds the failures) would make a cycle for the garbage collector.
    """
    refs = Kept()

    failing = {"before the first item": "a", "mid-stream": "", "every provider": "ab"}[when]

    def sync_provider(provider: str) -> Iterator[str]:
        if provider in failing:
            raise refs(Down(provider))
        yield provider
        if when == "mid-stream":
            raise refs(Down(provider))

    async def async_provider(provider: str) -> AsyncIterator[str]:
        if provider in failing:
            raise refs(Down(provider))
        yield provider
        if when == "mid-stream":
            raise refs(Down(provider))

    options: dict[str, Any] = {
        "providers": ["a", "b"],
        "stream": True,
        "cooldown": InMemoryCooldownTracker(),
    }
    if mode == "async hedged":
        options["strategy"] = Hedged(delay=60.0)  # a failure starts the next attempt at once
    if mode == "sync":
        stream = routed(**options)(sync_provider)

        def call() -> None:
            with contextlib.suppress(Exception):
                list(stream())

    else:
        astream = routed(**options)(async_provider)

        async def consume() -> None:
            with contextlib.suppress(Exception):
                [item async for item in astream()]

        def call() -> None:
            asyncio.run(consume())

    assert_freed(call, refs)
