"""Fall over between two Gemini API endpoints with google-genai, its retries off.

Environment:
    EXAMPLE_PRIMARY_URL: base URL of the first provider
        (default: https://generativelanguage.googleapis.com/).
    EXAMPLE_BACKUP_URL: base URL of the second provider (same default).
    EXAMPLE_PRIMARY_KEY, EXAMPLE_BACKUP_KEY: their API keys (default: a fake key).

Run against local servers:
    EXAMPLE_PRIMARY_URL=http://127.0.0.1:8001 EXAMPLE_BACKUP_URL=http://127.0.0.1:8002 \
        python examples/sdks/google_genai_fallback.py
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import httpx2  # google-genai's default HTTP client (GOOGLE_GENAI_HTTP_CLIENT=httpx: httpx)
from google import genai
from google.genai import errors, types

from resilient_routing import routed

#: What the HTTP clients raise for a lost connection or a timeout: httpx2 under the sync
#: client; under the async one, aiohttp when it is installed (else httpx2 too).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx2.TransportError, TimeoutError)
with contextlib.suppress(ImportError):
    import aiohttp

    TRANSPORT_ERRORS += (aiohttp.ClientError,)


def falls_over(exc: Exception) -> bool:
    """Tell whether another provider may succeed where this failure happened.

    google-genai raises ``ClientError`` for every 4xx and ``ServerError`` for every 5xx (the
    status is ``exc.code``), so a tuple of types cannot tell a 429 from a 400: rate limits
    (429), 408 and server errors fall over, and so do the HTTP clients' timeouts and
    connection errors; 400, 401, 403, 404 and the other client errors propagate at once.
    """
    if isinstance(exc, errors.ServerError):
        return True
    if isinstance(exc, errors.ClientError):
        return exc.code in (408, 429)
    return isinstance(exc, TRANSPORT_ERRORS)


@dataclass(frozen=True)
class Provider:
    """One Gemini API endpoint; the router names it by ``name``."""

    name: str
    client: genai.Client
    model: str = "gemini-2.5-flash"


def _client(prefix: str) -> genai.Client:
    return genai.Client(
        api_key=os.environ.get(f"EXAMPLE_{prefix}_KEY", "fake-gemini-key"),
        http_options=types.HttpOptions(
            base_url=os.environ.get(
                f"EXAMPLE_{prefix}_URL", "https://generativelanguage.googleapis.com/"
            ),
            # One attempt: no retry of a 429/5xx, nor the async client's implicit retry of a
            # connection error (which sleeps 1-10 s when no retry options are given).
            retry_options=types.HttpRetryOptions(attempts=1),
            timeout=60_000,  # milliseconds
        ),
    )


PROVIDERS = [Provider("primary", _client("PRIMARY")), Provider("backup", _client("BACKUP"))]


@routed(providers=PROVIDERS, fallback_on=falls_over)
def ask(provider: Provider, prompt: str) -> str:
    """Ask one provider; the router calls the next one when this one falls over."""
    response = provider.client.models.generate_content(model=provider.model, contents=prompt)
    return response.text or ""


if __name__ == "__main__":
    result = ask.execute("Say hello.")
    for name, exc in result.failures:
        print(f"{name} failed: {type(exc).__name__}")
    print(f"{result.provider} answered: {result.response}")
