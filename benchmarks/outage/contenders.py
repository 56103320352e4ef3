"""The three contenders, each a ``complete(prompt)`` and a ``stream(prompt)`` over the providers.

- ``resilient_routing``: the openai SDK (one ``AsyncOpenAI`` per provider, ``max_retries=0``)
  under ``@routed`` with a hedged fallback (``Hedged``), an ``InMemoryCooldownTracker`` with
  short cooldowns and half-open probes (an ``AsyncRedisCooldownTracker`` on the local Redis
  when several client processes share the load) and ``slow_call``; streams are streaming
  routes (``stream=True``) with ``first_item_timeout`` and ``idle_timeout``.
- ``litellm``: LiteLLM ``Router``, one deployment per provider, each its own model group,
  ``fallbacks`` from the primary's group to the others, cooldowns (``allowed_fails``,
  ``cooldown_time``), no retries within a group (``num_retries=0``), Redis shared state
  (``redis_host``/``redis_port``) when several client processes run.
- ``tenacity``: the hand-written loop a user writes without a router: tenacity's
  ``AsyncRetrying`` over the providers in order, one attempt each, on the openai SDK.

All three give each provider call the same timeout (``Settings.attempt_timeout``), and none
fall over on a 4xx other than 408/409/429 (a bad request fails the same everywhere).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from .scenarios import PROVIDERS, Settings
from .servers import MODEL

CONTENDERS: tuple[str, ...] = ("resilient_routing", "litellm", "tenacity")

# LiteLLM fetches a model cost map (and more) from the internet when imported unless told not
# to: this benchmark talks to loopback only.
LITELLM_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true"}


@dataclass(frozen=True)
class Shared:
    """Where cooldown state is shared when several client processes run (else None)."""

    redis_host: str
    redis_port: int
    redis_db: int
    prefix: str

    @property
    def url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"


class Contender(Protocol):
    def complete(self, prompt: str) -> Awaitable[str]:
        """One non-streaming chat completion; its text."""
        ...

    def stream(self, prompt: str) -> AsyncGenerator[str, None]:
        """One streaming chat completion; its text deltas as they arrive."""
        ...

    async def aclose(self) -> None: ...


def falls_over(exc: BaseException) -> bool:
    """Whether a provider's failure should send the call to the next provider."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return True  # connection errors, timeouts, broken responses


def _messages(prompt: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": prompt}]


def _openai_clients(ports: list[int], timeout: float) -> dict[str, AsyncOpenAI]:
    return {
        name: AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key="sk-bench",
            max_retries=0,  # the router (or the loop) decides what to try next
            timeout=timeout,
        )
        for name, port in zip(PROVIDERS, ports, strict=True)
    }


async def _deltas(chunks: AsyncIterator[Any]) -> AsyncGenerator[str, None]:
    async for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            yield chunk.choices[0].delta.content


# -- resilient_routing -----------------------------------------------------------------------


Route = Callable[[Callable[..., Any]], Any]
Clients = dict[str, AsyncOpenAI]


def rr_complete(route: Route, clients: Clients) -> Callable[[str], Awaitable[str]]:
    """resilient_routing, non-streaming: the routed call is the whole completion."""

    @route
    async def complete(provider: str, prompt: str) -> str:
        response = await clients[provider].chat.completions.create(
            model=MODEL, messages=_messages(prompt)
        )
        return response.choices[0].message.content or ""

    return cast("Callable[[str], Awaitable[str]]", complete)


def rr_stream(route: Route, clients: Clients) -> Callable[[str], AsyncGenerator[str, None]]:
    """resilient_routing, streaming: a streaming route over the SDK's stream.

    ``route`` has ``stream=True``: the routed call gives the chunks at once; a provider that
    fails before its first chunk (refused, 5xx, 429, no first chunk within
    ``first_item_timeout``) falls over; one that fails after it (a cut, a stall past
    ``idle_timeout``) reaches the caller, recorded against that provider.
    """

    @route
    async def chunks(provider: str, prompt: str) -> AsyncStream[ChatCompletionChunk]:
        return await clients[provider].chat.completions.create(
            model=MODEL, messages=_messages(prompt), stream=True
        )

    async def stream(prompt: str) -> AsyncGenerator[str, None]:
        routed_chunks = chunks(prompt)
        try:
            async for text in _deltas(routed_chunks):
                yield text
        finally:
            await routed_chunks.aclose()

    return stream


class ResilientRouting:
    """The configuration the README recommends for LLM APIs: hedged fallback, short cooldowns
    recovered through half-open probes, slow answers counted as failures, and streaming
    routes with time-to-first-chunk and stall limits."""

    def __init__(self, ports: list[int], settings: Settings, shared: Shared | None) -> None:
        from resilient_routing import AsyncRedisCooldownTracker, InMemoryCooldownTracker, routed
        from resilient_routing.strategies import Hedged

        # A backstop only: attempt_timeout= below is what ends a slow attempt.
        self.clients = _openai_clients(ports, settings.attempt_timeout + 1.0)
        self.tracker: Any
        if shared is None:
            self.tracker = InMemoryCooldownTracker(**settings.rr_tracker)
        else:
            self.tracker = AsyncRedisCooldownTracker.from_url(
                shared.url, prefix=shared.prefix, **settings.rr_tracker
            )
        common: dict[str, Any] = {
            "providers": list(PROVIDERS),
            "strategy": Hedged(delay=settings.rr_hedge_delay),
            "cooldown": self.tracker,
            "fallback_on": falls_over,
            "timeout": settings.call_timeout,
            "slow_call": settings.rr_slow_call,
        }
        self.complete = rr_complete(
            routed(**common, attempt_timeout=settings.attempt_timeout), self.clients
        )
        self.stream = rr_stream(
            routed(
                **common,
                stream=True,
                first_item_timeout=settings.attempt_timeout,
                idle_timeout=settings.rr_idle_timeout,
            ),
            self.clients,
        )

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.close()
        if hasattr(self.tracker, "aclose"):
            await self.tracker.aclose()


# -- LiteLLM Router --------------------------------------------------------------------------


class LiteLLM:
    def __init__(self, ports: list[int], settings: Settings, shared: Shared | None) -> None:
        for key, value in LITELLM_ENV.items():
            os.environ.setdefault(key, value)
        import litellm
        from litellm.router import Router

        litellm.suppress_debug_info = True
        tag = shared.prefix if shared else f"outage-{os.getpid()}-{id(self):x}"
        model_list = [
            {
                "model_name": name,  # one model group per provider
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"http://127.0.0.1:{port}/v1",
                    "api_key": "sk-bench",
                },
                "model_info": {"id": f"{tag}-{name}"},
            }
            for name, port in zip(PROVIDERS, ports, strict=True)
        ]
        redis: dict[str, Any] = {}
        if shared is not None:
            redis = {
                "redis_host": shared.redis_host,
                "redis_port": shared.redis_port,
                "redis_db": shared.redis_db,
            }
        self.router = Router(
            model_list=model_list,
            fallbacks=[{PROVIDERS[0]: list(PROVIDERS[1:])}],
            num_retries=0,  # one deployment per group: a retry would hit the same provider
            allowed_fails=3,
            cooldown_time=5,
            timeout=settings.attempt_timeout,
            stream_timeout=settings.attempt_timeout,
            **redis,
        )

    async def complete(self, prompt: str) -> str:
        response = await self.router.acompletion(model=PROVIDERS[0], messages=_messages(prompt))
        return response.choices[0].message.content or ""

    async def stream(self, prompt: str) -> AsyncGenerator[str, None]:
        chunks = await self.router.acompletion(
            model=PROVIDERS[0], messages=_messages(prompt), stream=True
        )
        async for text in _deltas(chunks):
            yield text

    async def aclose(self) -> None:
        close = getattr(self.router, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


# -- tenacity, by hand -----------------------------------------------------------------------


class Tenacity:
    def __init__(self, ports: list[int], settings: Settings, shared: Shared | None) -> None:
        del shared  # nothing to share: the loop remembers nothing between calls
        self.clients = _openai_clients(ports, settings.attempt_timeout)

    def _attempts(self) -> Any:
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        return AsyncRetrying(
            stop=stop_after_attempt(len(PROVIDERS)),
            retry=retry_if_exception(falls_over),
            reraise=True,
        )

    async def complete(self, prompt: str) -> str:
        async for attempt in self._attempts():
            with attempt:
                provider = PROVIDERS[attempt.retry_state.attempt_number - 1]
                response = await self.clients[provider].chat.completions.create(
                    model=MODEL, messages=_messages(prompt)
                )
                return response.choices[0].message.content or ""
        raise AssertionError("unreachable: reraise=True")

    async def _open_stream(self, prompt: str) -> AsyncStream[ChatCompletionChunk]:
        async for attempt in self._attempts():
            with attempt:
                provider = PROVIDERS[attempt.retry_state.attempt_number - 1]
                return await self.clients[provider].chat.completions.create(
                    model=MODEL, messages=_messages(prompt), stream=True
                )
        raise AssertionError("unreachable: reraise=True")

    async def stream(self, prompt: str) -> AsyncGenerator[str, None]:
        chunks = await self._open_stream(prompt)
        try:
            async for text in _deltas(chunks):
                yield text
        finally:
            await chunks.close()

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.close()


def build(name: str, ports: list[int], settings: Settings, shared: Shared | None) -> Contender:
    kinds: dict[str, Callable[[list[int], Settings, Shared | None], Contender]] = {
        "resilient_routing": ResilientRouting,
        "litellm": LiteLLM,
        "tenacity": Tenacity,
    }
    return kinds[name](ports, settings, shared)
