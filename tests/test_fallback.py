"""The fallback strategy's rules, for sync and async routed functions alike."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    NoProvidersError,
    configure,
)
from resilient_routing.testing import FakeClock

from .harness import Harness


class Down(Exception):
    pass


class BadRequest(Exception):
    pass


def test_first_provider_serves(h: Harness) -> None:
    """The first healthy provider answers; nothing else is called."""
    result = h.routed(providers=["a", "b", "c"])()
    assert (result.response, result.provider, result.attempt) == ("ok:a", "a", 1)
    assert result.failures == () and result.skipped == ()
    assert result.was_terminus is False
    assert h.calls == ["a"]


def test_falls_over_in_order(h: Harness) -> None:
    """Failing providers are followed by the next in list order, failures kept in order."""
    a, b = Down("a down"), Down("b down")
    result = h.routed({"a": a, "b": b}, providers=["a", "b", "c"])()
    assert result.provider == "c" and result.attempt == 3 and result.was_terminus
    assert result.failures == (("a", a), ("b", b))
    assert h.calls == ["a", "b", "c"]


def test_all_failed_raises_with_failures_and_cause(h: Harness) -> None:
    """When every provider fails, AllProvidersFailedError lists them; the last is its cause."""
    errors = {n: Down(f"{n} down") for n in "abc"}
    with pytest.raises(AllProvidersFailedError) as info:
        h.routed(errors, providers=["a", "b", "c"])()
    err = info.value
    assert str(err) == "all 3 providers failed (last error: Down: c down)"
    assert err.failures == tuple((n, errors[n]) for n in "abc")
    assert err.__cause__ is errors["c"]


def test_cooling_provider_is_skipped(h: Harness, tracker: InMemoryCooldownTracker) -> None:
    """A non-terminus provider in cooldown is skipped, listed in skipped, and not counted."""
    tracker.record_failure("a", Down())
    result = h.routed(providers=["a", "b", "c"], cooldown=tracker)()
    assert result.provider == "b" and result.attempt == 1
    assert result.skipped == ("a",)
    assert h.calls == ["b"]


def test_terminus_is_attempted_despite_cooldown(
    h: Harness, tracker: InMemoryCooldownTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """Even when every provider is cooling down, the terminus is called as the last resort."""
    for n in "abc":
        tracker.record_failure(n, Down())
    caplog.set_level(logging.DEBUG, "resilient_routing")
    result = h.routed(providers=["a", "b", "c"], cooldown=tracker)()
    assert result.provider == "c" and result.was_terminus and result.attempt == 1
    assert result.skipped == ("a", "b")
    assert h.calls == ["c"]
    info = [
        r
        for r in caplog.records
        if r.message.startswith("attempting terminus provider despite cooldown")
    ]
    assert len(info) == 1 and info[0].levelno == logging.INFO
    assert info[0].message == "attempting terminus provider despite cooldown: 'c' (60 s left)"
    assert info[0].provider == "c" and info[0].cooldown_remaining == pytest.approx(60)


def test_all_in_cooldown_and_terminus_fails(h: Harness, tracker: InMemoryCooldownTracker) -> None:
    """All in cooldown and the terminus failing: the message counts the skipped apart."""
    for n in "abc":
        tracker.record_failure(n, Down())
    boom = Down("still down")
    with pytest.raises(AllProvidersFailedError) as info:
        h.routed({"c": boom}, providers=["a", "b", "c"], cooldown=tracker)()
    assert str(info.value).startswith("1 of 3 providers failed, 2 skipped in cooldown")
    assert info.value.total == 3 and info.value.skipped == ("a", "b")
    assert info.value.failures == (("c", boom),)
    assert info.value.__cause__ is boom


def test_failures_are_recorded_and_success_resets(h: Harness, clock: FakeClock) -> None:
    """Failures count toward a cooldown; a success of the provider clears its count."""
    tracker = InMemoryCooldownTracker(failure_threshold=2, cooldown=60, clock=clock)
    script: dict[str, object] = {"a": Down()}
    call = h.routed(script, providers=["a", "b"], cooldown=tracker)
    call()
    assert tracker.is_available("a")
    script.pop("a")
    call()
    script["a"] = Down()
    call()
    assert tracker.is_available("a"), "the success in between reset the consecutive count"
    call()
    assert not tracker.is_available("a")


def test_cooldown_entry_logged_once(
    h: Harness, tracker: InMemoryCooldownTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """The failure that starts a cooldown logs a WARNING, beside the failed-attempt WARNING."""
    caplog.set_level(logging.DEBUG, "resilient_routing")
    h.routed({"a": Down("x")}, providers=["a", "b"], cooldown=tracker)()
    by_message = {r.message.split(":")[0]: r for r in caplog.records}
    entering = by_message["provider entering cooldown"]
    assert entering.levelno == logging.WARNING and entering.provider == "a"
    assert entering.cooldown_remaining == pytest.approx(60)
    assert entering.message == "provider entering cooldown: 'a' for 60 s"
    failed = by_message["provider failed"]
    assert failed.levelno == logging.WARNING and failed.attempt == 1
    assert failed.is_terminus is False
    assert failed.message == "provider failed: 'a' (attempt 1 of 2): Down: x"
    ok = by_message["succeeded on fallback provider"]
    assert ok.levelno == logging.INFO and ok.provider == "b" and ok.attempt == 2
    assert ok.latency >= 0
    assert ok.message == "succeeded on fallback provider: 'b' (attempt 2)"
    starts = [r for r in caplog.records if r.message.startswith("attempting provider:")]
    assert [(r.provider, r.attempt, r.levelno) for r in starts] == [
        ("a", 1, logging.DEBUG),
        ("b", 2, logging.DEBUG),
    ]


def test_skip_logged_at_debug(
    h: Harness, tracker: InMemoryCooldownTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """Skipping a cooling provider logs at DEBUG with the time it has left."""
    tracker.record_failure("a", Down())
    caplog.set_level(logging.DEBUG, "resilient_routing")
    h.routed(providers=["a", "b"], cooldown=tracker)()
    skip = [r for r in caplog.records if r.message.startswith("skipping provider in cooldown")]
    assert len(skip) == 1 and skip[0].levelno == logging.DEBUG
    assert skip[0].message == "skipping provider in cooldown: 'a' (60 s left)"
    assert skip[0].provider == "a" and skip[0].cooldown_remaining == pytest.approx(60)


def test_no_success_log_when_nothing_failed(
    h: Harness, tracker: InMemoryCooldownTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """A skip alone is not a failure: no 'succeeded on fallback provider' record."""
    tracker.record_failure("a", Down())
    caplog.set_level(logging.DEBUG, "resilient_routing")
    h.routed(providers=["a", "b"], cooldown=tracker)()
    assert not [r for r in caplog.records if "succeeded on fallback provider" in r.message]


def test_exempt_provider_never_enters_cooldown(
    h: Harness, tracker: InMemoryCooldownTracker
) -> None:
    """An exempt provider failing forever is never recorded, so never skipped."""
    call = h.routed({"a": Down()}, providers=["a", "b"], cooldown=tracker, exempt={"a"})
    for _ in range(5):
        assert call().provider == "b"
    assert tracker.is_available("a")
    assert h.calls == ["a", "b"] * 5


def test_global_exempt_set_read_at_call_time(h: Harness, tracker: InMemoryCooldownTracker) -> None:
    """configure(exempt_providers=...) after decoration applies to the next call."""
    call = h.routed({"a": Down()}, providers=["a", "b"], cooldown=tracker)
    configure(exempt_providers={"a"})
    call()
    assert tracker.is_available("a")
    configure(exempt_providers=set())
    call()
    assert not tracker.is_available("a")


def test_function_exempt_set_overrides_global(h: Harness, tracker: InMemoryCooldownTracker) -> None:
    """A function's own exempt set replaces the global one."""
    configure(exempt_providers={"a"})
    h.routed({"a": Down()}, providers=["a", "b"], cooldown=tracker, exempt=set())()
    assert not tracker.is_available("a")


def test_exempt_provider_cooled_by_another_function_is_skipped(
    h: Harness, tracker: InMemoryCooldownTracker
) -> None:
    """Exemption affects recording only: a cooldown recorded elsewhere still applies."""
    h.routed({"a": Down()}, providers=["a", "b"], cooldown=tracker)()
    h.calls.clear()
    result = h.routed(providers=["a", "b"], cooldown=tracker, exempt={"a"})()
    assert result.skipped == ("a",) and h.calls == ["b"]


def test_exempt_terminus_failing_forever(h: Harness, tracker: InMemoryCooldownTracker) -> None:
    """An exempt terminus keeps being called and raising, never cooling down."""
    call = h.routed(
        {"a": Down(), "t": Down()}, providers=["a", "t"], cooldown=tracker, exempt={"t"}
    )
    for _ in range(3):
        with pytest.raises(AllProvidersFailedError):
            call()
    assert tracker.is_available("t") and not tracker.is_available("a")


@pytest.fixture(
    params=["class", "tuple", "predicate"],
)
def only_down(request: pytest.FixtureRequest) -> Any:
    """fallback_on in its three forms, each accepting Down and refusing BadRequest."""
    return {
        "class": Down,
        "tuple": (Down, KeyError),
        "predicate": lambda exc: isinstance(exc, Down),
    }[request.param]


def test_fallback_on_matching_falls_over(h: Harness, only_down: Any) -> None:
    """An exception matching fallback_on falls over to the next provider."""
    assert h.routed({"a": Down()}, providers=["a", "b"], fallback_on=only_down)().provider == "b"


def test_fallback_on_mismatch_propagates_unrecorded(
    h: Harness, only_down: Any, tracker: InMemoryCooldownTracker
) -> None:
    """Any other exception is re-raised at once: nothing else tried, nothing recorded."""
    bad = BadRequest("invalid prompt")
    call = h.routed({"a": bad}, providers=["a", "b"], fallback_on=only_down, cooldown=tracker)
    with pytest.raises(BadRequest) as info:
        call()
    assert info.value is bad
    assert h.calls == ["a"]
    assert tracker.is_available("a")


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_propagate_at_once(
    h: Harness, tracker: InMemoryCooldownTracker, exc: type[BaseException]
) -> None:
    """BaseExceptions that are not Exceptions are never caught, recorded or fallen over."""
    with pytest.raises(exc):
        h.routed({"a": exc}, providers=["a", "b"], cooldown=tracker)()
    assert h.calls == ["a"]
    assert tracker.is_available("a")


def test_empty_list_raises_no_providers(h: Harness) -> None:
    """An empty provider list raises NoProvidersError at call time (also a ValueError)."""
    call = h.routed(providers=[])
    with pytest.raises(NoProvidersError):
        call()
    with pytest.raises(ValueError, match="empty"):
        call()


def test_providers_callable_read_at_each_call(h: Harness) -> None:
    """A callable provider source is read at every call, so the list may change at run time."""
    current = [["a", "b"]]
    call = h.routed(providers=lambda: current[0])
    assert call().provider == "a"
    current[0] = ["z"]
    assert call().provider == "z"
    current[0] = []
    with pytest.raises(NoProvidersError):
        call()


def test_sequence_copied_at_decoration(h: Harness) -> None:
    """A provider list mutated after decoration does not change the routing."""
    providers = ["a", "b"]
    call = h.routed(providers=providers)
    providers.insert(0, "x")
    assert call().provider == "a"


def test_provider_objects_named_and_passed_unchanged(h: Harness) -> None:
    """Objects with a name are identified by it and passed to the function as they are."""

    class Client:
        def __init__(self, name: str) -> None:
            self.name = name

    clients = [Client("gemini"), Client("grok")]
    seen: list[object] = []
    result = h.routed(
        {"gemini": Down(), "grok": lambda p: seen.append(p) or "img"}, providers=clients
    )()
    assert result.provider == "grok" and result.failures[0][0] == "gemini"
    assert seen == [clients[1]]


def test_single_provider_is_its_own_terminus(h: Harness, tracker: InMemoryCooldownTracker) -> None:
    """A one-provider fallback always calls it, even cooling down, and reports 'all 1 failed'."""
    tracker.record_failure("solo", Down())
    assert h.routed(providers=["solo"], cooldown=tracker)().was_terminus
    with pytest.raises(AllProvidersFailedError, match=r"^all 1 providers failed"):
        h.routed({"solo": Down()}, providers=["solo"], cooldown=tracker)()


def test_cooldown_none_tracks_nothing(h: Harness, fresh_config: InMemoryCooldownTracker) -> None:
    """cooldown=None: no skipping and no recording, not even in the global tracker."""
    call = h.routed({"a": Down()}, providers=["a", "b"], cooldown=None)
    for _ in range(5):
        call()
    assert h.calls == ["a", "b"] * 5
    assert fresh_config.is_available("a")


def test_global_tracker_used_by_default(h: Harness, fresh_config: InMemoryCooldownTracker) -> None:
    """Without cooldown=, the global tracker records and is consulted."""
    call = h.routed({"a": Down()}, providers=["a", "b"])
    for _ in range(3):
        call()
    assert not fresh_config.is_available("a")
    h.calls.clear()
    assert call().skipped == ("a",)


def test_global_tracker_replaced_after_decoration(h: Harness, clock: FakeClock) -> None:
    """configure(cooldown=...) after decoration applies to the next call."""
    call = h.routed({"a": Down()}, providers=["a", "b"])
    new = InMemoryCooldownTracker(failure_threshold=1, clock=clock)
    configure(cooldown=new)
    call()
    assert not new.is_available("a")


def test_logger_option(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """A routed function logs to the logger it is given."""
    logger = logging.getLogger("my.app.routing")
    caplog.set_level(logging.WARNING, "my.app.routing")
    h.routed({"a": Down("x")}, providers=["a", "b"], logger=logger)()
    assert [r.name for r in caplog.records] == ["my.app.routing"]


def test_failure_log_carries_type_and_message_only(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed attempt's record names the error type and message, not a traceback."""
    caplog.set_level(logging.WARNING, "resilient_routing")
    h.routed({"a": Down("503 upstream")}, providers=["a", "b"], cooldown=None)()
    (record,) = caplog.records
    assert record.error_type == "Down" and record.error == "503 upstream"
    assert record.exc_info is None


def test_exception_whose_str_fails_is_still_logged_and_falls_over(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider exception with a broken __str__ never breaks the routing or its log."""

    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    caplog.set_level(logging.WARNING, "resilient_routing")
    assert h.routed({"a": Weird()}, providers=["a", "b"], cooldown=None)().provider == "b"
    (record,) = caplog.records
    assert record.error == "<Weird: str() failed>"
