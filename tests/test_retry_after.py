"""Retry-After as real HTTP client libraries deliver it on their errors."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import openai
import pytest
import requests

from resilient_routing import InMemoryCooldownTracker
from resilient_routing.cooldown._retry_after import retry_after_seconds
from resilient_routing.testing import FakeClock

NOW = 1_700_000_000.0


def wall() -> float:
    return NOW


def httpx_error(headers: dict[str, str], status: int = 429) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://api.example.test/v1/images")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError("rate limited", request=request, response=response)


def requests_error(headers: dict[str, str], status: int = 429) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return requests.HTTPError("rate limited", response=response)


def openai_error(headers: dict[str, str]) -> openai.RateLimitError:
    request = httpx.Request("POST", "https://api.example.test/v1/chat/completions")
    response = httpx.Response(429, headers=headers, request=request)
    return openai.RateLimitError("Rate limit reached", response=response, body=None)


@pytest.mark.parametrize("make", [httpx_error, requests_error, openai_error])
def test_seconds_header_on_real_errors(make: object) -> None:
    """httpx, requests and openai errors carry Retry-After where the tracker reads it."""
    exc = make({"retry-after": "17"})  # type: ignore[operator]
    assert retry_after_seconds(exc, wall) == 17.0


@pytest.mark.parametrize("make", [httpx_error, requests_error, openai_error])
def test_http_date_header_on_real_errors(make: object) -> None:
    """An HTTP-date Retry-After gives the seconds from the wall clock to that date."""
    when = datetime.fromtimestamp(NOW + 90, tz=UTC)
    exc = make({"Retry-After": format_datetime(when, usegmt=True)})  # type: ignore[operator]
    assert retry_after_seconds(exc, wall) == pytest.approx(90)


def test_requests_error_response_is_falsy_but_read() -> None:
    """requests.Response of a 429 is falsy: the header must still be found."""
    exc = requests_error({"Retry-After": "5"})
    assert not exc.response
    assert retry_after_seconds(exc, wall) == 5.0


def test_openai_rate_limit_starts_cooldown_in_tracker(clock: FakeClock) -> None:
    """An openai RateLimitError with retry-after-ms cools the provider for exactly that long."""
    tracker = InMemoryCooldownTracker(failure_threshold=10, clock=clock, wall_clock=wall)
    assert tracker.record_failure("openai", openai_error({"retry-after-ms": "2500"})) is True
    assert tracker.cooldown_remaining("openai") == pytest.approx(2.5)


def test_aiohttp_style_headers_on_the_exception() -> None:
    """Aiohttp's ClientResponseError carries headers on the exception itself."""
    exc = Exception("429")
    exc.headers = {"Retry-After": "3"}  # type: ignore[attr-defined]
    assert retry_after_seconds(exc, wall) == 3.0


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "nan",
        "inf",
        "-5",
        "0",
        "Wed, 21 Oct 2015 07:28:00",
        "Mon, 01 Jan 2001 00:00:00 GMT",
    ],
)
def test_unusable_values_are_ignored(value: str) -> None:
    """Garbage, non-positive, naive or past dates give no hint."""
    assert retry_after_seconds(httpx_error({"Retry-After": value}), wall) is None


@pytest.mark.parametrize("value", [True, None, object(), float("nan"), -1])
def test_unusable_attribute_values_are_ignored(value: object) -> None:
    """A retry_after attribute that is not a positive number of seconds is ignored."""
    exc = Exception()
    exc.retry_after = value  # type: ignore[attr-defined]
    assert retry_after_seconds(exc, wall) is None


def test_bytes_header_value() -> None:
    """Header values given as bytes are read too."""
    exc = Exception()
    exc.headers = {"Retry-After": b"4"}  # type: ignore[attr-defined]
    assert retry_after_seconds(exc, wall) == 4.0


def test_headers_without_get_are_ignored() -> None:
    """An object that is not a mapping of headers is not read."""
    exc = Exception()
    exc.headers = ["Retry-After: 4"]  # type: ignore[attr-defined]
    assert retry_after_seconds(exc, wall) is None
