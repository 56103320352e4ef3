"""The decision core on its own: steps in, outcomes back, no provider or tracker called.

A tiny script-driven driver plays the outcomes a test chooses, so every rule is checked on an
injected clock without I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import tenacity
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_routing import (
    AllProvidersFailedError,
    Config,
    InvalidConfigError,
    RoutingTimeoutError,
)
from resilient_routing._routing import failures
from resilient_routing._routing.decision import (
    ATTEMPT,
    CHECK,
    CLEAR,
    RAISE,
    RECORD,
    RETURN,
    TALLY,
    WAIT,
    Decision,
)
from resilient_routing._routing.options import Options
from resilient_routing._routing.route import EVERY_NAME, UNTRACKED, Context, Route
from resilient_routing.strategies import Hedged
from resilient_routing.testing import FakeClock

QUIET = logging.getLogger("resilient_routing.tests.decision")
QUIET.setLevel(logging.CRITICAL + 1)


class Down(Exception):
    """A provider failure."""


def make(
    providers: Sequence[str],
    *,
    tracked: bool = True,
    exempt: frozenset[str] = frozenset(),
    clock: FakeClock | None = None,
    want_result: bool = False,
    **options: Any,
) -> Decision:
    """Build the decision of one call, as a driver would."""
    checked = Options.of(list(providers), {"logger": QUIET, **options}, "test")
    route = Route(checked, is_async=True, name="call", clock=clock or FakeClock())
    config = Config(cooldown=None, exempt_providers=exempt, logger=QUIET)
    # An async route: the driver's tracker is the awaited one (here a stand-in: the test
    # performs the tracker steps itself).
    forms = (None, object(), EVERY_NAME) if tracked else UNTRACKED
    return Decision(route, Context(route, config, forms), want_result)


Outcome = Callable[[str], object]


def play(
    d: Decision,
    outcomes: dict[str, object],
    *,
    cooling: dict[str, float] | None = None,
    starts_cooldown: set[str] | None = None,
) -> tuple[list[tuple[str, str]], Any]:
    """Drive ``d`` to its end; return the steps taken and what the call returned or raised.

    ``outcomes``: a provider's exception (raised) or value (returned); ``cooling``: seconds
    left per provider cooling down; ``starts_cooldown``: providers whose recorded failure
    starts a cooldown.
    """
    cooling = cooling or {}
    starts_cooldown = starts_cooldown or set()
    steps: list[tuple[str, str]] = []
    step = d.start()
    while True:
        if step == CHECK:
            name = d.names[d.index]
            steps.append(("check", name))
            step = d.cooling(cooling[name]) if name in cooling else d.available()
        elif step == ATTEMPT:
            i = d.index
            name = d.names[i]
            steps.append(("attempt", name))
            outcome = outcomes.get(name, f"ok:{name}")
            if isinstance(outcome, BaseException):
                step = d.failed(i, outcome, 0.5)
            else:
                step = d.succeeded(i, outcome, 0.5)
        elif step == CLEAR:
            steps.append(("record_success", d.names[d.winner]))
            step = RETURN
        elif step == RETURN:
            return steps, d.value
        elif step == RECORD:
            name = d.names[d.index]
            steps.append(("record_failure", name))
            step = d.recorded(name in starts_cooldown, 30.0)
        elif step == TALLY:
            steps.append(("tally", ""))
            step = d.tallied([cooling.get(n, 0.0) for n in d.names])
        else:
            assert step == RAISE
            return steps, d.error


def test_falls_over_in_list_order_and_returns_the_first_answer() -> None:
    """A failure moves to the next provider; the first answer is the call's value."""
    steps, value = play(make("abc", tracked=False), {"a": Down("a")})
    assert steps == [("attempt", "a"), ("attempt", "b")]
    assert value == "ok:b"


def test_tracked_calls_ask_before_each_attempt_and_record_outcomes() -> None:
    """The tracker is asked about each provider; failures and the success are recorded."""
    steps, value = play(make("abc"), {"a": Down("a")})
    assert steps == [
        ("check", "a"),
        ("attempt", "a"),
        ("record_failure", "a"),
        ("check", "b"),
        ("attempt", "b"),
        ("record_success", "b"),
    ]
    assert value == "ok:b"


def test_cooling_provider_is_skipped_and_the_terminus_always_attempted() -> None:
    """A provider cooling down is skipped; the terminus is attempted even while cooling."""
    d = make("abc", want_result=True)
    steps, result = play(d, {}, cooling={"a": 5.0, "b": 5.0, "c": 5.0})
    assert [s for s in steps if s[0] == "attempt"] == [("attempt", "c")]
    assert result.skipped == ("a", "b")
    assert result.was_terminus and result.attempt == 1


def test_exempt_and_cooldown_on_decide_what_is_recorded() -> None:
    """Exempt providers and failures outside cooldown_on fall over without being recorded."""

    class Slow(Down):
        pass

    d = make("abcd", exempt=frozenset({"a"}), cooldown_on=lambda e: not isinstance(e, Slow))
    steps, _ = play(d, {"a": Down(), "b": Slow(), "c": Down()})
    assert [s for s in steps if s[0] == "record_failure"] == [("record_failure", "c")]


def test_every_failure_exhausts_with_the_truth() -> None:
    """All providers failing raise AllProvidersFailedError with every failure, in order."""
    errors = {n: Down(n) for n in "abc"}
    steps, error = play(make("abc"), errors, starts_cooldown={"a"})
    assert steps[-1] == ("tally", "")
    assert isinstance(error, AllProvidersFailedError)
    assert error.failures == tuple(errors.items())
    assert error.__cause__ is errors["c"]


def test_retry_after_of_exhaustion_is_the_soonest_recovery() -> None:
    """The error's retry_after is the shortest cooldown left among the providers."""
    _, error = play(make("abc"), {n: Down(n) for n in "bc"}, cooling={"a": 9.0, "c": 4.0})
    assert isinstance(error, AllProvidersFailedError)
    assert error.retry_after == 4.0


def test_an_error_outside_fallback_on_is_raised_as_it_is() -> None:
    """A failure fallback_on refuses stops the call: the very exception, unrecorded."""
    bad = ValueError("bad request")
    steps, error = play(make("abc", fallback_on=Down), {"a": bad})
    assert error is bad
    assert steps == [("check", "a"), ("attempt", "a")]


@pytest.mark.parametrize("error", [InvalidConfigError("x"), RecursionError("x")])
def test_configuration_errors_and_recursion_never_fall_over(error: Exception) -> None:
    """InvalidConfigError and RecursionError propagate, whatever fallback_on says."""
    _, raised = play(make("ab", tracked=False), {"a": error})
    assert raised is error


def test_failures_are_judged_by_their_class_however_many_classes_came_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many ordinary failure classes (remembered to judge them faster) change no verdict."""
    monkeypatch.setattr(failures, "_ORDINARY", set())
    for n in range(300):
        ordinary = type(f"Ordinary{n}", (Exception,), {})
        for _ in range(2):
            steps, result = play(make("ab", tracked=False), {"a": ordinary()})
            assert result == "ok:b" and steps[-1] == ("attempt", "b")

    class StillAConfigError(InvalidConfigError):
        pass

    for _ in range(2):
        error = StillAConfigError("x")
        _, raised = play(make("ab", tracked=False), {"a": error})
        assert raised is error
    assert len(failures._ORDINARY) <= failures._ORDINARY_MAX  # classes made at run time


class _EqualityMeta(type):
    """A metaclass defining __eq__ alone: its classes cannot be hashed."""

    def __eq__(cls, other: object) -> bool:
        return cls is other


class UnhashableClassError(Exception, metaclass=_EqualityMeta):
    pass


class Posing(Exception):
    """An exception that isinstance() sees as the class of the one it wraps."""

    def __init__(self, inner: Exception) -> None:
        super().__init__(inner)
        self.inner = inner

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self.inner)


def test_a_failure_of_an_unhashable_class_falls_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failures, "_ORDINARY", set())
    for _ in range(2):
        _, result = play(make("ab", tracked=False), {"a": UnhashableClassError()})
        assert result == "ok:b"


def test_each_failure_is_judged_as_isinstance_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception posing as another class is judged by the class it poses as, each time."""
    monkeypatch.setattr(failures, "_ORDINARY", set())
    _, result = play(make("ab", tracked=False), {"a": Posing(ValueError("x"))})
    assert result == "ok:b"
    posing = Posing(InvalidConfigError("bad"))
    _, raised = play(make("ab", tracked=False), {"a": posing})
    assert raised is posing


def test_single_attempt_reraises_the_providers_own_exception_with_a_note() -> None:
    """primary_only re-raises what the provider raised, noting which provider it was."""
    down = Down("a")
    _, error = play(make("ab", strategy="primary_only", tracked=False), {"a": down})
    assert error is down
    assert "resilient_routing: raised by provider 'a'" in down.__notes__


def test_a_retry_error_is_judged_by_its_last_attempt() -> None:
    """Below @routed, a tenacity.RetryError falls over (or not) by its last exception."""
    attempt = tenacity.Future(1)
    attempt.set_exception(ValueError("bad"))
    retry_error = tenacity.RetryError(attempt)
    _, error = play(make("ab", fallback_on=Down, tracked=False), {"a": retry_error})
    assert error is retry_error
    attempt = tenacity.Future(1)
    inner = Down("a")
    attempt.set_exception(inner)
    d = make("ab", want_result=True, tracked=False)
    _, result = play(d, {"a": tenacity.RetryError(attempt)})
    assert result.failures == (("a", inner),)


def test_max_attempts_keeps_the_last_slot_for_the_terminus() -> None:
    """With max_attempts=2 over four providers: the first available one, then the terminus."""
    d = make("abcd", max_attempts=2, tracked=False)
    steps, error = play(d, {n: Down(n) for n in "abcd"})
    assert steps == [("attempt", "a"), ("attempt", "d")]
    assert isinstance(error, AllProvidersFailedError)
    assert error.not_attempted == 2


def test_no_attempt_starts_past_the_calls_timeout() -> None:
    """Once the call's timeout has passed, the next attempt does not start."""
    clock = FakeClock(10.0)
    d = make("abc", timeout=5, clock=clock, tracked=False)
    step = d.start()
    assert step == ATTEMPT
    assert d.budget == 5.0
    clock.advance(6)
    assert d.failed(d.index, Down(), 6.0) == RAISE
    assert isinstance(d.error, RoutingTimeoutError)


def test_attempt_budget_is_the_smaller_of_attempt_timeout_and_time_left() -> None:
    """Each attempt gets min(attempt_timeout, time left); the deadline's cut is not recorded."""
    clock = FakeClock(0.0)
    d = make("abc", timeout=10, attempt_timeout=4, clock=clock)
    assert d.start() == CHECK
    assert d.available() == ATTEMPT
    assert d.budget == 4.0
    clock.advance(4)
    # attempt_timeout ended it: a provider failure like any other, recorded.
    assert d.failed(d.index, TimeoutError(), 4.0, expired=True) == RECORD
    assert d.recorded(False, 0.0) == CHECK
    clock.advance(3)
    assert d.available() == ATTEMPT
    assert d.budget == pytest.approx(3.0)
    clock.advance(3)
    # The call's deadline ended this one: the call times out, nothing recorded.
    assert d.failed(d.index, TimeoutError(), 3.0, expired=True) == RAISE
    assert isinstance(d.error, RoutingTimeoutError)


def test_hedging_waits_then_starts_the_next_provider_beside_the_first() -> None:
    """A hedged call waits hedge_delay for an answer, then starts the next provider too."""
    d = make("abc", strategy=Hedged(delay=0.2, max_hedges=1), tracked=False)
    assert d.start() == ATTEMPT
    assert d.index == 0
    assert d.started_attempt() == WAIT
    assert d.wait == 0.2
    assert d.waited() == ATTEMPT  # no answer in time: hedge
    assert d.index == 1
    assert d.started_attempt() == WAIT
    assert d.wait is None  # max_hedges reached: wait for an outcome
    assert d.failed(0, Down(), 0.3) == ATTEMPT  # a failure starts the next at once
    assert d.index == 2
    d.started_attempt()
    assert d.succeeded(1, "b", 0.25) == RETURN  # untracked: nothing to record
    assert d.value == "b"
    assert d.hedges == ("b", "c")


@pytest.mark.parametrize("delay", [0.0, 0.2])
def test_hedging_with_no_provider_left_waits_for_an_outcome_only(delay: float) -> None:
    """Every provider started: waiting ``delay`` again would only wake to find nothing to start.

    With ``delay=0`` the driver would spin on empty waits until an attempt ends.
    """
    d = make("ab", strategy=Hedged(delay=delay, max_hedges=2), tracked=False)
    assert d.start() == ATTEMPT
    assert d.started_attempt() == WAIT
    assert d.wait == delay
    assert d.waited() == ATTEMPT
    assert d.index == 1
    assert d.started_attempt() == WAIT
    assert d.wait == delay  # below max_hedges, a third provider could still come...
    assert d.waited() == WAIT
    assert d.wait is None  # ...but none is left
    assert d.failed(0, Down(), 0.3) == WAIT
    assert d.wait is None
    assert d.succeeded(1, "b", 0.4) == RETURN


def test_hedging_with_no_provider_left_still_ends_at_the_deadline() -> None:
    """Waiting for an outcome only is still bounded by the call's ``timeout``."""
    clock = FakeClock()
    d = make("ab", strategy=Hedged(delay=0.0, max_hedges=2), tracked=False, clock=clock, timeout=5)
    d.start()
    d.started_attempt()
    d.waited()
    d.started_attempt()
    clock.advance(1.0)
    assert d.waited() == WAIT
    assert d.wait == 4.0
    clock.advance(4.0)
    assert d.waited() == RAISE
    assert isinstance(d.error, RoutingTimeoutError)


@st.composite
def calls(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 5))
    names = "abcde"[:n]
    return {
        "names": names,
        "outcomes": {name: Down(name) for name in names if draw(st.booleans())},
        "cooling": {name: 5.0 for name in names if draw(st.integers(0, 3)) == 0},
        "exempt": frozenset(name for name in names if draw(st.integers(0, 3)) == 0),
        "max_attempts": draw(st.one_of(st.none(), st.integers(1, 5))),
    }


@settings(max_examples=300, deadline=None)
@given(call=calls())
def test_routing_rules_hold_for_any_call(call: dict[str, Any]) -> None:
    """Whatever the outcomes: list order, each provider once, the terminus last, caps kept."""
    names, outcomes, cooling = call["names"], call["outcomes"], call["cooling"]
    d = make(names, exempt=call["exempt"], max_attempts=call["max_attempts"])
    steps, value = play(d, outcomes, cooling=cooling)
    attempted = [name for kind, name in steps if kind == "attempt"]
    assert len(attempted) == len(set(attempted))
    assert attempted == sorted(attempted)
    assert call["max_attempts"] is None or len(attempted) <= call["max_attempts"]
    assert not set(attempted[:-1]) & set(cooling)  # only the terminus is tried while cooling
    terminus = names[-1]
    if not isinstance(value, AllProvidersFailedError):
        assert value == f"ok:{attempted[-1]}"
        assert all(name in outcomes for name in attempted[:-1])
    else:
        assert attempted[-1] == terminus
        assert [n for n, _ in value.failures] == attempted
    recorded = {name for kind, name in steps if kind == "record_failure"}
    assert recorded == {n for n in attempted if n in outcomes and n not in call["exempt"]}
