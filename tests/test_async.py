"""What is particular to async routing: cancellation and async trackers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilient_routing import (
    InMemoryCooldownTracker,
    InvalidConfigError,
    configure,
    execute,
    execute_async,
    routed,
)
from resilient_routing.testing import FakeClock


class Down(Exception):
    pass


class RecordingAsyncTracker:
    """An AsyncCooldownTracker over an in-memory one, logging each awaited call."""

    def __init__(self, clock: FakeClock) -> None:
        self.inner = InMemoryCooldownTracker(failure_threshold=1, cooldown=30, clock=clock)
        self.log: list[tuple[str, str]] = []

    async def is_available(self, name: str) -> bool:
        self.log.append(("is_available", name))
        return self.inner.is_available(name)

    async def cooldown_remaining(self, name: str) -> float:
        return self.inner.cooldown_remaining(name)

    async def record_failure(self, name: str, exc: BaseException) -> bool:
        self.log.append(("record_failure", name))
        return self.inner.record_failure(name, exc)

    async def record_success(self, name: str) -> None:
        self.log.append(("record_success", name))
        self.inner.record_success(name)

    async def reset(self, name: str | None = None) -> None:
        self.inner.reset(name)


class BlockingTracker(InMemoryCooldownTracker):
    """Stands for a tracker doing network I/O in sync methods (RedisCooldownTracker)."""

    blocking_io = True


async def test_cancellation_mid_fallback_stops_routing(
    fresh_config: InMemoryCooldownTracker,
) -> None:
    """Cancelling during the second attempt propagates at once: nothing recorded, no third call."""
    calls: list[str] = []
    entered = asyncio.Event()

    @routed(providers=["a", "b", "c"])
    async def call(provider: str) -> str:
        calls.append(provider)
        if provider == "a":
            raise Down()
        entered.set()
        await asyncio.sleep(3600)
        return provider

    task = asyncio.create_task(call())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == ["a", "b"]
    assert fresh_config.is_available("b")
    fresh_config.record_failure("b", Down())
    fresh_config.record_failure("b", Down())
    assert fresh_config.is_available("b"), "the cancelled attempt was not counted as a failure"


async def test_provider_raising_cancelled_error_propagates(
    fresh_config: InMemoryCooldownTracker,
) -> None:
    """A CancelledError from inside a provider is not a provider failure."""
    calls: list[str] = []

    @routed(providers=["a", "b"])
    async def call(provider: str) -> str:
        calls.append(provider)
        raise asyncio.CancelledError()

    with pytest.raises(asyncio.CancelledError):
        await call()
    assert calls == ["a"]


async def test_timeout_around_routed_call_cancels_cleanly() -> None:
    """asyncio.timeout around a routed call ends it with TimeoutError, no provider left running."""
    running: list[str] = []

    @routed(providers=["a", "b"])
    async def call(provider: str) -> str:
        running.append(provider)
        try:
            await asyncio.sleep(3600)
        finally:
            running.remove(provider)
        return provider

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await call()
    assert running == []


async def test_async_tracker_is_awaited(clock: FakeClock) -> None:
    """An async routed function awaits an AsyncCooldownTracker for every decision."""
    tracker = RecordingAsyncTracker(clock)

    @routed(providers=["a", "b"], cooldown=tracker)
    async def call(provider: str) -> str:
        if provider == "a":
            raise Down()
        return provider

    assert await call() == "b"
    assert tracker.log == [
        ("is_available", "a"),
        ("record_failure", "a"),
        ("is_available", "b"),
        ("record_success", "b"),
    ]
    result = await call.execute()
    assert result.skipped == ("a",) and result.provider == "b"


async def test_execute_async_with_async_tracker(clock: FakeClock) -> None:
    """The functional async form takes an async tracker too."""

    async def fn(provider: str) -> str:
        return provider.upper()

    result = await execute_async(["x"], fn, cooldown=RecordingAsyncTracker(clock))
    assert result.response == "X"


def test_sync_function_refuses_async_tracker(clock: FakeClock) -> None:
    """A sync routed function given an async tracker is refused at decoration."""
    with pytest.raises(InvalidConfigError, match="async tracker"):

        @routed(providers=["a"], cooldown=RecordingAsyncTracker(clock))
        def call(provider: str) -> str:
            return provider

    with pytest.raises(InvalidConfigError, match="async tracker"):
        execute(["a"], lambda p: p, cooldown=RecordingAsyncTracker(clock))


def test_sync_function_refuses_async_global_tracker(clock: FakeClock) -> None:
    """A global async tracker is refused by sync routed functions when they are called."""

    @routed(providers=["a"])
    def call(provider: str) -> str:
        return provider

    configure(cooldown=RecordingAsyncTracker(clock))
    with pytest.raises(InvalidConfigError, match="sync"):
        call()


def test_async_function_refuses_blocking_tracker() -> None:
    """A sync tracker doing I/O would stall the loop: refused, naming the async tracker to use."""
    with pytest.raises(InvalidConfigError, match="AsyncRedisCooldownTracker"):

        @routed(providers=["a"], cooldown=BlockingTracker())
        async def call(provider: str) -> str:
            return provider


async def test_async_function_refuses_blocking_global_tracker() -> None:
    """The same check applies to the global tracker, at call time."""

    @routed(providers=["a"])
    async def call(provider: str) -> str:
        return provider

    configure(cooldown=BlockingTracker())
    with pytest.raises(InvalidConfigError, match="AsyncRedisCooldownTracker"):
        await call()


async def test_blocking_global_tracker_is_judged_at_call_time_not_decoration() -> None:
    """Decorating while the global tracker blocks is fine: the call uses the one then in force."""
    configure(cooldown=BlockingTracker())

    @routed(providers=["a"])
    async def call(provider: str) -> str:
        return provider

    with pytest.raises(InvalidConfigError, match="AsyncRedisCooldownTracker"):
        await call()
    configure(cooldown=InMemoryCooldownTracker())
    assert await call() == "a"


async def test_concurrent_tasks_share_the_tracker(clock: FakeClock) -> None:
    """Failures recorded by many concurrent tasks add up to the cooldown all of them see."""
    tracker = InMemoryCooldownTracker(failure_threshold=50, cooldown=30, clock=clock)
    calls: list[str] = []

    @routed(providers=["a", "b"], cooldown=tracker)
    async def call(provider: str) -> str:
        calls.append(provider)
        await asyncio.sleep(0)
        if provider == "a":
            raise Down()
        return provider

    results = await asyncio.gather(*(call() for _ in range(200)))
    assert results == ["b"] * 200
    assert not tracker.is_available("a")
    assert (await call.execute()).skipped == ("a",)


async def test_cancellation_turned_into_an_exception_still_stops_routing(
    fresh_config: InMemoryCooldownTracker,
) -> None:
    """A provider turning CancelledError into another error neither falls over nor counts.

    Some client wrappers do that; the call is cancelled all the same.
    """
    calls: list[str] = []
    entered = asyncio.Event()

    @routed(providers=["a", "b"])
    async def call(provider: str) -> str:
        calls.append(provider)
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ConnectionError("connection closed") from None
        return provider

    task = asyncio.create_task(call())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == ["a"]
    assert fresh_config.states() == []


def test_execute_refuses_a_coroutine_function() -> None:
    """execute() is for sync functions; it names execute_async for async ones."""

    async def fn(provider: str) -> str:
        return provider

    with pytest.raises(InvalidConfigError, match="await execute_async"):
        execute(["a"], fn)  # type: ignore[arg-type]


async def test_execute_async_needs_awaitables(fresh_config: InMemoryCooldownTracker) -> None:
    """A sync function given to execute_async is a configuration error, not a failure.

    It propagates and nothing is recorded; a lambda returning a coroutine is fine.
    """
    with pytest.raises(InvalidConfigError, match="use execute\\(\\) for a sync function"):
        await execute_async(["a", "b"], lambda p: p)  # type: ignore[arg-type,return-value]
    assert fresh_config.states() == []

    async def fetch(provider: str) -> str:
        return provider.upper()

    assert (await execute_async(["a"], lambda p: fetch(p))).response == "A"


async def test_a_provider_using_a_task_group_falls_over_on_its_failure() -> None:
    """A child's plain failure in a provider's TaskGroup falls over: no cancellation.

    (Python 3.11's TaskGroup leaves its task's cancellation count raised after it.)
    """
    calls: list[str] = []

    @routed(providers=["a", "b"], cooldown=None, timeout=5)
    async def call(provider: str) -> str:
        calls.append(provider)
        if provider == "a":
            async with asyncio.TaskGroup() as group:
                group.create_task(_fails())
        return provider

    assert await call() == "b" and calls == ["a", "b"]


async def _fails() -> None:
    raise ConnectionError("a child request failed")


async def _called_in_cancellation_cleanup(call: Any) -> Any:
    """What ``call()`` returns in ``except CancelledError: await call(); raise`` of a task."""
    answers: list[Any] = []

    async def worker() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            answers.append(await call())
            raise

    task = asyncio.create_task(worker())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return answers[0]


@pytest.mark.parametrize("options", [{}, {"timeout": 5}, {"strategy": "hedged"}])
async def test_a_routed_call_in_cancellation_cleanup_still_falls_over(
    options: dict[str, Any],
) -> None:
    """A routed call in ``except CancelledError: await release(); raise`` falls over.

    It is not the cancelled one: a provider's plain failure there is a failure.
    """
    calls: list[str] = []

    @routed(providers=["a", "b"], cooldown=None, **options)
    async def release(provider: str) -> str:
        calls.append(provider)
        if provider == "a":
            raise ConnectionError("a is down")
        return provider

    assert await _called_in_cancellation_cleanup(release) == "b" and calls[:2] == ["a", "b"]


class ClientError(Exception):
    """What a client wrapper raises in place of the cancellation it caught."""


async def _client_read() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise ClientError("connection closed") from None


async def _fanned_out() -> None:
    async with asyncio.TaskGroup() as group:  # a child turns the cancellation into an error
        group.create_task(_client_read())


@pytest.mark.parametrize("provider_a", [_client_read, _fanned_out], ids=["wrapper", "task group"])
@pytest.mark.parametrize("options", [{}, {"timeout": 5}], ids=["plain", "timeout"])
def test_a_cancellation_a_client_turned_into_an_error_still_cancels(
    provider_a: Any, options: dict[str, Any]
) -> None:
    """Raised in its place, directly or in a TaskGroup's group: the call is cancelled."""
    calls: list[str] = []

    @routed(providers=["a", "b"], cooldown=None, **options)
    async def call(provider: str) -> str:
        calls.append(provider)
        if provider == "a":
            await provider_a()
        return provider

    async def main() -> None:
        task = asyncio.create_task(call())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert calls == ["a"]


async def test_an_attempt_timeout_in_cancellation_cleanup_falls_over() -> None:
    """The attempt's own timeout is no cancellation, in a cleanup after one or not."""

    @routed(providers=["a", "b"], cooldown=None, attempt_timeout=0.05)
    async def release(provider: str) -> str:
        if provider == "a":
            await asyncio.sleep(30)
        return provider

    assert await _called_in_cancellation_cleanup(release) == "b"
