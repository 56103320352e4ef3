"""The cooldown tracker contract, run against every backend (in-memory, Redis, async Redis)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import tenacity

from resilient_routing.testing import FakeClock

from .trackers import Backend, SyncTracker


class Boom(Exception):
    pass


class RateLimited(Exception):
    def __init__(self, retry_after: object) -> None:
        super().__init__("429 too many requests")
        self.retry_after = retry_after


class _Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def __bool__(self) -> bool:
        # requests.Response is falsy for error statuses: the tracker must not test truthiness.
        return False


class HTTPError(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("HTTP 503")
        self.response = _Response(headers)


@pytest.fixture
def make(
    backend: Backend, clock: FakeClock, wall_clock: Callable[[], float]
) -> Callable[..., SyncTracker]:
    def make(**policy: Any) -> SyncTracker:
        policy.setdefault("failure_threshold", 3)
        policy.setdefault("cooldown", 30.0)
        policy.setdefault("max_cooldown", 300.0)
        return backend.make(clock=clock, wall_clock=wall_clock, **policy)

    return make


def fail(
    tracker: SyncTracker, name: str, times: int, exc: BaseException | None = None
) -> list[bool]:
    return [tracker.record_failure(name, exc or Boom("down")) for _ in range(times)]


def test_unknown_provider_is_available(make: Callable[..., SyncTracker]) -> None:
    """A provider the tracker never saw is available with no cooldown left."""
    t = make()
    assert t.is_available("a") is True
    assert t.cooldown_remaining("a") == 0.0


def test_threshold_failures_start_one_cooldown(make: Callable[..., SyncTracker]) -> None:
    """Only the failure that reaches the threshold reports that it started the cooldown."""
    t = make(failure_threshold=3, cooldown=30)
    assert fail(t, "a", 3) == [False, False, True]
    assert t.is_available("a") is False
    assert t.cooldown_remaining("a") == pytest.approx(30.0, abs=0.01)


def test_failures_during_cooldown_do_not_start_another(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    """Failures during a cooldown return False and leave its end where it was."""
    t = make(failure_threshold=1, cooldown=30)
    assert t.record_failure("a", Boom()) is True
    clock.advance(10)
    assert fail(t, "a", 5) == [False] * 5
    assert t.cooldown_remaining("a") == pytest.approx(20.0, abs=0.01)


def test_cooldown_ends_with_a_fresh_failure_count(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    """When the cooldown is over the provider is available and needs a full threshold again."""
    t = make(failure_threshold=2, cooldown=30)
    fail(t, "a", 2)
    clock.advance(29.9)
    assert t.is_available("a") is False
    clock.advance(0.1)
    assert t.is_available("a") is True
    assert t.cooldown_remaining("a") == 0.0
    assert t.record_failure("a", Boom()) is False
    assert t.is_available("a") is True


def test_consecutive_cooldowns_grow_up_to_the_cap(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    """A provider that keeps failing after each cooldown cools down longer, never past the cap."""
    t = make(failure_threshold=1, cooldown=10, growth=2, max_cooldown=35)
    lengths = []
    for _ in range(4):
        assert t.record_failure("a", Boom()) is True
        lengths.append(t.cooldown_remaining("a"))
        clock.advance(lengths[-1])
    assert lengths == pytest.approx([10, 20, 35, 35], abs=0.01)


def test_a_custom_backoff_stops_growing_after_32_cooldowns(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    """Past 32 consecutive cooldowns the last length repeats, on every backend alike."""
    t = make(failure_threshold=1, backoff=tenacity.wait_incrementing(1, 1), max_cooldown=1000)
    lengths = []
    for _ in range(40):
        assert t.record_failure("a", Boom()) is True
        lengths.append(t.cooldown_remaining("a"))
        clock.advance(lengths[-1])
    assert lengths == pytest.approx([*range(1, 33), *[32] * 8], abs=0.01)


def test_success_resets_failures_and_growth(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    """A success clears the consecutive-failure count and brings cooldowns back to the base."""
    t = make(failure_threshold=2, cooldown=10, growth=3)
    fail(t, "a", 1)
    t.record_success("a")
    assert fail(t, "a", 1) == [False]
    assert fail(t, "a", 1) == [True]
    clock.advance(10)
    assert fail(t, "a", 2) == [False, True]
    assert t.cooldown_remaining("a") == pytest.approx(30, abs=0.01)
    clock.advance(30)
    t.record_success("a")
    fail(t, "a", 2)
    assert t.cooldown_remaining("a") == pytest.approx(10, abs=0.01)


def test_growth_of_one_keeps_cooldowns_constant(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    """growth=1 disables growth."""
    t = make(failure_threshold=1, cooldown=7, growth=1)
    for _ in range(3):
        assert t.record_failure("a", Boom()) is True
        assert t.cooldown_remaining("a") == pytest.approx(7, abs=0.01)
        clock.advance(7)


def test_success_of_a_provider_in_cooldown_ends_it(make: Callable[..., SyncTracker]) -> None:
    """A success (the terminus answering despite its cooldown) proves it healthy again."""
    t = make(failure_threshold=1)
    t.record_failure("a", Boom())
    t.record_success("a")
    assert t.is_available("a") is True


@pytest.mark.parametrize("hint", [12, 12.0, "12", timedelta(seconds=12)])
def test_retry_after_attribute_starts_that_cooldown_at_once(
    make: Callable[..., SyncTracker], hint: object
) -> None:
    """A retry_after attribute (seconds) starts that cooldown at once, whatever the threshold."""
    t = make(failure_threshold=5, cooldown=30)
    assert t.record_failure("a", RateLimited(hint)) is True
    assert t.cooldown_remaining("a") == pytest.approx(12, abs=0.01)


def test_retry_after_is_capped(make: Callable[..., SyncTracker]) -> None:
    """A server asking for longer than max_cooldown gets max_cooldown."""
    t = make(max_cooldown=60)
    t.record_failure("a", RateLimited(3600))
    assert t.cooldown_remaining("a") == pytest.approx(60, abs=0.01)


@pytest.mark.parametrize("header", ["Retry-After", "retry-after", "RETRY-AFTER"])
def test_retry_after_header_in_seconds(make: Callable[..., SyncTracker], header: str) -> None:
    """A Retry-After header on exc.response (any case) starts a cooldown of that length."""
    t = make(failure_threshold=5)
    assert t.record_failure("a", HTTPError({header: "7"})) is True
    assert t.cooldown_remaining("a") == pytest.approx(7, abs=0.01)


def test_retry_after_http_date_is_read_against_the_wall_clock(
    make: Callable[..., SyncTracker], wall_clock: Callable[[], float]
) -> None:
    """A Retry-After HTTP date gives the seconds between the wall clock and that date."""
    when = datetime.fromtimestamp(wall_clock() + 45, tz=UTC)
    t = make(failure_threshold=5)
    assert t.record_failure("a", HTTPError({"Retry-After": format_datetime(when, usegmt=True)}))
    assert t.cooldown_remaining("a") == pytest.approx(45, abs=1.0)


def test_retry_after_ms_header(make: Callable[..., SyncTracker]) -> None:
    """The openai SDK's retry-after-ms header is honoured with millisecond precision."""
    t = make(failure_threshold=5)
    assert t.record_failure("a", HTTPError({"retry-after-ms": "1500", "retry-after": "9"}))
    assert t.cooldown_remaining("a") == pytest.approx(1.5, abs=0.01)


@pytest.mark.parametrize("headers", [{"Retry-After": "soon"}, {"Retry-After": "0"}, {}])
def test_unusable_retry_after_counts_as_an_ordinary_failure(
    make: Callable[..., SyncTracker], headers: dict[str, str]
) -> None:
    """A missing, zero or unparsable Retry-After leaves the threshold rule in charge."""
    t = make(failure_threshold=2)
    assert fail(t, "a", 2, HTTPError(headers)) == [False, True]


def test_retry_after_during_a_cooldown_may_lengthen_it(
    make: Callable[..., SyncTracker], clock: FakeClock
) -> None:
    """A server's longer Retry-After during a cooldown extends it (without a new start)."""
    t = make(failure_threshold=1, cooldown=10)
    t.record_failure("a", Boom())
    assert t.record_failure("a", RateLimited(60)) is False
    assert t.cooldown_remaining("a") == pytest.approx(60, abs=0.01)
    assert t.record_failure("a", RateLimited(5)) is False
    assert t.cooldown_remaining("a") == pytest.approx(60, abs=0.01)


def test_providers_are_independent(make: Callable[..., SyncTracker]) -> None:
    """One provider's failures never affect another's state."""
    t = make(failure_threshold=1)
    t.record_failure("a", Boom())
    assert t.is_available("b") is True
    assert t.record_failure("b", Boom()) is True


def test_reset_one_or_all(make: Callable[..., SyncTracker]) -> None:
    """reset(name) forgets one provider, reset() every provider."""
    t = make(failure_threshold=1)
    for name in ("a", "b", "c"):
        t.record_failure(name, Boom())
    t.reset("a")
    assert [t.is_available(n) for n in "abc"] == [True, False, False]
    t.reset()
    assert [t.is_available(n) for n in "abc"] == [True, True, True]
    assert fail(t, "b", 1) == [True]
