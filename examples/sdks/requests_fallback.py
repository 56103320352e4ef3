"""Fall over between two JSON APIs with requests.

Environment:
    EXAMPLE_PRIMARY_URL: base URL of the first provider (default: http://127.0.0.1:8001).
    EXAMPLE_BACKUP_URL: base URL of the second provider (default: http://127.0.0.1:8002).

Each provider answers ``POST /answer`` with ``{"answer": "..."}``. Run:
    EXAMPLE_PRIMARY_URL=http://127.0.0.1:8001 EXAMPLE_BACKUP_URL=http://127.0.0.1:8002 \
        python examples/sdks/requests_fallback.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import requests

from resilient_routing import routed


def falls_over(exc: Exception) -> bool:
    """Tell whether another provider may succeed where this failure happened.

    ``raise_for_status()`` raises ``HTTPError`` for every 4xx and 5xx, so the status decides:
    408, 429 and 5xx fall over, and so do connection errors (ConnectTimeout among them),
    read timeouts and a body cut short; any other 4xx propagates at once.
    """
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status in (408, 429) or status >= 500
    return isinstance(
        exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
    )


@dataclass(frozen=True)
class Provider:
    """One JSON API; the router names it by ``name``."""

    name: str
    url: str
    # requests does not retry by default (HTTPAdapter(max_retries=0)): mount no adapter
    # with a urllib3 Retry on this session.
    session: requests.Session


def _provider(name: str, prefix: str, default: str) -> Provider:
    return Provider(name, os.environ.get(f"EXAMPLE_{prefix}_URL", default), requests.Session())


PROVIDERS = [
    _provider("primary", "PRIMARY", "http://127.0.0.1:8001"),
    _provider("backup", "BACKUP", "http://127.0.0.1:8002"),
]


@routed(providers=PROVIDERS, fallback_on=falls_over)
def ask(provider: Provider, prompt: str) -> str:
    """Ask one provider; the router calls the next one when this one falls over."""
    response = provider.session.post(f"{provider.url}/answer", json={"prompt": prompt}, timeout=10)
    response.raise_for_status()  # the error keeps the response: the tracker reads Retry-After
    answer: str = response.json()["answer"]
    return answer


if __name__ == "__main__":
    result = ask.execute("Say hello.")
    for name, exc in result.failures:
        print(f"{name} failed: {type(exc).__name__}")
    print(f"{result.provider} answered: {result.response}")
