"""Fall over between two OpenAI-compatible endpoints through litellm, its retries off.

Environment:
    EXAMPLE_PRIMARY_URL: base URL of the first provider (default: https://api.openai.com/v1).
    EXAMPLE_BACKUP_URL: base URL of the second provider (default: https://api.openai.com/v1).
    EXAMPLE_PRIMARY_KEY, EXAMPLE_BACKUP_KEY: their API keys (default: a fake key).

Run against local servers:
    EXAMPLE_PRIMARY_URL=http://127.0.0.1:8001/v1 EXAMPLE_BACKUP_URL=http://127.0.0.1:8002/v1 \
        python examples/sdks/litellm_fallback.py

Other litellm model strings ("anthropic/...", "bedrock/...", "gemini/...") fall over the same
way: litellm maps every provider's errors onto the same exception classes. (Their retry hints
are another matter: see docs/sdks.md.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# litellm downloads its model price list at import unless told to use the bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # after setting the environment it reads at import

from resilient_routing import routed

litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner on every error

# Failures that another provider may not have: rate limits (429), timeouts (408 and 504
# become litellm.Timeout), connection errors (which litellm raises as InternalServerError),
# and server errors: 500, 502 and 503 have classes of their own. Anything else propagates at
# once: BadRequestError (400 and 422), AuthenticationError (401), NotFoundError (404), and
# the catch-all litellm.APIError, which litellm raises for the statuses it does not map
# (403, 409, 413, and 529 too: see falls_over in the docs to let a 529 fall over).
FALLBACK_ON = (
    litellm.RateLimitError,
    litellm.Timeout,
    litellm.APIConnectionError,
    litellm.InternalServerError,
    litellm.BadGatewayError,
    litellm.ServiceUnavailableError,
)


@dataclass(frozen=True)
class Provider:
    """One endpoint as litellm reaches it; the router names it by ``name``."""

    name: str
    api_base: str
    api_key: str
    model: str = "openai/gpt-4o-mini"


def _provider(name: str, prefix: str) -> Provider:
    return Provider(
        name,
        api_base=os.environ.get(f"EXAMPLE_{prefix}_URL", "https://api.openai.com/v1"),
        api_key=os.environ.get(f"EXAMPLE_{prefix}_KEY", "sk-fake"),
    )


PROVIDERS = [_provider("primary", "PRIMARY"), _provider("backup", "BACKUP")]


@routed(providers=PROVIDERS, fallback_on=FALLBACK_ON)
def ask(provider: Provider, prompt: str) -> str:
    """Ask one provider; the router calls the next one when this one falls over."""
    response = litellm.completion(
        model=provider.model,
        api_base=provider.api_base,
        api_key=provider.api_key,
        messages=[{"role": "user", "content": prompt}],
        # No retries: num_retries=0 also sets the underlying OpenAI client's max_retries
        # (litellm's default for it is 2). Leave the global litellm.num_retries unset: when
        # it is set, a per-call num_retries=0 does not override it.
        num_retries=0,
        timeout=60,
    )
    return response.choices[0].message.content or ""


if __name__ == "__main__":
    result = ask.execute("Say hello.")
    for name, exc in result.failures:
        print(f"{name} failed: {type(exc).__name__}")
    print(f"{result.provider} answered: {result.response}")
