"""Typed uses of the public API, checked by `mypy --strict` (never run)."""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from typing import Any, assert_type

import tenacity

import resilient_routing
from resilient_routing import (
    AllProvidersFailedError,
    AsyncRoutedClassmethod,
    InMemoryCooldownTracker,
    RoutedClassmethod,
    RouteResult,
    configure,
    execute,
    execute_async,
    get_config,
    register_strategy,
    routed,
)
from resilient_routing.cooldown import CooldownTracker
from resilient_routing.strategies import Fallback, RoundRobin, Strategy
from resilient_routing.testing import FakeClock


@routed(strategy="fallback", providers=["gemini", "grok", "laozhang"])
def generate(provider: str, prompt: str, *, size: int = 512) -> bytes:
    return prompt.encode()


assert_type(generate("a cat"), bytes)
assert_type(generate("a cat", size=256), bytes)
assert_type(generate.execute("a cat"), RouteResult[bytes])
assert_type(generate.execute("a cat").response, bytes)
assert_type(generate.execute("a cat").failures, tuple[tuple[str, Exception], ...])


@routed(providers=lambda: ["a", "b"], strategy=RoundRobin(), cooldown=None, exempt={"b"})
async def fetch(provider: str, url: str) -> dict[str, int]:
    return {url: 1}


async def use_async() -> None:
    assert_type(await fetch("u"), dict[str, int])
    assert_type(await fetch.execute("u"), RouteResult[dict[str, int]])


class Client:
    @routed(providers=["a"])
    def method(self, provider: str, x: int) -> str:
        return str(x)


def use_method(c: Client) -> str:
    return c.method(1)


def use_functional() -> None:
    result = execute(["a", "b"], lambda p: len(p))
    assert_type(result, RouteResult[int])


async def use_functional_async() -> None:
    async def call(provider: str) -> float:
        return 1.0

    assert_type(await execute_async(["a"], call), RouteResult[float])


class Shuffled:
    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        return range(len(providers))


def use_registry_and_config() -> None:
    register_strategy("shuffled", Shuffled)
    register_strategy("fallback2", Fallback, replace=True)
    strategy: Strategy = Shuffled()
    tracker: CooldownTracker = InMemoryCooldownTracker(
        failure_threshold=2, cooldown=5, clock=FakeClock(), backoff=tenacity.wait_fixed(3)
    )
    configure(cooldown=tracker, exempt_providers={"laozhang"}, logger=logging.getLogger("x"))
    assert_type(get_config().exempt_providers, frozenset[str])
    del strategy


def use_listeners() -> None:
    from prometheus_client import CollectorRegistry

    from resilient_routing.contrib.otel import OpenTelemetryListener
    from resilient_routing.contrib.prometheus import PrometheusListener
    from resilient_routing.events import AttemptFailed, RoutingEvent

    class Failures:
        def __init__(self) -> None:
            self.count = 0

        def on_event(self, event: RoutingEvent) -> None:
            if isinstance(event, AttemptFailed):
                self.count += 1

    configure(
        listeners=[
            Failures(),
            OpenTelemetryListener(),
            PrometheusListener(CollectorRegistry()),
        ]
    )
    last = resilient_routing.last_route()
    if last is not None:
        assert_type(last.provider, str)


def use_redis() -> None:
    import redis

    from resilient_routing import AsyncRedisCooldownTracker, RedisCooldownTracker
    from resilient_routing.cooldown import ProviderState
    from resilient_routing.strategies import RedisCounter

    client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    with RedisCooldownTracker(client, prefix="app", failure_threshold=2) as tracker:
        configure(cooldown=tracker)
        states: list[ProviderState] = tracker.states()
        del states
    shared = RoundRobin(counter=RedisCounter(client))
    del shared
    atracker = AsyncRedisCooldownTracker.from_url("redis://127.0.0.1:6379/15", prefix="app")

    @routed(providers=["a", "b"], cooldown=atracker)
    async def call(provider: str) -> int:
        return 1

    del call


def use_errors() -> None:
    try:
        generate("x")
    except AllProvidersFailedError as err:
        assert_type(err.failures, tuple[tuple[str, Exception], ...])
    except resilient_routing.RoutingError:
        pass


@tenacity.retry(stop=tenacity.stop_after_attempt(2))
@routed(providers=["a", "b"])
def stacked(provider: str, n: int) -> int:
    return n


assert_type(stacked(1), int)


class Service:
    @routed(providers=["a"])
    def method(self, provider: str, x: int) -> str:
        return provider * x

    @routed(providers=["a"])
    @classmethod
    def cmethod(cls, provider: str, x: int) -> str:
        return provider * x

    @routed(providers=["a"])
    @staticmethod
    def smethod(provider: str, x: int) -> str:
        return provider * x

    @routed(providers=["a"])
    async def amethod(self, provider: str, x: int) -> str:
        return provider * x

    @routed(providers=["a"])
    @classmethod
    async def acmethod(cls, provider: str, x: int) -> str:
        return provider * x

    @routed(providers=["a"])
    @staticmethod
    async def asmethod(provider: str, x: int) -> str:
        return provider * x


def _cls_provider(cls: Any, provider: str, x: int) -> str:
    return provider * x


async def _async_cls_provider(cls: Any, provider: str, x: int) -> str:
    return provider * x


def _provider(provider: str, x: int) -> str:
    return provider * x


async def _async_provider(provider: str, x: int) -> str:
    return provider * x


# @routed given a classmethod or staticmethod object: binding keeps what follows the provider.
_one = routed(providers=["a"])
_cm: RoutedClassmethod[[int], str] = _one(classmethod(_cls_provider))
_acm: AsyncRoutedClassmethod[[int], str] = _one(classmethod(_async_cls_provider))
_sm: RoutedClassmethod[[int], str] = _one(staticmethod(_provider))
_asm: AsyncRoutedClassmethod[[int], str] = _one(staticmethod(_async_provider))
assert_type(_cm(1), str)
assert_type(_sm.__get__(None, object)(1), str)


async def use_wrapped_methods() -> None:
    assert_type(await _acm(1), str)
    assert_type(await _asm.execute(1), RouteResult[str])
    await _asm("bad")  # type: ignore[arg-type]


async def use_methods(service: Service) -> None:
    assert_type(service.method(1), str)
    assert_type(service.method.execute(1), RouteResult[str])
    service.method("bad")  # type: ignore[arg-type]
    assert_type(Service.cmethod(1), str)
    assert_type(service.cmethod.execute(2), RouteResult[str])
    Service.cmethod("bad")  # type: ignore[call-overload]
    # A routed staticmethod is called on its class, with its parameters minus the provider.
    assert_type(Service.smethod(2), str)
    assert_type(Service.smethod.execute(2), RouteResult[str])
    Service.smethod("bad")  # type: ignore[call-overload]
    assert_type(await service.amethod(1), str)
    assert_type(await service.amethod.execute(1), RouteResult[str])
    await service.amethod("bad")  # type: ignore[arg-type]
    assert_type(await Service.acmethod(1), str)
    assert_type(await service.acmethod.execute(2), RouteResult[str])
    await Service.acmethod("bad")  # type: ignore[call-overload]
    assert_type(await Service.asmethod(2), str)
    assert_type(await Service.asmethod.execute(2), RouteResult[str])
    await Service.asmethod("bad")  # type: ignore[call-overload]


# -- streaming routes ----------------------------------------------------------------------


@routed(providers=["a", "b"])
def tokens(provider: str, prompt: str) -> Iterator[str]:
    yield prompt


@routed(providers=["a", "b"], idle_timeout=5.0)
async def async_tokens(provider: str, prompt: str) -> AsyncIterator[str]:
    yield prompt


class _Chunk:
    text = ""


class _AsyncSDKStream:
    def __aiter__(self) -> AsyncIterator[_Chunk]:
        raise NotImplementedError

    async def close(self) -> None: ...


class _SDKStream:
    def __iter__(self) -> Iterator[_Chunk]:
        raise NotImplementedError


@routed(providers=["a", "b"], stream=True, first_item_timeout=2.0)
async def sdk_stream(provider: str, prompt: str) -> _AsyncSDKStream:
    return _AsyncSDKStream()


@routed(providers=["a", "b"], stream=True)
def sync_sdk_stream(provider: str, prompt: str) -> _SDKStream:
    return _SDKStream()


def use_sync_streams() -> None:
    assert_type(tokens("p"), Iterator[str])
    assert_type(tokens.execute("p").response, Iterator[str])
    assert_type(sync_sdk_stream("p"), Generator[_Chunk, None, None])
    for chunk in sync_sdk_stream("p"):
        assert_type(chunk, _Chunk)
    sync_sdk_stream("p").close()
    assert_type(sync_sdk_stream.execute("p").provider, str)


async def use_async_streams() -> None:
    assert_type(async_tokens("p"), AsyncGenerator[str, None])
    async for token in async_tokens("p"):
        assert_type(token, str)
    result = await async_tokens.execute("p")
    assert_type(result, RouteResult[AsyncGenerator[str, None]])
    async for chunk in sdk_stream("p"):
        assert_type(chunk, _Chunk)
    await sdk_stream("p").aclose()
    assert_type((await sdk_stream.execute("p")).response, AsyncGenerator[_Chunk, None])


class StreamingClient:
    @routed(providers=["a"])
    async def chat(self, provider: str, prompt: str) -> AsyncIterator[str]:
        yield prompt


async def use_streaming_method(c: StreamingClient) -> None:
    async for token in c.chat("p"):
        assert_type(token, str)
