"""The runners' quick path decides exactly as the general loop does.

A routed call whose logging is silenced (and which no listener watches) is served by the
runners' quick path; with DEBUG logging on, every call takes the general loop. The same
scripted scenario run both ways must give the same responses, results, errors, calls and
tracker state.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import unittest.mock
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import tenacity
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    InvalidConfigError,
    RouteResult,
    configure,
    last_route,
    routed,
)
from resilient_routing._routing import aio, report, sync
from resilient_routing.strategies import Hedged
from resilient_routing.testing import EventRecorder, FakeClock

from .harness import Kept, assert_freed

NAMES = ("a", "b", "c", "d")


class Down(Exception):
    """A provider failure that falls over."""


class Slow(Down):
    """A failure that falls over without counting (``cooldown_on`` refuses it)."""


class BadRequest(Exception):
    """A failure outside ``fallback_on``: it propagates."""


def _raise(outcome: str, name: str) -> object:
    if outcome == "down":
        raise Down(name)
    if outcome == "slow":
        raise Slow(name)
    if outcome == "bad":
        raise BadRequest(name)
    if outcome == "config":
        raise InvalidConfigError(name)
    if outcome == "retry":
        # What a tenacity-wrapped client raises: judged by its last exception.
        attempt = tenacity.Future(1)
        attempt.set_exception(Down(name))
        raise tenacity.RetryError(attempt)
    return f"{name}:{outcome}"


def _logger(name: str, level: int) -> logging.Logger:
    logger = logging.getLogger(f"resilient_routing.test_quick.{name}")
    logger.setLevel(level)
    logger.propagate = False
    return logger


QUIET = _logger("quiet", logging.CRITICAL)
VERBOSE = _logger("verbose", logging.DEBUG)
OUTCOMES = st.sampled_from(["ok", "ok", "down", "down", "slow", "retry", "bad", "config"])


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 4))
    names = NAMES[:n]
    return {
        "names": names,
        "strategy": draw(st.sampled_from(["fallback", "primary_only", "round_robin"])),
        "threshold": draw(st.integers(1, 3)),
        "exempt": draw(st.sets(st.sampled_from(names))),
        "slow_counts": draw(st.booleans()),
        "global": draw(st.booleans()),  # the tracker and exempt set: configure()'s
        "cooling": draw(st.sets(st.sampled_from(names))),
        "calls": draw(st.lists(st.tuples(*(OUTCOMES for _ in names)), min_size=1, max_size=5)),
    }


def _run(scenario: dict[str, Any], logger: logging.Logger, mode: str) -> list[Any]:
    """Run the scenario's calls; return everything observable about them."""
    clock = FakeClock(100.0)
    tracker = InMemoryCooldownTracker(
        failure_threshold=scenario["threshold"], cooldown=10, clock=clock
    )
    for name in sorted(scenario["cooling"]):
        for _ in range(scenario["threshold"]):
            tracker.record_failure(name, Down())
    seen: list[Any] = []
    script: list[Sequence[str]] = []
    options: dict[str, Any] = {
        "providers": scenario["names"],
        "strategy": scenario["strategy"],
        "fallback_on": Down,
        "cooldown_on": None if scenario["slow_counts"] else (lambda e: not isinstance(e, Slow)),
        "logger": logger,
    }

    if scenario["global"]:
        configure(cooldown=tracker, exempt_providers=scenario["exempt"])
    else:
        options.update(cooldown=tracker, exempt=scenario["exempt"])

    def outcome(provider: str) -> object:
        seen.append(provider)
        return _raise(script[-1][scenario["names"].index(provider)], provider)

    if mode == "sync":

        @routed(**options)
        def call(provider: str) -> object:
            return outcome(provider)

        def once() -> tuple[RouteResult[Any], RouteResult[Any] | None]:
            return call.execute(), last_route()

    else:

        @routed(**options)
        async def acall(provider: str) -> object:
            await asyncio.sleep(0)
            return outcome(provider)

        async def inside() -> tuple[RouteResult[Any], RouteResult[Any] | None]:
            return await acall.execute(), last_route()

        def once() -> tuple[RouteResult[Any], RouteResult[Any] | None]:
            return asyncio.run(inside())

    observed: list[Any] = []
    for outcomes in scenario["calls"]:
        script.append(outcomes)
        seen.clear()
        try:
            result, last = once()
        except Exception as exc:  # what the call raised is what we compare
            failures = getattr(exc, "failures", ())
            observed.append(("raised", _text(exc), _described(failures)))
        else:
            observed.append(("returned", _summary(result)))
            assert last is not None and _summary(last) == _summary(result)
        observed.append(("called", list(seen)))
        observed.append(("state", [(s.name, s.failures, s.level) for s in tracker.states()]))
        clock.advance(4)
    return observed


def _text(exc: BaseException) -> str:
    if isinstance(exc, tenacity.RetryError):  # its str shows an address
        return f"RetryError({_text(exc.last_attempt.exception())})"
    return f"{type(exc).__name__}({exc})"


def _described(failures: Sequence[tuple[str, BaseException]]) -> list[tuple[str, str]]:
    return [(name, _text(exc)) for name, exc in failures]


def _summary(result: RouteResult[Any]) -> tuple[Any, ...]:
    return (
        result.response,
        result.provider,
        result.attempt,
        result.was_terminus,
        _described(result.failures),
        result.skipped,
        result.latency >= 0,
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
@settings(max_examples=150, deadline=None)
@given(scenario=scenarios())
def test_quick_path_decides_as_the_general_loop(mode: str, scenario: dict[str, Any]) -> None:
    """Same calls, results, errors and tracker state with logging silenced or at DEBUG."""
    assert _run(scenario, QUIET, mode) == _run(scenario, VERBOSE, mode)


def _quiet(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    return routed(logger=QUIET, **options)


def test_quiet_failure_is_recorded_and_reported(clock: FakeClock) -> None:
    """A failure taken quietly still counts toward the cooldown and shows in the result."""
    tracker = InMemoryCooldownTracker(failure_threshold=2, cooldown=30, clock=clock)
    down = Down("a down")

    @_quiet(providers=["a", "b", "c"], cooldown=tracker)
    def call(provider: str) -> str:
        if provider == "a":
            raise down
        return provider

    result = call.execute()
    assert (result.provider, result.attempt, result.failures) == ("b", 2, (("a", down),))
    assert [(s.name, s.failures) for s in tracker.states()] == [("a", 1)]
    assert call() == "b"
    assert tracker.cooldown_remaining("a") == 30
    last = last_route()
    assert last is not None and last.failures == (("a", down),) and last.attempt == 2


def test_quiet_failure_outside_fallback_on_propagates_unchained(clock: FakeClock) -> None:
    """An error that must propagate leaves as raised, unrecorded, with nothing chained."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, clock=clock)

    @_quiet(providers=["a", "b", "c"], cooldown=tracker, fallback_on=Down)
    def call(provider: str) -> str:
        if provider == "a":
            raise Down("a")
        raise BadRequest(provider)

    with pytest.raises(BadRequest, match="b") as info:
        call()
    assert info.value.__context__ is None
    assert [s.name for s in tracker.states()] == ["a"]


def test_quiet_exhaustion_lists_every_failure(clock: FakeClock) -> None:
    """Failures taken quietly are handed over: the error lists them all, the last is its cause."""
    errors = {n: Down(n) for n in "abc"}

    @_quiet(providers=["a", "b", "c"])
    def call(provider: str) -> str:
        raise errors[provider]

    with pytest.raises(AllProvidersFailedError) as info:
        call()
    assert info.value.failures == tuple(errors.items())
    assert info.value.__cause__ is errors["c"]


def test_quiet_failures_then_a_cooling_provider(clock: FakeClock) -> None:
    """A provider cooling down after a quiet failure: skipped, and attempts still counted."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=30, clock=clock)
    tracker.record_failure("b", Down())
    a_down = Down("a")

    @_quiet(providers=["a", "b", "c"], cooldown=tracker, exempt={"a"})
    def call(provider: str) -> str:
        if provider == "a":
            raise a_down
        return provider

    result = call.execute()
    assert (result.provider, result.attempt, result.skipped) == ("c", 2, ("b",))
    assert result.failures == (("a", a_down),)
    assert [s.name for s in tracker.states()] == ["b"]  # a is exempt


async def test_async_quick_path_awaits_an_async_tracker(clock: FakeClock) -> None:
    """An async tracker (no in-process form) is awaited by the quick path, failures included."""
    inner = InMemoryCooldownTracker(failure_threshold=1, cooldown=30, clock=clock)

    class AsyncTracker:
        async def is_available(self, name: str) -> bool:
            return inner.is_available(name)

        async def cooldown_remaining(self, name: str) -> float:
            return inner.cooldown_remaining(name)

        async def record_failure(self, name: str, exc: BaseException) -> bool:
            return inner.record_failure(name, exc)

        async def record_success(self, name: str) -> None:
            inner.record_success(name)

        async def reset(self, name: str | None = None) -> None:
            inner.reset(name)

    @_quiet(providers=["a", "b", "c"], cooldown=AsyncTracker())
    async def call(provider: str) -> str:
        if provider == "a":
            raise Down("a")
        return provider

    assert (await call.execute()).attempt == 2
    assert inner.cooldown_remaining("a") == 30
    result = await call.execute()
    assert (result.provider, result.skipped) == ("b", ("a",))


@pytest.mark.parametrize("logger", [QUIET, VERBOSE], ids=["quick", "general"])
@pytest.mark.parametrize("scenario", ["fallback", "handover", "exhausted"])
@pytest.mark.parametrize("mode", ["sync", "async", "sync hedged", "async hedged"])
def test_failures_leave_nothing_to_the_cycle_collector(
    mode: str, scenario: str, logger: logging.Logger, clock: FakeClock
) -> None:
    """The failures of a call are freed once nothing holds its result or its error.

    A frame that keeps a failure its traceback points back to would leave a reference cycle
    per fallback, for the garbage collector to find later.
    """
    refs = Kept()
    tracker = InMemoryCooldownTracker(failure_threshold=1, clock=clock)
    failing = {"fallback": "a", "handover": "a", "exhausted": "abc"}[scenario]
    if scenario == "handover":
        tracker.record_failure("b", Down())  # a fails, b is skipped, c answers

    def fail(provider: str) -> str:
        if provider in failing:
            raise refs(Down(provider))  # no local: its frame must not hold the error
        return provider

    options: dict[str, Any] = {"providers": ["a", "b", "c"], "cooldown": tracker}
    if mode.endswith("hedged"):  # a failure starts the next attempt at once
        options["strategy"] = Hedged(delay=60.0)
    if mode.startswith("sync"):
        routed_fail = routed(logger=logger, **options)(fail)

        def call() -> None:
            with contextlib.suppress(AllProvidersFailedError):
                routed_fail()

    else:

        @routed(logger=logger, **options)
        async def afail(provider: str) -> str:
            return fail(provider)

        async def suppressed() -> None:
            with contextlib.suppress(AllProvidersFailedError):
                await afail()

        def call() -> None:
            asyncio.run(suppressed())  # (then the thread's last_route() is the loop's last)

    assert_freed(call, refs)


@pytest.mark.parametrize("logger", [QUIET, VERBOSE], ids=["quick", "general"])
def test_bound_method_routes_with_its_instance(logger: logging.Logger) -> None:
    """A routed method gets its own instance, then the provider, on either path."""

    class Service:
        def __init__(self) -> None:
            self.seen: list[str] = []

        @routed(providers=["a", "b", "c"], cooldown=None, logger=logger)
        def call(self, provider: str, x: int, *, y: int = 0) -> tuple[Any, ...]:
            self.seen.append(provider)
            if provider == "a":
                raise Down(provider)
            return (self, provider, x, y)

    one, two = Service(), Service()
    assert one.call(1, y=2) == (one, "b", 1, 2)
    assert two.call.execute(3).response == (two, "b", 3, 0)
    assert (one.seen, two.seen) == (["a", "b"], ["a", "b"])


ARGUMENTS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),
    ((1,), {}),
    ((1, 2), {}),
    (((3, 4),), {}),  # one argument that is a tuple: passed as it is
    ((1,), {"y": 2}),
    ((), {"x": 1, "y": 2}),
]


@pytest.mark.parametrize(("args", "kwargs"), ARGUMENTS)
@pytest.mark.parametrize("first", ["answers", "fails"])
@pytest.mark.parametrize("logger", [QUIET, VERBOSE], ids=["quick", "general"])
@pytest.mark.parametrize("mode", ["sync", "async", "method"])
def test_every_provider_gets_the_arguments_as_given(
    mode: str, args: tuple[Any, ...], kwargs: dict[str, Any], first: str, logger: logging.Logger
) -> None:
    """Whatever the call's shape, each attempt gets the provider and exactly its arguments."""
    seen: list[tuple[Any, ...]] = []
    route = routed(providers=["a", "b"], cooldown=None, logger=logger)

    def answer(provider: str, *args: Any, **kwargs: Any) -> str:
        seen.append((provider, args, kwargs))
        if provider == "a" and first == "fails":
            raise Down(provider)
        return provider

    async def aanswer(provider: str, *args: Any, **kwargs: Any) -> str:
        return answer(provider, *args, **kwargs)

    class Client:
        @route
        def call(self, provider: str, *args: Any, **kwargs: Any) -> str:
            assert isinstance(self, Client)
            return answer(provider, *args, **kwargs)

    if mode == "sync":
        got = route(answer)(*args, **kwargs)
    elif mode == "async":
        got = asyncio.run(route(aanswer)(*args, **kwargs))
    else:
        got = Client().call(*args, **kwargs)
    assert got == ("a" if first == "answers" else "b")
    tried = ["a"] if first == "answers" else ["a", "b"]
    assert seen == [(name, args, kwargs) for name in tried]


def test_plain_successes_build_no_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast lane serves a first choice that answers; a failure goes to the decision core."""

    def no_decision(*args: object) -> None:
        raise AssertionError("the decision core ran")

    monkeypatch.setattr(sync, "Decision", no_decision)
    monkeypatch.setattr(sync, "new_decision", no_decision)  # the fast lane's hand-over

    def fail_a(provider: str) -> str:
        if provider == "a":
            raise Down(provider)
        return provider

    assert _quiet(providers=["b", "c"])(fail_a).execute().attempt == 1
    assert _quiet(providers=["b", "c"], strategy="primary_only")(fail_a)() == "b"
    assert _quiet(providers=["b", "c"], strategy="round_robin")(fail_a)() in ("b", "c")
    with pytest.raises(AssertionError, match="decision core"):
        _quiet(providers=["a", "b", "c"])(fail_a)()
    with pytest.raises(AssertionError, match="decision core"):
        routed(providers=["b", "c"], logger=VERBOSE)(fail_a)()


async def test_async_plain_successes_build_no_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the sync lane: a failure of the first choice goes to the decision core."""

    def no_decision(*args: object) -> None:
        raise AssertionError("the decision core ran")

    monkeypatch.setattr(aio, "Decision", no_decision)
    monkeypatch.setattr(aio, "new_decision", no_decision)  # the fast lane's hand-over

    async def fail_a(provider: str) -> str:
        if provider == "a":
            raise Down(provider)
        return provider

    assert (await _quiet(providers=["b", "c"])(fail_a).execute()).attempt == 1
    with pytest.raises(AssertionError, match="decision core"):
        await _quiet(providers=["a", "b", "c"])(fail_a)()
    with pytest.raises(AssertionError, match="decision core"):
        await routed(providers=["b", "c"], logger=VERBOSE)(fail_a)()


@pytest.mark.parametrize("logger", [QUIET, VERBOSE], ids=["quick", "general"])
def test_a_tracker_subclass_is_asked_about_every_provider(
    logger: logging.Logger, clock: FakeClock
) -> None:
    """A tracker overriding is_available/record_success is asked, never second-guessed."""
    asked: list[tuple[str, str]] = []

    class Maintenance(InMemoryCooldownTracker):
        def is_available(self, name: str) -> bool:
            asked.append(("is_available", name))
            return name != "a" and super().is_available(name)

        def record_success(self, name: str) -> None:
            asked.append(("record_success", name))
            super().record_success(name)

    @routed(providers=["a", "b"], cooldown=Maintenance(clock=clock), logger=logger)
    def call(provider: str) -> str:
        return provider

    result = call.execute()
    assert (result.provider, result.skipped) == ("b", ("a",))
    assert ("record_success", "b") in asked


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_quiet_failures_follow_the_global_tracker_and_exempt_set(
    mode: str, clock: FakeClock
) -> None:
    """With neither named by the function, a quiet failure uses configure()'s, read per call."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=30, clock=clock)
    configure(cooldown=tracker, exempt_providers={"a"})

    def fail_a(provider: str) -> str:
        if provider == "a":
            raise Down(provider)
        return provider

    if mode == "sync":
        call: Callable[[], object] = _quiet(providers=["a", "b"])(fail_a)
    else:

        @_quiet(providers=["a", "b"])
        async def afail(provider: str) -> str:
            return fail_a(provider)

        def call() -> object:
            return asyncio.run(afail())

    assert call() == "b"
    assert tracker.states() == []  # a is exempt
    configure(exempt_providers=())
    assert call() == "b"
    assert [s.name for s in tracker.states()] == ["a"]
    other = InMemoryCooldownTracker(clock=clock)
    configure(cooldown=other)
    assert call() == "b"
    assert [s.name for s in other.states()] == ["a"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_plain_calls_build_no_result_and_no_log_record(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain call builds neither a RouteResult nor a log record; .execute() builds one."""
    built: list[str] = []
    real_make_record = logging.Logger.makeRecord

    def make_record(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        built.append("record")
        return real_make_record(self, *args, **kwargs)

    class CountedResult(RouteResult[Any]):
        def __init__(self, **fields: Any) -> None:
            built.append("result")
            super().__init__(**fields)

    monkeypatch.setattr(logging.Logger, "makeRecord", make_record)
    monkeypatch.setattr(report, "_result_class", lambda: CountedResult)

    def answer(provider: str) -> str:
        return provider

    async def aanswer(provider: str) -> str:
        return provider

    # The default logger, enabled at WARNING: nothing on the happy path is logged.
    if mode == "sync":
        fn = routed(providers=["a", "b"])(answer)
        for _ in range(100):
            assert fn() == "a"
        assert built == []
        assert fn.execute().provider == "a"
    else:
        afn = routed(providers=["a", "b"])(aanswer)

        async def calls() -> None:
            for _ in range(100):
                assert await afn() == "a"
            assert built == []
            assert (await afn.execute()).provider == "a"

        asyncio.run(calls())
    assert built == ["result"]


@pytest.mark.parametrize("how", ["class patch", "instance attribute"])
def test_a_replaced_tracker_method_is_asked(how: str, clock: FakeClock) -> None:
    """A patched is_available (on the class, or on an instance) is asked for every provider."""

    class Plain(InMemoryCooldownTracker):  # no __slots__: instances take attributes
        pass

    tracker = Plain(clock=clock)
    with contextlib.ExitStack() as stack:
        if how == "class patch":
            stack.enter_context(
                unittest.mock.patch.object(
                    InMemoryCooldownTracker, "is_available", lambda self, name: name != "a"
                )
            )
        else:
            tracker.is_available = lambda name: name != "a"  # type: ignore[method-assign]

        @_quiet(providers=["a", "b"], cooldown=tracker)
        def call(provider: str) -> str:
            return provider

        result = call.execute()
    assert (result.provider, result.skipped) == ("b", ("a",))


class Asking:
    """A tracker of the user's own (every name is asked about) that logs what it is asked."""

    def __init__(self, cooling: str) -> None:
        self.cooling = cooling
        self.asked: list[tuple[str, str]] = []

    def is_available(self, name: str) -> bool:
        self.asked.append(("is_available", name))
        return name != self.cooling

    def cooldown_remaining(self, name: str) -> float:
        self.asked.append(("cooldown_remaining", name))
        return 5.0 if name == self.cooling else 0.0

    def record_failure(self, name: str, exc: BaseException) -> bool:
        return False

    def record_success(self, name: str) -> None:
        self.asked.append(("record_success", name))

    def reset(self, name: str | None = None) -> None:
        pass


EXPECTED_ASKS = [
    ("is_available", "a"),
    ("cooldown_remaining", "a"),
    ("is_available", "b"),
    ("record_success", "b"),
]


def test_a_first_choice_cooling_down_is_asked_about_once() -> None:
    """The lane hands what it learned to the decision: a shared tracker is a round trip."""
    tracker = Asking(cooling="a")

    @routed(providers=["a", "b"], cooldown=tracker)
    def call(provider: str) -> str:
        return provider

    assert call.execute().skipped == ("a",)
    assert tracker.asked == EXPECTED_ASKS


async def test_async_a_first_choice_cooling_down_is_asked_about_once() -> None:
    tracker = Asking(cooling="a")

    @routed(providers=["a", "b"], cooldown=tracker)
    async def call(provider: str) -> str:
        return provider

    assert await call() == "b"
    assert tracker.asked == EXPECTED_ASKS


def test_a_terminus_cooling_down_handed_over_is_still_attempted() -> None:
    tracker = Asking(cooling="a")

    @routed(providers=["a"], cooldown=tracker)
    def call(provider: str) -> str:
        return provider

    assert call() == "a"


class Unrecordable(Asking):
    """Its success cannot be recorded (the user's backend is down)."""

    def record_success(self, name: str) -> None:
        raise RuntimeError("tracker down")


def test_a_success_that_cannot_be_recorded_is_no_success() -> None:
    """Listeners hear it end with what it raised; last_route() keeps the last that returned."""

    @routed(providers=["x"], cooldown=None)
    def before(provider: str) -> str:
        return provider

    rec = EventRecorder()

    @routed(providers=["a", "b"], cooldown=Unrecordable(cooling=""), listeners=[rec])
    def call(provider: str) -> str:
        return provider

    before()
    with pytest.raises(RuntimeError, match="tracker down"):
        call()
    assert rec.last("call_finished").outcome == "propagated"
    route = last_route()
    assert route is not None and route.provider == "x"


async def test_async_a_success_that_cannot_be_recorded_is_no_success() -> None:
    rec = EventRecorder()

    @routed(providers=["a", "b"], cooldown=Unrecordable(cooling=""), listeners=[rec])
    async def call(provider: str) -> str:
        return provider

    with pytest.raises(RuntimeError, match="tracker down"):
        await call()
    assert rec.last("call_finished").outcome == "propagated"
    assert last_route() is None  # a new task: nothing returned in it


class Maintenance(InMemoryCooldownTracker):
    """A tracker whose ``is_available`` alone takes a provider out (a maintenance window)."""

    def is_available(self, name: str) -> bool:
        return name != "a" and super().is_available(name)


@pytest.mark.parametrize("listening", [False, True], ids=["quiet", "a listener"])
def test_a_tracker_replacing_is_available_alone_is_asked_that_with_or_without_listeners(
    listening: bool,
) -> None:
    """Listeners hear of probes through ``admit``: never the base one, going round the override."""
    listeners = [EventRecorder()] if listening else []

    @routed(providers=["a", "b"], cooldown=Maintenance(), listeners=listeners)
    def call(provider: str) -> str:
        return provider

    assert call() == "b"


class PredicateBug(Exception):
    """What a buggy fallback_on or cooldown_on raises."""


def _predicate_bug(exc: Exception) -> bool:
    raise PredicateBug("the predicate failed")


@pytest.mark.parametrize("option", ["fallback_on", "cooldown_on"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_error_judging_the_first_failure_is_raised_as_it_is(mode: str, option: str) -> None:
    """A predicate that raises on the lane's failure: its error, not chained to that failure.

    The same as when the decision core judges a later failure: what the caller sees does not
    depend on which path took the call.
    """
    options: dict[str, Any] = {option: _predicate_bug, "logger": QUIET}
    options["cooldown"] = InMemoryCooldownTracker() if option == "cooldown_on" else None

    def fail_first(provider: str) -> str:
        if provider == "a":
            raise Down("a")
        return provider

    if mode == "sync":
        routed_fn = routed(providers=["a", "b"], **options)(fail_first)
        with pytest.raises(PredicateBug) as info:
            routed_fn()
    else:

        @routed(providers=["a", "b"], **options)
        async def afail_first(provider: str) -> str:
            return fail_first(provider)

        with pytest.raises(PredicateBug) as info:
            asyncio.run(afail_first())
    assert info.value.__context__ is None


class _BadSecondChoice:
    """A buggy strategy: its second choice is no provider's index."""

    def order(self, providers: Sequence[Any]) -> list[int]:
        return [0, 7]


def test_a_strategy_error_after_the_first_failure_leaves_no_cycle() -> None:
    """The decision raising on the lane's failure frees that failure with the error."""
    refs = Kept()

    @routed(providers=["a", "b", "c"], strategy=_BadSecondChoice(), cooldown=None, logger=QUIET)
    def call(provider: str) -> str:
        if provider == "a":
            raise refs(Down("a"))  # no local: this frame must not hold the error
        return provider

    gc.collect()
    gc.disable()
    try:
        with pytest.raises(InvalidConfigError, match="7") as info:
            call()
        assert info.value.__context__ is None
        del info
        assert refs and refs[0]() is None
    finally:
        gc.enable()
