"""Stream a chat completion, falling over between two OpenAI-compatible endpoints.

A provider that fails before its first chunk (a 429, a 5xx, no first chunk within
``first_item_timeout``) falls over to the next one; from the first chunk on, the stream is that
provider's, and a stall longer than ``idle_timeout`` fails it with ``TimeoutError``.

Environment:
    EXAMPLE_PRIMARY_URL: base URL of the first provider (default: https://api.openai.com/v1).
    EXAMPLE_BACKUP_URL: base URL of the second provider (default: https://api.openai.com/v1).
    EXAMPLE_PRIMARY_KEY, EXAMPLE_BACKUP_KEY: their API keys (default: a fake key).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import openai

from resilient_routing import routed

FALLBACK_ON = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


@dataclass(frozen=True)
class Provider:
    """One OpenAI-compatible endpoint; the router names it by ``name``."""

    name: str
    client: openai.AsyncOpenAI
    model: str = "gpt-4o-mini"


def _client(prefix: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=os.environ.get(f"EXAMPLE_{prefix}_URL", "https://api.openai.com/v1"),
        api_key=os.environ.get(f"EXAMPLE_{prefix}_KEY", "sk-fake"),
        max_retries=0,
    )


PROVIDERS = [Provider("primary", _client("PRIMARY")), Provider("backup", _client("BACKUP"))]


@routed(
    providers=PROVIDERS,
    stream=True,  # the function returns the SDK's stream: route its chunks
    fallback_on=FALLBACK_ON,
    first_item_timeout=10.0,  # time to first token, per provider
    idle_timeout=30.0,  # the longest silence between chunks
)
async def chat(
    provider: Provider, prompt: str
) -> openai.AsyncStream[openai.types.chat.ChatCompletionChunk]:
    """Open one provider's stream; the router opens the next one if this one fails first."""
    return await provider.client.chat.completions.create(
        model=provider.model, messages=[{"role": "user", "content": prompt}], stream=True
    )


async def main() -> None:
    result = await chat.execute("Say hello.")  # once the first chunk arrived
    for name, exc in result.failures:
        print(f"{name} failed: {type(exc).__name__}")
    text = [chunk.choices[0].delta.content or "" async for chunk in result.response]
    print(f"{result.provider} streamed: {''.join(text)}")


if __name__ == "__main__":
    asyncio.run(main())
