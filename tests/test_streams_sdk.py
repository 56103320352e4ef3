"""Streaming routes over real SDK clients (openai, anthropic, google-genai) and local servers.

Each provider is a local ``StreamingAPI`` speaking the SDK's dialect (server-sent events); the
routed functions call the real client (retries off) with ``stream=True`` and route its
``Stream`` / ``AsyncStream``. Every test runs once per SDK.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

from resilient_routing import InMemoryCooldownTracker, last_route, routed
from resilient_routing.testing import FakeClock

from .sse_server import Script, StreamingAPI

# google-genai's async client subclasses aiohttp's ClientSession, which aiohttp discourages.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

HINT = 7.0
MID_STREAM = "resilient_routing: raised mid-stream by provider"
MESSAGES: Any = [{"role": "user", "content": "hi"}]

EXAMPLES = Path(__file__).parent.parent / "examples" / "sdks"


def _example(name: str) -> Any:
    path = EXAMPLES / f"{name.removeprefix('examples_')}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


#: The predicate docs/sdks.md gives for google-genai, tested here under its async client too.
gemini_falls_over = _example("examples_google_genai_fallback").falls_over


#: What falls over, per SDK: rate limits, server errors, connections lost.
FALLBACK_ON: dict[str, Any] = {
    "gemini": gemini_falls_over,
    "openai": (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError),
    "anthropic": (
        anthropic.RateLimitError,
        anthropic.InternalServerError,
        anthropic.APIConnectionError,
    ),
}
#: What a stream cut mid-body raises, per SDK.
CUT: dict[str, Any] = {
    # The async client runs on aiohttp when it is installed (as here).
    "gemini": (httpx2.RemoteProtocolError, aiohttp.ClientPayloadError),
    "openai": openai.APIConnectionError,
    "anthropic": anthropic.APIConnectionError,
}


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def sdk(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def apis(sdk: Any) -> Iterator[dict[str, StreamingAPI]]:
    made = {
        "primary": StreamingAPI(dialect=sdk),
        "backup": StreamingAPI(Script(words=("from", " backup")), dialect=sdk),
    }
    yield made
    for api in made.values():
        api.close()


@pytest.fixture
def cooling(clock: FakeClock) -> InMemoryCooldownTracker:
    return InMemoryCooldownTracker(failure_threshold=1, cooldown=60, clock=clock)


def text(items: list[Any]) -> str:
    """The text of a stream's items: OpenAI chunks, Anthropic events or Gemini responses."""
    parts = []
    for item in items:
        if hasattr(item, "choices"):
            parts.append(item.choices[0].delta.content or "")
        elif hasattr(item, "candidates"):
            parts.append(item.text or "")
        elif item.type == "content_block_delta":
            parts.append(item.delta.text)
    return "".join(parts)


def gemini(api: StreamingAPI) -> genai.Client:
    """A google-genai client of ``api``, one attempt per request (its retries off)."""
    return genai.Client(
        api_key="fake-gemini-key",
        http_options=types.HttpOptions(
            base_url=f"{api.root}/", retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )


def sync_route(
    sdk: str, apis: dict[str, StreamingAPI], tracker: InMemoryCooldownTracker, **options: Any
) -> Any:
    """A sync streaming route over the real ``sdk`` client of each provider."""
    if sdk == "openai":
        chats = {
            name: openai.OpenAI(base_url=api.url, api_key="sk-fake", max_retries=0).chat
            for name, api in apis.items()
        }

        def chat(provider: str) -> Any:
            return chats[provider].completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )

    elif sdk == "anthropic":
        clients = {
            name: anthropic.Anthropic(base_url=api.root, api_key="sk-fake", max_retries=0)
            for name, api in apis.items()
        }

        def chat(provider: str) -> Any:
            return clients[provider].messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, stream=True
            )

    else:  # its request is sent when the returned generator is first iterated
        gemini_clients = {name: gemini(api) for name, api in apis.items()}

        def chat(provider: str) -> Any:
            return gemini_clients[provider].models.generate_content_stream(
                model="gemini-2.5-flash", contents="hi"
            )

    return routed(
        providers=["primary", "backup"],
        stream=True,
        cooldown=tracker,
        fallback_on=FALLBACK_ON[sdk],
        **options,
    )(chat)


def async_route(
    sdk: str, apis: dict[str, StreamingAPI], tracker: InMemoryCooldownTracker, **options: Any
) -> Any:
    """The async twin of :func:`sync_route`."""
    if sdk == "openai":
        chats = {
            name: openai.AsyncOpenAI(base_url=api.url, api_key="sk-fake", max_retries=0).chat
            for name, api in apis.items()
        }

        async def chat(provider: str) -> Any:
            return await chats[provider].completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )

    elif sdk == "anthropic":
        clients = {
            name: anthropic.AsyncAnthropic(base_url=api.root, api_key="sk-fake", max_retries=0)
            for name, api in apis.items()
        }

        async def chat(provider: str) -> Any:
            return await clients[provider].messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, stream=True
            )

    else:
        agemini_clients = {name: gemini(api) for name, api in apis.items()}

        async def chat(provider: str) -> Any:
            return await agemini_clients[provider].aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents="hi"
            )

    return routed(
        providers=["primary", "backup"],
        stream=True,
        cooldown=tracker,
        fallback_on=FALLBACK_ON[sdk],
        **options,
    )(chat)


def test_sync_429_before_the_stream_falls_over_and_cools_for_its_hint(
    sdk: str, apis: dict[str, StreamingAPI], cooling: InMemoryCooldownTracker
) -> None:
    apis["primary"].script = Script(status=429, headers={"retry-after": "7"})
    chat = sync_route(sdk, apis, cooling)
    assert text(list(chat())) == "from backup"
    assert apis["primary"].requests == 1
    assert cooling.cooldown_remaining("primary") == pytest.approx(HINT)
    route = last_route()
    assert route is not None and route.provider == "backup"


async def test_async_429_before_the_stream_falls_over_and_cools_for_its_hint(
    sdk: str, apis: dict[str, StreamingAPI], cooling: InMemoryCooldownTracker
) -> None:
    apis["primary"].script = Script(status=429, headers={"retry-after": "7"})
    chat = async_route(sdk, apis, cooling)
    result = await chat.execute()
    assert result.provider == "backup"
    assert text([chunk async for chunk in result.response]) == "from backup"
    assert cooling.cooldown_remaining("primary") == pytest.approx(HINT)


def test_sync_stream_cut_after_some_chunks_reaches_the_consumer(
    sdk: str, apis: dict[str, StreamingAPI], cooling: InMemoryCooldownTracker
) -> None:
    apis["primary"].script = Script(words=("one", " two", " three"), end="cut")
    chat = sync_route(sdk, apis, cooling)
    received: list[Any] = []
    with pytest.raises(CUT[sdk]) as caught:
        received.extend(chat())
    assert f"{MID_STREAM} 'primary'" in caught.value.__notes__
    assert apis["backup"].requests == 0  # no restart behind the consumer's back
    assert not cooling.is_available("primary")


async def test_async_stream_cut_after_some_chunks_reaches_the_consumer(
    sdk: str, apis: dict[str, StreamingAPI], cooling: InMemoryCooldownTracker
) -> None:
    apis["primary"].script = Script(words=("one", " two"), end="cut")
    chat = async_route(sdk, apis, cooling)
    received: list[Any] = []

    async def consume() -> None:
        async for chunk in chat():
            received.append(chunk)  # noqa: PERF401 - kept chunk by chunk: the stream raises

    with pytest.raises(CUT[sdk]) as caught:
        await consume()
    assert text(received) == "one two"
    assert f"{MID_STREAM} 'primary'" in caught.value.__notes__
    assert apis["backup"].requests == 0
    assert not cooling.is_available("primary")


async def test_a_stall_trips_idle_timeout_and_the_connection_is_closed(
    sdk: str, apis: dict[str, StreamingAPI], cooling: InMemoryCooldownTracker
) -> None:
    apis["primary"].script = Script(words=("one",), end="stall")
    chat = async_route(sdk, apis, cooling, idle_timeout=0.2)
    received: list[Any] = []

    async def consume() -> None:
        async for chunk in chat():
            received.append(chunk)  # noqa: PERF401 - as above

    with pytest.raises(TimeoutError, match=r"idle_timeout=0\.2") as caught:
        await consume()
    assert text(received) == "one"
    assert f"{MID_STREAM} 'primary'" in caught.value.__notes__
    assert not cooling.is_available("primary")
    await _hung_up(apis["primary"])


async def test_no_first_chunk_in_time_falls_over_and_the_connection_is_closed(
    sdk: str, apis: dict[str, StreamingAPI], cooling: InMemoryCooldownTracker
) -> None:
    apis["primary"].script = Script(stall_before=True)
    chat = async_route(sdk, apis, cooling, first_item_timeout=0.2)
    assert text([chunk async for chunk in chat()]) == "from backup"
    assert not cooling.is_available("primary")
    await _hung_up(apis["primary"])


async def test_breaking_out_early_closes_the_connection(
    sdk: str,
    apis: dict[str, StreamingAPI],
    cooling: InMemoryCooldownTracker,
    request: pytest.FixtureRequest,
) -> None:
    if sdk == "gemini":
        # The routed stream closes google-genai's async generator, but that generator does not
        # close the inner one holding the HTTP response (aiohttp or httpx2 alike): the server
        # goes on generating until the client is closed. docs/sdks.md says so. Strict: when
        # google-genai fixes it, this test says to update the docs.
        request.applymarker(
            pytest.mark.xfail(strict=True, reason="google-genai's async stream leaks on aclose")
        )
    apis["primary"].script = Script(words=("one",), end="stall")
    chat = async_route(sdk, apis, cooling)
    stream = chat()
    async for _ in stream:
        break  # at the first item
    await stream.aclose()
    await _hung_up(apis["primary"])
    assert cooling.is_available("primary")


def test_sync_breaking_out_early_closes_the_connection(
    sdk: str, apis: dict[str, StreamingAPI], cooling: InMemoryCooldownTracker
) -> None:
    apis["primary"].script = Script(words=("one",), end="stall")
    chat = sync_route(sdk, apis, cooling)
    stream = chat()
    for _ in stream:
        break  # at the first item
    stream.close()
    asyncio.run(_hung_up(apis["primary"]))
    assert cooling.is_available("primary")


async def _hung_up(api: StreamingAPI) -> None:
    """Wait (a bounded while) until the server saw the client close the stalled stream."""
    for _ in range(200):
        if api.hung_up:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the client never closed its connection")


@pytest.mark.parametrize("sdk", ["openai"])
def test_the_streaming_example_runs(apis: dict[str, StreamingAPI]) -> None:
    """examples/sdks/openai_streaming.py: the primary's 429 falls over, the backup streams."""
    apis["primary"].script = Script(status=429, headers={"retry-after": "7"})
    example = Path(__file__).parent.parent / "examples" / "sdks" / "openai_streaming.py"
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "EXAMPLE_PRIMARY_URL": apis["primary"].url,
        "EXAMPLE_BACKUP_URL": apis["backup"].url,
        # This checkout's package, whatever copy the interpreter has installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "primary failed: RateLimitError",
        "backup streamed: from backup",
    ]
