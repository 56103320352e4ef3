"""Fall over between two JSON APIs with httpx.

Environment:
    EXAMPLE_PRIMARY_URL: base URL of the first provider (default: http://127.0.0.1:8001).
    EXAMPLE_BACKUP_URL: base URL of the second provider (default: http://127.0.0.1:8002).

Each provider answers ``POST /answer`` with ``{"answer": "..."}``. Run:
    EXAMPLE_PRIMARY_URL=http://127.0.0.1:8001 EXAMPLE_BACKUP_URL=http://127.0.0.1:8002 \
        python examples/sdks/httpx_fallback.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

from resilient_routing import routed


def falls_over(exc: Exception) -> bool:
    """Tell whether another provider may succeed where this failure happened.

    ``raise_for_status()`` raises ``HTTPStatusError`` for every 4xx and 5xx, so the status
    decides: 408, 429 and 5xx fall over, and so do the transport's failures (timeouts,
    connection errors, a dropped connection); any other 4xx propagates at once.
    """
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status in (408, 429) or status >= 500
    return isinstance(exc, httpx.TransportError)


@dataclass(frozen=True)
class Provider:
    """One JSON API; the router names it by ``name``."""

    name: str
    client: httpx.Client


def _client(prefix: str, default: str) -> httpx.Client:
    # httpx does not retry by default (HTTPTransport(retries=0); its retries only ever
    # cover connection failures): leave it so.
    return httpx.Client(base_url=os.environ.get(f"EXAMPLE_{prefix}_URL", default), timeout=10)


PROVIDERS = [
    Provider("primary", _client("PRIMARY", "http://127.0.0.1:8001")),
    Provider("backup", _client("BACKUP", "http://127.0.0.1:8002")),
]


@routed(providers=PROVIDERS, fallback_on=falls_over)
def ask(provider: Provider, prompt: str) -> str:
    """Ask one provider; the router calls the next one when this one falls over."""
    response = provider.client.post("/answer", json={"prompt": prompt})
    response.raise_for_status()  # the error keeps the response: the tracker reads Retry-After
    answer: str = response.json()["answer"]
    return answer


if __name__ == "__main__":
    result = ask.execute("Say hello.")
    for name, exc in result.failures:
        print(f"{name} failed: {type(exc).__name__}")
    print(f"{result.provider} answered: {result.response}")
