"""What is particular to the in-memory tracker: threads, memory bound, validation, a model."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import tenacity
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from resilient_routing import InMemoryCooldownTracker, InvalidConfigError
from resilient_routing.testing import FakeClock


class Down(Exception):
    pass


def test_one_cooldown_started_under_many_threads() -> None:
    """16 threads failing one provider at once: exactly one call reports the cooldown start."""
    tracker = InMemoryCooldownTracker(failure_threshold=5, cooldown=60)
    started: list[bool] = []
    barrier = threading.Barrier(16)
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        local = [tracker.record_failure("a", Down()) for _ in range(200)]
        with lock:
            started.extend(local)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert started.count(True) == 1
    assert not tracker.is_available("a")


def test_concurrent_successes_and_failures_keep_state_consistent() -> None:
    """Readers, failures and successes racing never raise nor corrupt the state."""
    tracker = InMemoryCooldownTracker(failure_threshold=3, cooldown=1e-6)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for i in range(2000):
                name = f"p{(i + seed) % 7}"
                if i % 3:
                    tracker.record_failure(name, Down())
                else:
                    tracker.record_success(name)
                tracker.is_available(name)
                tracker.cooldown_remaining(name)
        except BaseException as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_memory_bounded_by_max_entries(clock: FakeClock) -> None:
    """A million distinct failing names keep at most max_entries states; recent ones survive."""
    tracker = InMemoryCooldownTracker(
        failure_threshold=1, cooldown=60, clock=clock, max_entries=1000
    )
    for i in range(1_000_000):
        tracker.record_failure(f"p{i}", Down())
    assert len(tracker._state) == 1000
    assert not tracker.is_available("p999999")
    assert tracker.is_available("p0")


def test_successes_leave_no_state() -> None:
    """Providers that succeed cost no memory."""
    tracker = InMemoryCooldownTracker()
    for i in range(1000):
        tracker.record_failure(f"p{i}", Down())
        tracker.record_success(f"p{i}")
        tracker.record_success(f"q{i}")
    assert tracker._state == {}


def test_cooldowns_lists_cooling_providers(clock: FakeClock) -> None:
    """cooldowns() reports which providers are cooling down and for how long."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=30, clock=clock)
    tracker.record_failure("a", Down())
    clock.advance(10)
    tracker.record_failure("b", Down())
    tracker.record_failure("c", Down())
    tracker.record_success("c")
    assert tracker.cooldowns() == {"a": 20.0, "b": 30.0}
    clock.advance(20)
    assert tracker.cooldowns() == {"b": 10.0}


def test_custom_tenacity_backoff(clock: FakeClock) -> None:
    """A tenacity wait strategy sets the length of the N-th consecutive cooldown."""
    tracker = InMemoryCooldownTracker(
        failure_threshold=1,
        max_cooldown=100,
        backoff=tenacity.wait_incrementing(start=5, increment=10),
        clock=clock,
    )
    lengths = []
    for _ in range(3):
        tracker.record_failure("a", Down())
        lengths.append(tracker.cooldown_remaining("a"))
        clock.advance(lengths[-1])
    assert lengths == [5, 15, 25]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be an int >= 1"),
        ({"failure_threshold": 2.5}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"cooldown": -1}, "cooldown must be > 0"),
        ({"cooldown": float("inf")}, "finite"),
        ({"cooldown": "30"}, "cooldown must be a finite number"),
        ({"max_cooldown": 10, "cooldown": 20}, "max_cooldown"),
        ({"growth": 0.5}, "growth must be >= 1"),
        ({"growth": "x"}, r"growth must be a finite number \(a factor\)"),
        ({"cooldown": 0}, "cooldown must be > 0"),
        ({"wall_clock": 5}, "wall_clock must be a callable"),
        ({"backoff": 3}, "tenacity wait"),
        ({"clock": 3}, "clock"),
        ({"max_entries": 0}, "max_entries"),
    ],
)
def test_invalid_options(options: dict[str, Any], message: str) -> None:
    """Bad options raise InvalidConfigError naming the option, the value and what was expected."""
    with pytest.raises(InvalidConfigError, match=message):
        InMemoryCooldownTracker(**options)


def test_repr_shows_policy() -> None:
    """The repr shows the settings an operator needs."""
    assert repr(InMemoryCooldownTracker(failure_threshold=2, cooldown=5, max_cooldown=50)) == (
        "InMemoryCooldownTracker(failure_threshold=2, cooldown=5.0, max_cooldown=50.0, growth=2.0)"
    )


class _Retry(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__("429")
        self.retry_after = seconds


THRESHOLD, COOLDOWN, GROWTH, CAP = 3, 10.0, 2.0, 45.0


class TrackerMatchesModel(RuleBasedStateMachine):
    """The tracker agrees with a plain reference model under any sequence of events."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.tracker = InMemoryCooldownTracker(
            failure_threshold=THRESHOLD,
            cooldown=COOLDOWN,
            growth=GROWTH,
            max_cooldown=CAP,
            clock=self.clock,
        )
        # name -> [failures, level, until]
        self.model: dict[str, list[float]] = {}

    def _state(self, name: str) -> list[float]:
        return self.model.setdefault(name, [0, 0, float("-inf")])

    names = st.sampled_from(["a", "b", "c"])

    @rule(name=names, hint=st.none() | st.floats(min_value=0.5, max_value=100))
    def failure(self, name: str, hint: float | None) -> None:
        s = self._state(name)
        now = self.clock()
        exc: Exception = Down() if hint is None else _Retry(hint)
        started = self.tracker.record_failure(name, exc)
        expected = False
        if now < s[2]:
            if hint is not None:
                s[2] = max(s[2], now + min(hint, CAP))
        else:
            s[0] += 1
            if hint is not None:
                s[2], s[0], expected = now + min(hint, CAP), 0, True
            elif s[0] >= THRESHOLD:
                s[1] += 1
                s[2] = now + min(COOLDOWN * GROWTH ** (s[1] - 1), CAP)
                s[0], expected = 0, True
        assert started is expected

    @rule(name=names)
    def success(self, name: str) -> None:
        self.tracker.record_success(name)
        self.model.pop(name, None)

    @rule(seconds=st.floats(min_value=0, max_value=60))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(name=st.none() | names)
    def reset(self, name: str | None) -> None:
        self.tracker.reset(name)
        if name is None:
            self.model.clear()
        else:
            self.model.pop(name, None)

    @invariant()
    def agrees(self) -> None:
        now = self.clock()
        for name in ("a", "b", "c"):
            until = self.model.get(name, [0, 0, float("-inf")])[2]
            assert self.tracker.is_available(name) is (until <= now)
            assert self.tracker.cooldown_remaining(name) == pytest.approx(max(0.0, until - now))


TrackerMatchesModel.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_tracker_matches_reference_model = TrackerMatchesModel.TestCase


def test_states_report_failures_level_and_remaining(clock: FakeClock) -> None:
    """states() lists what the tracker remembers of each provider."""
    from resilient_routing.cooldown import ProviderState

    tracker = InMemoryCooldownTracker(failure_threshold=2, cooldown=30, clock=clock)
    tracker.record_failure("b", Down())
    tracker.record_failure("a", Down())
    tracker.record_failure("a", Down())
    clock.advance(10)
    assert tracker.states() == [ProviderState("a", 0, 1, 20.0), ProviderState("b", 1, 0, 0.0)]
    assert tracker.states()[0].cooling and not tracker.states()[1].cooling


def test_a_full_tracker_forgets_a_provider_that_is_not_cooling(clock: FakeClock) -> None:
    """A flood of other names' failures does not push out a cooldown in force."""
    tracker = InMemoryCooldownTracker(failure_threshold=3, max_entries=3, clock=clock)
    hinted = Exception("429")
    hinted.retry_after = 60  # type: ignore[attr-defined]
    assert tracker.record_failure("cooling", hinted)
    for n in range(100):
        tracker.record_failure(f"noise{n}", Exception())
    assert tracker.cooldown_remaining("cooling") == 60
    assert len(tracker.states()) == 3
    clock.advance(61)  # its cooldown over, it is the next to go
    tracker.record_failure("new", Exception())
    assert "cooling" not in {s.name for s in tracker.states()}


def test_a_full_tracker_finds_a_provider_at_rest_behind_many_cooldowns(clock: FakeClock) -> None:
    """Past the oldest providers, all cooling down: one with failures but no cooldown goes."""
    tracker = InMemoryCooldownTracker(failure_threshold=2, cooldown=60, max_entries=40, clock=clock)
    for n in range(33):  # the least recently failed, cooling down
        tracker.record_failure(f"cooling{n}", Exception())
        assert tracker.record_failure(f"cooling{n}", Exception())
    for n in range(7):  # one failure each: at rest
        tracker.record_failure(f"resting{n}", Exception())
    tracker.record_failure("new", Exception())
    kept = {s.name for s in tracker.states()}
    assert len(kept) == 40 and "resting0" not in kept and "new" in kept
    assert all(not tracker.is_available(f"cooling{n}") for n in range(33))
    tracker.record_success("resting1")  # gone by itself: nothing left behind for it
    tracker.record_failure("newer", Exception())  # fills the room it left
    tracker.record_failure("newest", Exception())
    assert {"resting1", "resting2"}.isdisjoint(s.name for s in tracker.states())
    assert "resting3" in {s.name for s in tracker.states()}


def test_a_tracker_full_of_cooldowns_still_takes_new_names(clock: FakeClock) -> None:
    """When every kept provider cools down, the least recently failed one is forgotten."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, max_entries=2, clock=clock)
    for name in "abc":
        assert tracker.record_failure(name, Exception())
    assert [s.name for s in tracker.states()] == ["b", "c"]


def test_a_full_tracker_keeps_a_provider_whose_probe_is_out(clock: FakeClock) -> None:
    """Half-open: forgetting a provider being probed would let a second probe through."""
    tracker = InMemoryCooldownTracker(
        failure_threshold=2, cooldown=10, half_open=True, max_entries=2, clock=clock
    )
    tracker.record_failure("a", Exception())
    assert tracker.record_failure("a", Exception())
    clock.advance(10)
    assert tracker.is_available("a")  # the probe
    tracker.record_failure("b", Exception())
    tracker.record_failure("c", Exception())  # full: one of a and b goes
    assert not tracker.is_available("a")  # its probe is still out
    assert {s.name for s in tracker.states()} == {"a", "c"}


def test_a_full_tracker_keeps_a_provider_due_for_its_probe(clock: FakeClock) -> None:
    """Half-open: forgetting a provider whose cooldown ended before its probe lets all through."""
    tracker = InMemoryCooldownTracker(
        failure_threshold=2, cooldown=10, half_open=True, max_entries=2, clock=clock
    )
    tracker.record_failure("a", Exception())
    assert tracker.record_failure("a", Exception())
    clock.advance(10)  # a's cooldown is over: its next caller is its probe
    tracker.record_failure("b", Exception())  # one failure, no cooldown: at rest
    tracker.record_failure("c", Exception())  # full: b goes, not a
    assert {s.name for s in tracker.states()} == {"a", "c"}
    assert [tracker.is_available("a") for _ in range(3)] == [True, False, False]


def test_a_misspelt_option_names_the_tracker_and_the_option_meant() -> None:
    with pytest.raises(TypeError) as raised:
        InMemoryCooldownTracker(failure_treshold=3)  # type: ignore[call-arg]
    assert str(raised.value) == (
        "InMemoryCooldownTracker() got an unexpected keyword argument 'failure_treshold' "
        "(did you mean 'failure_threshold'?)"
    )
    with pytest.raises(TypeError, match=r"argument 'colour'$"):
        InMemoryCooldownTracker(colour="red")  # type: ignore[call-arg]
