"""Reading a server's ``Retry-After`` from a provider's exception, wherever its client put it.

- a ``retry_after`` attribute, in seconds (any exception);
- ``exc.response.headers``: openai, anthropic, httpx, requests (whose error ``Response`` is
  *falsy*), google-genai and litellm; ``Retry-After`` in seconds or as an HTTP date, and the
  millisecond ``retry-after-ms`` that openai and anthropic send beside it;
- ``exc.response`` as a dict: botocore's ``ClientError``, whose
  ``["ResponseMetadata"]["HTTPHeaders"]`` holds lower-cased headers, among them AWS's
  ``x-amz-retry-after`` in milliseconds;
- ``exc.headers``: aiohttp;
- ``exc.litellm_response_headers``: litellm, for the providers it calls with its own HTTP
  code (``anthropic/...``, ``gemini/...``), whose ``exc.response`` has no headers;
- a ``google.rpc.RetryInfo`` in the error's details: Gemini's ``retryDelay`` (``"27s"``) on
  google-genai's ``APIError`` (the JSON body) and google-api-core's errors (JSON dicts from
  REST, messages from gRPC).

A hint that cannot be read is no hint: whatever a broken exception, response or header object
raises while being read, the failure is simply counted without one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, timedelta

__all__ = ["retry_after_seconds"]

# Seconds are plain ASCII decimals: float() would also take "1_000", "١٢" or "inf".
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
# A google.protobuf.Duration in JSON: "27s", "1.5s".
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)s", re.ASCII)
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _number(value: object) -> float | None:
    """Return a number of seconds from an int, float, timedelta or decimal text, if it is one.

    Huge values come back as ``inf`` (the tracker caps them at ``max_cooldown``).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, timedelta):
        return float(value.total_seconds())
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else None
    if isinstance(value, float):
        # A float of an SDK's own type may override comparisons: keep only its value.
        value = float(value)
        return None if math.isnan(value) else value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        text = value.strip()
        return float(text) if _DECIMAL.fullmatch(text) else None
    return None


def _header(headers: object, name: str) -> object:
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is None and isinstance(headers, Mapping):
        # A plain dict is case-sensitive; httpx.Headers and requests' dict are not.
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == name:
                return candidate
    return value


def _from_headers(headers: object, wall_clock: Callable[[], float]) -> float | None:
    # Precise millisecond hints first (openai and anthropic; AWS), then the standard header.
    for name in ("retry-after-ms", "x-amz-retry-after"):
        millis = _number(_header(headers, name))
        # A zero ("retry now") must not hide a usable Retry-After beside it.
        if millis is not None and millis > 0:
            return millis / 1000.0
    raw = _header(headers, "retry-after")
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    if isinstance(raw, bytes):
        raw = raw.decode("latin-1")
    if isinstance(raw, str):
        # Imported here: HTTP dates are rare, and email.utils costs milliseconds at import.
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(raw)
        if when.tzinfo is None:  # asctime ("Sun Nov  6 08:49:37 1994"): an HTTP-date is GMT
            when = when.replace(tzinfo=UTC)
        return when.timestamp() - wall_clock()
    return None


def _from_details(details: object) -> float | None:
    """Return the delay of a google.rpc.RetryInfo among an error's details, if there is one."""
    if isinstance(details, Mapping):  # google-genai: the whole JSON body of the error
        error = details.get("error")
        details = error.get("details") if isinstance(error, Mapping) else None
    if isinstance(details, (str, bytes)) or not isinstance(details, (list, tuple)):
        return None
    for detail in details:
        if isinstance(detail, Mapping):  # JSON (REST)
            if detail.get("@type") == _RETRY_INFO:
                delay = detail.get("retryDelay")
                match = _DURATION.fullmatch(delay.strip()) if isinstance(delay, str) else None
                return float(match.group(1)) if match else None
            continue
        delay = getattr(detail, "retry_delay", None)  # a RetryInfo message (gRPC)
        if delay is not None:
            seconds, nanos = getattr(delay, "seconds", None), getattr(delay, "nanos", 0)
            if isinstance(seconds, int) and isinstance(nanos, int):
                return seconds + nanos / 1e9
    return None


def _read(exc: BaseException, wall_clock: Callable[[], float]) -> float | None:
    hint = getattr(exc, "retry_after", None)
    # Most failures carry no hint at all: they cost a few attribute lookups, nothing more.
    seconds = None if hint is None else _number(hint)
    response = None if seconds is not None else getattr(exc, "response", None)
    # Most failures carry no response: they skip the Mapping check (an ABC's, not cheap).
    if response is not None:
        if isinstance(response, Mapping):  # botocore
            metadata = response.get("ResponseMetadata")
            if isinstance(metadata, Mapping):
                headers = metadata.get("HTTPHeaders")
                if headers is not None:
                    seconds = _from_headers(headers, wall_clock)
        else:
            headers = getattr(response, "headers", None)
            if headers is not None:
                seconds = _from_headers(headers, wall_clock)
    # aiohttp's headers; litellm's copy of the provider's headers when it called the provider
    # with its own HTTP code (anthropic/..., gemini/...): its exc.response is a stand-in.
    for where in ("headers", "litellm_response_headers"):
        if seconds is None:
            headers = getattr(exc, where, None)
            if headers is not None:
                seconds = _from_headers(headers, wall_clock)
    if seconds is None:
        details = getattr(exc, "details", None)
        if details is not None:
            seconds = _from_details(details)
    return seconds


def retry_after_seconds(exc: BaseException, wall_clock: Callable[[], float]) -> float | None:
    """Return the seconds a server asked us to wait before calling again, if it said so.

    Args:
        exc: the exception a provider raised.
        wall_clock: returns the current Unix time; an HTTP-date is read against it.

    Returns:
        A positive number of seconds (``inf`` for a hint too large to represent), or ``None``
        when the exception carries no usable hint: absent, unreadable, not a plain decimal,
        zero, or already past.
    """
    try:
        seconds = _read(exc, wall_clock)
        if seconds is None:
            return None
        # A plain float from here on: the caller compares it outside this guard.
        seconds = float(seconds)
        return seconds if seconds > 0 else None
    except Exception:
        return None
