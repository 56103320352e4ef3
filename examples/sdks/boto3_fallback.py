"""Fall over between two Bedrock Runtime regions (Converse) with boto3, its retries off.

Environment:
    EXAMPLE_PRIMARY_REGION, EXAMPLE_BACKUP_REGION: the regions (default: us-east-1, us-west-2).
    EXAMPLE_PRIMARY_URL, EXAMPLE_BACKUP_URL: endpoint URLs to use instead of the regions'
        own (optional: for local servers or VPC endpoints).
    Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID..., a profile, a role).

Run against local servers (fake credentials are fine):
    AWS_ACCESS_KEY_ID=fake AWS_SECRET_ACCESS_KEY=fake \
    EXAMPLE_PRIMARY_URL=http://127.0.0.1:8001 EXAMPLE_BACKUP_URL=http://127.0.0.1:8002 \
        python examples/sdks/boto3_fallback.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from resilient_routing import routed

# One attempt per call. "total_max_attempts" counts the first request; the older
# "max_attempts" counts retries only: {"max_attempts": 1} still sends two requests.
NO_RETRIES = Config(
    retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60
)


def falls_over(exc: Exception) -> bool:
    """Tell whether another provider may succeed where this failure happened.

    Bedrock's errors are ``ClientError`` subclasses made per boto3 session
    (``client.exceptions.ThrottlingException`` of one session is not the class another
    session raises), so the HTTP status decides: 429 (ThrottlingException,
    ModelNotReadyException), 408 (ModelTimeoutException) and 5xx (InternalServerException,
    ServiceUnavailableException) fall over, and so do connection errors and timeouts;
    ValidationException (400), AccessDeniedException (403), ResourceNotFoundException (404)
    and ModelErrorException (424) propagate at once.
    """
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status in (408, 429) or status >= 500
    # EndpointConnectionError and ConnectTimeoutError are ConnectionErrors;
    # ReadTimeoutError and ConnectionClosedError are HTTPClientErrors.
    return isinstance(exc, (BotocoreConnectionError, HTTPClientError))


@dataclass(frozen=True)
class Provider:
    """One Bedrock Runtime endpoint; the router names it by ``name``."""

    name: str
    client: Any  # a boto3 "bedrock-runtime" client
    model: str = "anthropic.claude-3-5-haiku-20241022-v1:0"


def _client(prefix: str, region: str) -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name=os.environ.get(f"EXAMPLE_{prefix}_REGION", region),
        endpoint_url=os.environ.get(f"EXAMPLE_{prefix}_URL") or None,
        config=NO_RETRIES,
    )


PROVIDERS = [
    Provider("primary", _client("PRIMARY", "us-east-1")),
    Provider("backup", _client("BACKUP", "us-west-2")),
]


@routed(providers=PROVIDERS, fallback_on=falls_over)
def ask(provider: Provider, prompt: str) -> str:
    """Ask one provider; the router calls the next one when this one falls over."""
    response = provider.client.converse(
        modelId=provider.model, messages=[{"role": "user", "content": [{"text": prompt}]}]
    )
    return "".join(block.get("text", "") for block in response["output"]["message"]["content"])


if __name__ == "__main__":
    result = ask.execute("Say hello.")
    for name, exc in result.failures:
        print(f"{name} failed: {type(exc).__name__}")
    print(f"{result.provider} answered: {result.response}")
