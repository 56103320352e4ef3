"""Reading a server's ``Retry-After`` from a provider's exception.

Works on the errors of the openai SDK and httpx (``exc.response.headers``, an
``httpx.Headers``), requests (``exc.response.headers``, a case-insensitive dict; note that a
``requests.Response`` for an error status is *falsy*), aiohttp (``exc.headers``) and on any
exception carrying a ``retry_after`` attribute in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import timedelta

__all__ = ["retry_after_seconds"]


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, (str, bytes)):
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        try:
            seconds = float(text.strip())
        except ValueError:
            return None
    else:
        return None
    return seconds if math.isfinite(seconds) else None


def _header(headers: object, name: str) -> object:
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is None and isinstance(headers, Mapping):
        # A plain dict is case-sensitive; httpx.Headers and requests' dict are not.
        lowered = name.lower()
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == lowered:
                return candidate
    return value


def _from_headers(headers: object, wall_clock: Callable[[], float]) -> float | None:
    # openai's servers send a precise millisecond hint beside the standard header.
    millis = _number(_header(headers, "retry-after-ms"))
    if millis is not None:
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

        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return when.timestamp() - wall_clock()
    return None


def retry_after_seconds(exc: BaseException, wall_clock: Callable[[], float]) -> float | None:
    """Return the seconds a server asked us to wait before calling again, if it said so.

    Args:
        exc: the exception a provider raised.
        wall_clock: returns the current Unix time; an HTTP-date is read against it.

    Returns:
        A positive number of seconds, or ``None`` when the exception carries no usable hint
        (absent, unparsable, zero or already past).
    """
    hint = getattr(exc, "retry_after", None)
    # Most failures carry no hint at all: they cost three attribute lookups, nothing more.
    seconds = None if hint is None else _number(hint)
    if seconds is None:
        response = getattr(exc, "response", None)
        if response is not None:
            headers = getattr(response, "headers", None)
            if headers is not None:
                seconds = _from_headers(headers, wall_clock)
    if seconds is None:
        headers = getattr(exc, "headers", None)
        if headers is not None:
            seconds = _from_headers(headers, wall_clock)
    if seconds is None or seconds <= 0:
        return None
    return seconds
