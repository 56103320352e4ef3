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
import time
import weakref
from collections.abc import AsyncIterator, Callable
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


class Down(Exception):
    """A provider's failure."""


class Bad(Exception):
    """A failure outside fallback_on: it propagates."""


class Response:
    """A winner's response."""


def _freed(call: Callable[[], object], refs: list[weakref.ref[Any]]) -> None:
    """Run ``call`` with the collector off; assert what ``refs`` point to is gone."""
    healthy = routed(providers=["z"], cooldown=None)(lambda provider: provider)
    gc.collect()
    gc.disable()
    try:
        call()
        healthy()  # replaces the thread's last_route()
        assert refs and [ref() for ref in refs] == [None] * len(refs)
    finally:
        gc.enable()


def test_execute_frees_the_failures_of_a_call_that_fell_over() -> None:
    refs: list[weakref.ref[Down]] = []

    def tracked(error: Down) -> Down:
        refs.append(weakref.ref(error))
        return error

    def fail(provider: str) -> str:
        if provider == "a":
            raise tracked(Down(provider))  # no local: the provider's frame must not hold it
        return provider

    healthy = routed(providers=["z"], cooldown=None)(lambda provider: provider)
    gc.collect()
    gc.disable()
    try:
        execute(["a", "b"], fail, cooldown=None)  # the result dropped at once
        healthy()  # replaces last_route()
        assert refs and [ref() for ref in refs] == [None] * len(refs)
    finally:
        gc.enable()


@pytest.mark.parametrize("form", ["routed", "routed .execute()", "execute_async()"])
@pytest.mark.parametrize("budget", [{"timeout": 5.0}, {"attempt_timeout": 5.0}], ids=str)
def test_a_failure_under_a_time_budget_is_freed(form: str, budget: dict[str, float]) -> None:
    refs: list[weakref.ref[BaseException]] = []

    def tracked(error: Down) -> Down:
        refs.append(weakref.ref(error))
        return error

    async def provider(name: str) -> str:
        if name == "a":
            raise tracked(Down(name))  # no local: the provider's frame must not hold it
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

    _freed(lambda: asyncio.run(main()), refs)


def test_an_attempt_cut_by_attempt_timeout_is_freed() -> None:
    refs: list[weakref.ref[BaseException]] = []

    async def provider(name: str) -> str:
        if name == "a":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError as cancelled:  # what the cut attempt leaves behind
                refs.append(weakref.ref(cancelled))
                raise
        return name

    slow_then_ok = routed(providers=["a", "b"], cooldown=None, attempt_timeout=0.01)(provider)
    _freed(lambda: asyncio.run(slow_then_ok()), refs)


@pytest.mark.parametrize("budget", [{"timeout": 5.0}, {"first_item_timeout": 5.0}], ids=str)
def test_a_streams_failure_before_its_first_item_under_a_budget_is_freed(
    budget: dict[str, float],
) -> None:
    refs: list[weakref.ref[BaseException]] = []

    def tracked(error: Down) -> Down:
        refs.append(weakref.ref(error))
        return error

    async def provider(name: str) -> Any:
        if name == "a":
            raise tracked(Down(name))  # no local: the provider's frame must not hold it
        yield name

    stream = routed(providers=["a", "b"], cooldown=None, **budget)(provider)

    async def main() -> None:
        [item async for item in stream()]

    _freed(lambda: asyncio.run(main()), refs)


@pytest.mark.parametrize("outcome", ["answered", "exhausted"])
@pytest.mark.parametrize("budget", [{"timeout": 5.0}, {"attempt_timeout": 5.0}], ids=str)
def test_a_hedged_failure_under_a_time_budget_is_freed(
    budget: dict[str, float], outcome: str
) -> None:
    refs: list[weakref.ref[BaseException]] = []

    def tracked(error: Down) -> Down:
        refs.append(weakref.ref(error))
        return error

    async def provider(name: str) -> str:
        if name == "a" or outcome == "exhausted":
            raise tracked(Down(name))  # no local
        return name

    fn = routed(providers=["a", "b"], cooldown=None, strategy=Hedged(delay=1.0), **budget)(provider)

    async def main() -> None:
        with contextlib.suppress(AllProvidersFailedError):
            await fn()

    _freed(lambda: asyncio.run(main()), refs)


def test_a_cancelled_loser_under_a_time_budget_is_freed() -> None:
    refs: list[weakref.ref[BaseException]] = []

    async def provider(name: str) -> str:
        if name == "a":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError as cancelled:  # the loser, cancelled by the hedge
                refs.append(weakref.ref(cancelled))
                raise
        return name

    fn = routed(providers=["a", "b"], cooldown=None, strategy=Hedged(delay=0.01), timeout=5.0)(
        provider
    )
    _freed(lambda: asyncio.run(fn()), refs)


def test_a_hedged_attempt_cut_by_attempt_timeout_is_freed() -> None:
    """The cut attempt's asyncio TimeoutError keeps Timeout.__aexit__'s frame, and its Timeout."""
    refs: list[weakref.ref[BaseException]] = []

    async def provider(name: str) -> str:
        if name == "a":
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError as cancelled:  # cut by attempt_timeout
                refs.append(weakref.ref(cancelled))
                raise
        return name

    fn = routed(
        providers=["a", "b"], cooldown=None, strategy=Hedged(delay=5.0), attempt_timeout=0.01
    )(provider)
    _freed(lambda: asyncio.run(fn()), refs)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_propagated_hedged_failure_is_freed(mode: str) -> None:
    refs: list[weakref.ref[Bad]] = []

    def tracked(error: Bad) -> Bad:
        refs.append(weakref.ref(error))
        return error

    def fail(name: str) -> str:
        raise tracked(Bad(name))  # no local

    options = {
        "providers": ["a", "b"],
        "cooldown": None,
        "fallback_on": TimeoutError,
        "strategy": Hedged(delay=5.0),
    }
    healthy = routed(providers=["z"], cooldown=None)(lambda provider: provider)
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

    gc.collect()
    gc.disable()
    try:
        call()
        healthy()
        assert refs and [ref() for ref in refs] == [None] * len(refs)
    finally:
        gc.enable()


def test_a_sync_hedged_timeout_with_attempts_running_frees_its_failures() -> None:
    refs: list[weakref.ref[Down]] = []
    release = threading.Event()

    def tracked(error: Down) -> Down:
        refs.append(weakref.ref(error))
        return error

    def provider(name: str) -> str:
        if name == "a":
            raise tracked(Down(name))  # no local
        release.wait(5)  # still running when the call times out
        return name

    fn = routed(providers=["a", "b"], cooldown=None, timeout=0.05, strategy=Hedged(delay=5.0))(
        provider
    )
    healthy = routed(providers=["z"], cooldown=None)(lambda provider: provider)
    gc.collect()
    gc.disable()
    try:
        with contextlib.suppress(RoutingTimeoutError):
            fn()
        release.set()  # the loser ends (and its callback runs)
        time.sleep(0.1)
        healthy()
        assert refs and [ref() for ref in refs] == [None] * len(refs)
    finally:
        release.set()
        gc.enable()


def test_a_hanging_loser_does_not_keep_the_calls_failures_nor_its_response() -> None:
    refs: list[weakref.ref[object]] = []
    hang = threading.Event()
    answered = threading.Event()

    def tracked(obj: object) -> object:
        refs.append(weakref.ref(obj))
        return obj

    def provider(name: str) -> object:
        if name == "a":
            raise tracked(Down(name))  # type: ignore[misc]  # no local
        if name == "b":
            answered.wait(5)  # answers once c runs
            return tracked(Response())
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
    refs: list[weakref.ref[Down]] = []

    def tracked(error: Down) -> Down:
        refs.append(weakref.ref(error))
        return error

    async def provider(name: str) -> AsyncIterator[str]:
        yield name
        raise tracked(Down(name))  # no local

    stream = routed(providers=["a", "b"], cooldown=None, idle_timeout=5.0)(provider)
    healthy = routed(providers=["z"], cooldown=None)(lambda provider: provider)

    async def consume() -> None:
        with contextlib.suppress(Down):
            [item async for item in stream()]

    gc.collect()
    gc.disable()
    try:
        asyncio.run(consume())
        healthy()
        assert refs and [ref() for ref in refs] == [None] * len(refs)
    finally:
        gc.enable()


@pytest.mark.parametrize("kind", ["sync", "async", "async stream"])
def test_an_injected_failure_is_freed(kind: str) -> None:
    refs: list[weakref.ref[Down]] = []

    def made() -> Down:
        error = Down("injected")
        refs.append(weakref.ref(error))
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

    gc.collect()
    gc.disable()
    try:
        call()
        assert refs and [ref() for ref in refs] == [None] * len(refs)
    finally:
        gc.enable()


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
