"""A routed call's failures are freed once it has ended and nothing holds its result or error.

On CPython a failure's traceback keeps the frames it passed, and each frame that ended keeps
its caller's (``f_back``) with their locals: a frame left holding what leads back to the
failure (the call's decision, a result, an ``asyncio.Timeout`` and so its task) makes a cycle
for the garbage collector, and the failures (with whatever request data they hold) live until
it runs. Each test runs with the collector off and checks the failures are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from resilient_routing import (
    AllProvidersFailedError,
    RoutingTimeoutError,
    execute,
    execute_async,
    routed,
)
from resilient_routing.strategies import Hedged
from resilient_routing.testing import Fault, FaultInjector, ScriptedProvider

from .harness import Kept, assert_freed


class Down(Exception):
    """A provider's failure."""


class Bad(Exception):
    """A failure outside fallback_on: it propagates."""


class Response:
    """A winner's response."""


def test_execute_frees_the_failures_of_a_call_that_fell_over() -> None:
    refs = Kept()

    def fail(provider: str) -> str:
        if provider == "a":
            raise refs(Down(provider))  # no local: the provider's frame must not hold it
        return provider

    assert_freed(lambda: execute(["a", "b"], fail, cooldown=None), refs)  # the result dropped


@pytest.mark.parametrize("form", ["routed", "routed .execute()", "execute_async()"])
@pytest.mark.parametrize("budget", [{"timeout": 5.0}, {"attempt_timeout": 5.0}], ids=str)
def test_a_failure_under_a_time_budget_is_freed(form: str, budget: dict[str, float]) -> None:
    refs = Kept()

    async def provider(name: str) -> str:
        if name == "a":
            raise refs(Down(name))  # no local: the provider's frame must not hold it
        return name

    options: dict[str, Any] = {"cooldown": None, **budget}
    routed_fn = routed(providers=["a", "b"], **options)(provider)

    async def main() -> None:
        if form == "routed":
            await routed_fn()
        elif form == "routed .execute()":
            await routed_fn.execute()
        else:
            await execute_async(["a", "b"], provider, **options)

    assert_freed(lambda: asyncio.run(main()), refs)


def test_an_attempt_cut_by_attempt_timeout_is_freed() -> None:
    refs = Kept()

    async def provider(name: str) -> str:
        if name == "a":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError as cancelled:  # what the cut attempt leaves behind
                refs(cancelled)
                raise
        return name

    slow_then_ok = routed(providers=["a", "b"], cooldown=None, attempt_timeout=0.01)(provider)
    assert_freed(lambda: asyncio.run(slow_then_ok()), refs)


@pytest.mark.parametrize("budget", [{"timeout": 5.0}, {"first_item_timeout": 5.0}], ids=str)
def test_a_streams_failure_before_its_first_item_under_a_budget_is_freed(
    budget: dict[str, float],
) -> None:
    refs = Kept()

    async def provider(name: str) -> Any:
        if name == "a":
            raise refs(Down(name))  # no local: the provider's frame must not hold it
        yield name

    stream = routed(providers=["a", "b"], cooldown=None, **budget)(provider)

    async def main() -> None:
        [item async for item in stream()]

    assert_freed(lambda: asyncio.run(main()), refs)


@pytest.mark.parametrize("outcome", ["answered", "exhausted"])
@pytest.mark.parametrize("budget", [{"timeout": 5.0}, {"attempt_timeout": 5.0}], ids=str)
def test_a_hedged_failure_under_a_time_budget_is_freed(
    budget: dict[str, float], outcome: str
) -> None:
    refs = Kept()

    async def provider(name: str) -> str:
        if name == "a" or outcome == "exhausted":
            raise refs(Down(name))  # no local
        return name

    fn = routed(providers=["a", "b"], cooldown=None, strategy=Hedged(delay=1.0), **budget)(provider)

    async def main() -> None:
        with contextlib.suppress(AllProvidersFailedError):
            await fn()

    assert_freed(lambda: asyncio.run(main()), refs)


def test_a_cancelled_loser_under_a_time_budget_is_freed() -> None:
    refs = Kept()

    async def provider(name: str) -> str:
        if name == "a":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError as cancelled:  # the loser, cancelled by the hedge
                refs(cancelled)
                raise
        return name

    fn = routed(providers=["a", "b"], cooldown=None, strategy=Hedged(delay=0.01), timeout=5.0)(
        provider
    )
    assert_freed(lambda: asyncio.run(fn()), refs)


def test_a_hedged_attempt_cut_by_attempt_timeout_is_freed() -> None:
    """The cut attempt's asyncio TimeoutError keeps Timeout.__aexit__'s frame, and its Timeout."""
    refs = Kept()

    async def provider(name: str) -> str:
        if name == "a":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError as cancelled:  # cut by attempt_timeout
                refs(cancelled)
                raise
        return name

    fn = routed(
        providers=["a", "b"], cooldown=None, strategy=Hedged(delay=5.0), attempt_timeout=0.01
    )(provider)
    assert_freed(lambda: asyncio.run(fn()), refs)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_propagated_hedged_failure_is_freed(mode: str) -> None:
    refs = Kept()

    def fail(name: str) -> str:
        raise refs(Bad(name))  # no local

    options = {
        "providers": ["a", "b"],
        "cooldown": None,
        "fallback_on": TimeoutError,
        "strategy": Hedged(delay=5.0),
    }
    if mode == "sync":
        sync_fn = routed(**options)(fail)

        def call() -> None:
            with contextlib.suppress(Bad):
                sync_fn()

    else:

        @routed(**options)
        async def async_fn(name: str) -> str:
            return fail(name)

        async def main() -> None:
            with contextlib.suppress(Bad):
                await async_fn()

        def call() -> None:
            asyncio.run(main())

    assert_freed(call, refs)


def test_a_sync_hedged_timeout_with_attempts_running_frees_its_failures() -> None:
    refs = Kept()
    release = threading.Event()

    def provider(name: str) -> str:
        if name == "a":
            raise refs(Down(name))  # no local
        release.wait(5)  # still running when the call times out
        return name

    fn = routed(providers=["a", "b"], cooldown=None, timeout=0.05, strategy=Hedged(delay=5.0))(
        provider
    )

    def call() -> None:
        with contextlib.suppress(RoutingTimeoutError):
            fn()
        release.set()  # the loser ends (and its callback runs)

    try:
        assert_freed(call, refs)
    finally:
        release.set()


def test_a_hanging_loser_does_not_keep_the_calls_failures_nor_its_response() -> None:
    refs = Kept()
    hang = threading.Event()
    answered = threading.Event()

    def provider(name: str) -> object:
        if name == "a":
            raise refs(Down(name))  # no local
        if name == "b":
            answered.wait(5)  # answers once c runs
            return refs(Response())
        answered.set()
        hang.wait(5)  # c: the loser, still running after the call returned
        return name

    fn = routed(providers=["a", "b", "c"], cooldown=None, strategy=Hedged(delay=0.0, max_hedges=2))(
        provider
    )
    healthy = routed(providers=["z"], cooldown=None)(lambda provider: provider)
    gc.collect()
    gc.disable()
    try:
        fn()  # the response dropped at once
        healthy()
        alive = [ref() for ref in refs]
        hang.set()
        assert len(refs) == 2 and alive == [None, None]
    finally:
        hang.set()
        gc.enable()


def test_a_mid_stream_failure_under_idle_timeout_is_freed() -> None:
    refs = Kept()

    async def provider(name: str) -> AsyncIterator[str]:
        yield name
        raise refs(Down(name))  # no local

    stream = routed(providers=["a", "b"], cooldown=None, idle_timeout=5.0)(provider)

    async def consume() -> None:
        with contextlib.suppress(Down):
            [item async for item in stream()]

    assert_freed(lambda: asyncio.run(consume()), refs)


@pytest.mark.parametrize("kind", ["sync", "async", "async stream"])
def test_an_injected_failure_is_freed(kind: str) -> None:
    refs = Kept()

    def made() -> Down:
        error = Down("injected")
        refs(error)
        return error

    chaos = FaultInjector({"a": Fault(failure_rate=1.0, error=made)})
    if kind == "sync":

        @chaos
        def sync_fn(provider: str) -> str:
            return provider

        def call() -> None:
            with contextlib.suppress(Down):
                sync_fn("a")

    elif kind == "async":

        @chaos
        async def async_fn(provider: str) -> str:
            return provider

        async def main() -> None:
            with contextlib.suppress(Down):  # inside the loop: asyncio.run's own frame keeps
                await async_fn("a")  # the task (and its exception) of a coroutine that raised

        def call() -> None:
            asyncio.run(main())

    else:

        @chaos
        async def stream_fn(provider: str) -> AsyncIterator[str]:
            yield provider

        async def consume() -> None:
            with contextlib.suppress(Down):
                [item async for item in stream_fn("a")]

        def call() -> None:
            asyncio.run(consume())

    assert_freed(call, refs)


def test_a_scripted_exception_does_not_accumulate_tracebacks() -> None:
    error = Down("scripted")
    flaky = ScriptedProvider("flaky", error)

    @routed(providers=[flaky, "steady"], cooldown=None)
    def ask(provider: object) -> object:
        return provider() if callable(provider) else provider

    def depth() -> int:
        n, tb = 0, error.__traceback__
        while tb is not None:
            n, tb = n + 1, tb.tb_next
        return n

    ask()
    first = depth()
    for _ in range(5):
        ask()
    assert depth() == first
