"""Retry-After as real HTTP client libraries deliver it on their errors."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import openai
import pytest
import requests

from resilient_routing import InMemoryCooldownTracker, routed
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


@pytest.mark.parametrize(
    "form",
    ["%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"],
    ids=["IMF-fixdate", "RFC 850", "asctime"],
)
def test_every_http_date_form_is_read_as_gmt(form: str) -> None:
    """RFC 9110 has recipients accept the three HTTP-date forms; asctime names no zone."""
    when = datetime.fromtimestamp(NOW + 90, tz=UTC)
    exc = httpx_error({"Retry-After": when.strftime(form)})
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


def test_litellm_headers_beside_a_stand_in_response() -> None:
    """The providers litellm calls itself: headers in litellm_response_headers.

    (Its real errors are in tests/test_sdk_examples.py: importing litellm here would change
    pydantic's warnings for the whole session.)
    """
    request = httpx.Request("POST", "https://api.anthropic.test/v1/messages")
    exc = Exception("rate limited")
    exc.response = httpx.Response(429, request=request)  # type: ignore[attr-defined]
    exc.litellm_response_headers = httpx.Headers({"retry-after": "7"})  # type: ignore[attr-defined]
    assert retry_after_seconds(exc, wall) == 7.0


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


# -- hints that cannot be read, huge hints, and forms that are not seconds ---------------


class _Exploding:
    """An object whose every attribute read raises (a broken SDK object)."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"cannot read {name}")


class _RaisingResponse(Exception):
    @property
    def response(self) -> object:
        raise RuntimeError("the response is gone")


class _RaisingHeaders:
    def get(self, name: str) -> object:
        raise KeyError(name)


@pytest.mark.parametrize(
    "make",
    [
        _RaisingResponse,
        lambda: _with(response=_Exploding()),
        lambda: _with(headers=_RaisingHeaders()),
        lambda: _with(details=_Exploding()),
    ],
    ids=["response property raises", "response raises", "headers.get raises", "details raise"],
)
def test_a_hint_that_cannot_be_read_is_no_hint(make: Any) -> None:
    """Whatever a broken exception raises while its hint is read, there is simply no hint."""
    assert retry_after_seconds(make(), wall) is None


def _with(**attributes: object) -> Exception:
    exc = Exception("429")
    for name, value in attributes.items():
        setattr(exc, name, value)
    return exc


def test_a_broken_hint_never_breaks_the_routed_call(clock: FakeClock) -> None:
    """A provider whose error cannot be read still falls over to the next provider."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, clock=clock)

    @routed(providers=["a", "b"], cooldown=tracker)
    def call(provider: str) -> str:
        if provider == "a":
            raise _RaisingResponse("429")
        return provider

    assert call() == "b"
    assert tracker.cooldown_remaining("a") == 30  # counted, without a hint


class _UncomparableFloat(float):
    """A float of an SDK's own whose comparisons raise."""

    def __gt__(self, other: object) -> bool:
        raise TypeError("not comparable")

    __lt__ = __ge__ = __le__ = __gt__


def test_a_float_hint_that_cannot_be_compared_is_read_as_a_plain_float(
    clock: FakeClock,
) -> None:
    """A float subclass is read for its value: its own comparisons never run."""
    tracker = InMemoryCooldownTracker(max_cooldown=120, clock=clock, wall_clock=wall)

    @routed(providers=["a", "b"], cooldown=tracker)
    def call(provider: str) -> str:
        if provider == "a":
            raise _with(retry_after=_UncomparableFloat(45.0))
        return provider

    assert call() == "b"
    assert tracker.cooldown_remaining("a") == 45


@pytest.mark.parametrize("millis", ["0", 0, -5])
def test_a_zero_millisecond_hint_leaves_retry_after_to_be_read(millis: object) -> None:
    """``retry-after-ms: 0`` is no hint: the standard header beside it still counts."""
    exc = _with(headers={"retry-after-ms": millis, "retry-after": "20"})
    assert retry_after_seconds(exc, wall) == 20.0


@pytest.mark.parametrize("huge", [10**400, float("inf"), "9" * 400])
def test_huge_hints_are_capped_at_max_cooldown(huge: object, clock: FakeClock) -> None:
    """A Retry-After too large for a float cools the provider for max_cooldown."""
    tracker = InMemoryCooldownTracker(max_cooldown=120, clock=clock, wall_clock=wall)
    exc = (
        _with(retry_after=huge) if not isinstance(huge, str) else httpx_error({"Retry-After": huge})
    )
    assert tracker.record_failure("a", exc) is True
    assert tracker.cooldown_remaining("a") == 120


@pytest.mark.parametrize(
    "value", ["1_000", "\u0661\u0662", "\uff11\uff12", "0x10", "1e3", "+5", " 5 s"]
)
def test_only_plain_ascii_decimals_are_seconds(value: str) -> None:
    """Numeric forms float() would take but HTTP does not are no hint."""
    assert retry_after_seconds(_with(headers={"Retry-After": value}), wall) is None
    assert retry_after_seconds(_with(retry_after=value), wall) is None


def test_decimal_seconds_are_read() -> None:
    """Plain decimals with a fraction are read (some servers send them)."""
    assert retry_after_seconds(httpx_error({"Retry-After": " 2.5 "}), wall) == 2.5


# -- where other clients put the hint ----------------------------------------------------


def botocore_error(headers: dict[str, str]) -> Exception:
    import botocore.exceptions

    return botocore.exceptions.ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 429, "HTTPHeaders": headers},
        },
        "Converse",
    )


def test_botocore_client_error_headers() -> None:
    """Botocore's ClientError keeps lower-cased headers in its response dict."""
    assert retry_after_seconds(botocore_error({"retry-after": "5"}), wall) == 5.0


def test_aws_millisecond_hint() -> None:
    """AWS's x-amz-retry-after is in milliseconds."""
    assert retry_after_seconds(botocore_error({"x-amz-retry-after": "1500"}), wall) == 1.5


def test_botocore_error_without_hint() -> None:
    """A ClientError whose headers hold no hint gives none."""
    assert retry_after_seconds(botocore_error({"content-type": "application/json"}), wall) is None


GEMINI_429 = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"},
        ],
    }
}


def test_google_genai_retry_info() -> None:
    """google-genai's APIError carries Gemini's RetryInfo in its JSON body."""
    from google.genai import errors

    response = httpx.Response(429, request=httpx.Request("POST", "https://gemini.test/v1"))
    exc = errors.ClientError(429, GEMINI_429, response)
    assert retry_after_seconds(exc, wall) == 27.0


def test_google_api_core_rest_retry_info() -> None:
    """google-api-core's REST errors keep the JSON details, RetryInfo among them."""
    import json

    from google.api_core import exceptions

    response = requests.Response()
    response.status_code = 429
    response._content = json.dumps(GEMINI_429).encode()
    response.request = requests.Request("POST", "https://gemini.test/v1").prepare()
    exc = exceptions.from_http_response(response)
    assert isinstance(exc, exceptions.TooManyRequests)
    assert retry_after_seconds(exc, wall) == 27.0


def test_google_api_core_grpc_retry_info() -> None:
    """google-api-core's gRPC errors carry RetryInfo messages (a Duration)."""
    from google.api_core import exceptions
    from google.protobuf import duration_pb2
    from google.rpc import error_details_pb2

    info = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=3, nanos=5 * 10**8)
    )
    exc = exceptions.ResourceExhausted("quota", details=[info])
    assert retry_after_seconds(exc, wall) == 3.5


def test_retry_info_of_another_shape_is_no_hint() -> None:
    """A RetryInfo whose delay is not a Duration gives no hint."""
    exc = _with(details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": 5}])
    assert retry_after_seconds(exc, wall) is None
    assert retry_after_seconds(_with(details="retry in 5s"), wall) is None


def test_gemini_hint_cools_the_provider(clock: FakeClock) -> None:
    """A Gemini 429 cools the provider for its retryDelay, whatever the threshold."""
    from google.genai import errors

    tracker = InMemoryCooldownTracker(failure_threshold=10, clock=clock, wall_clock=wall)
    response = httpx.Response(429, request=httpx.Request("POST", "https://gemini.test/v1"))
    assert tracker.record_failure("gemini", errors.ClientError(429, GEMINI_429, response))
    assert tracker.cooldown_remaining("gemini") == 27
