"""Fall over between two OpenAI-compatible endpoints, with the OpenAI SDK's retries off.

Environment:
    EXAMPLE_PRIMARY_URL: base URL of the first provider (default: https://api.openai.com/v1).
    EXAMPLE_BACKUP_URL: base URL of the second provider (default: https://api.openai.com/v1).
    EXAMPLE_PRIMARY_KEY, EXAMPLE_BACKUP_KEY: their API keys (default: a fake key).

Run against local servers:
    EXAMPLE_PRIMARY_URL=http://127.0.0.1:8001/v1 EXAMPLE_BACKUP_URL=http://127.0.0.1:8002/v1 \
        python examples/sdks/openai_fallback.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import openai

from resilient_routing import routed

# Failures that another provider may not have: rate limits (429), server errors (5xx),
# timeouts and connection errors (APITimeoutError is an APIConnectionError). Anything else
# (BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403, NotFoundError 404,
# UnprocessableEntityError 422) propagates at once: a bad request fails the same everywhere.
FALLBACK_ON = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


@dataclass(frozen=True)
class Provider:
    """One OpenAI-compatible endpoint; the router names it by ``name``."""

    name: str
    client: openai.OpenAI
    model: str = "gpt-4o-mini"


def _client(prefix: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=os.environ.get(f"EXAMPLE_{prefix}_URL", "https://api.openai.com/v1"),
        api_key=os.environ.get(f"EXAMPLE_{prefix}_KEY", "sk-fake"),
        max_retries=0,  # the SDK would retry a 429 twice, sleeping its Retry-After each time
        timeout=30.0,
    )


PROVIDERS = [Provider("primary", _client("PRIMARY")), Provider("backup", _client("BACKUP"))]


@routed(providers=PROVIDERS, fallback_on=FALLBACK_ON)
def ask(provider: Provider, prompt: str) -> str:
    """Ask one provider; the router calls the next one when this one falls over."""
    completion = provider.client.chat.completions.create(
        model=provider.model, messages=[{"role": "user", "content": prompt}]
    )
    return completion.choices[0].message.content or ""


if __name__ == "__main__":
    result = ask.execute("Say hello.")
    for name, exc in result.failures:
        print(f"{name} failed: {type(exc).__name__}")
    print(f"{result.provider} answered: {result.response}")
