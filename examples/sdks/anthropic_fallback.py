"""Fall over between two Anthropic Messages API endpoints, with the SDK's retries off.

Environment:
    EXAMPLE_PRIMARY_URL: base URL of the first provider (default: https://api.anthropic.com).
    EXAMPLE_BACKUP_URL: base URL of the second provider (default: https://api.anthropic.com).
    EXAMPLE_PRIMARY_KEY, EXAMPLE_BACKUP_KEY: their API keys (default: a fake key).

Run against local servers:
    EXAMPLE_PRIMARY_URL=http://127.0.0.1:8001 EXAMPLE_BACKUP_URL=http://127.0.0.1:8002 \
        python examples/sdks/anthropic_fallback.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import anthropic

from resilient_routing import routed

# Failures that another provider may not have: rate limits (429, spend limits among them),
# 408, server errors (InternalServerError: every 5xx, OverloadedError 529 included), timeouts
# and connection errors (APITimeoutError is an APIConnectionError). Anything else
# (BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403, NotFoundError 404,
# UnprocessableEntityError 422...) propagates at once: a bad request fails the same everywhere.
FALLBACK_ON = (
    anthropic.RateLimitError,
    anthropic.RequestTimeoutError,
    anthropic.InternalServerError,
    anthropic.APIConnectionError,
)


@dataclass(frozen=True)
class Provider:
    """One Messages API endpoint; the router names it by ``name``."""

    name: str
    client: anthropic.Anthropic
    model: str = "claude-sonnet-4-5"


def _client(prefix: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=os.environ.get(f"EXAMPLE_{prefix}_URL", "https://api.anthropic.com"),
        api_key=os.environ.get(f"EXAMPLE_{prefix}_KEY", "sk-ant-fake"),
        max_retries=0,  # the SDK would retry a 429 or 529 twice, sleeping its Retry-After
        timeout=60.0,
    )


PROVIDERS = [Provider("primary", _client("PRIMARY")), Provider("backup", _client("BACKUP"))]


@routed(providers=PROVIDERS, fallback_on=FALLBACK_ON)
def ask(provider: Provider, prompt: str) -> str:
    """Ask one provider; the router calls the next one when this one falls over."""
    message = provider.client.messages.create(
        model=provider.model, max_tokens=256, messages=[{"role": "user", "content": prompt}]
    )
    return "".join(block.text for block in message.content if block.type == "text")


if __name__ == "__main__":
    result = ask.execute("Say hello.")
    for name, exc in result.failures:
        print(f"{name} failed: {type(exc).__name__}")
    print(f"{result.provider} answered: {result.response}")
