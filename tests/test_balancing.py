"""Load-aware strategies: load_balanced, weighted, least_latency, least_busy."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    InvalidConfigError,
    execute,
    get_strategy,
    routed,
)
from resilient_routing.strategies import (
    Hedged,
    LeastBusy,
    LeastLatency,
    LoadBalanced,
    Weighted,
    available_strategies,
)

from .harness import Harness


class Down(Exception):
    pass


def test_registered_by_name() -> None:
    """Each new strategy is registered under its name."""
    for name, cls in [
        ("load_balanced", LoadBalanced),
        ("weighted", Weighted),
        ("least_latency", LeastLatency),
        ("least_busy", LeastBusy),
        ("hedged", Hedged),
    ]:
        assert isinstance(get_strategy(name), cls)


def test_load_balanced_rotates_first_choices_exactly_under_threads() -> None:
    """8 threads x 900 calls: each non-terminus provider is first choice exactly 1/3 of the time."""
    firsts: Counter[str] = Counter()
    lock = threading.Lock()

    @routed(providers=["a", "b", "c", "t"], strategy="load_balanced", cooldown=None)
    def call(provider: str) -> str:
        return provider

    def worker() -> None:
        local = Counter(call() for _ in range(900))
        with lock:
            firsts.update(local)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert firsts == {"a": 2400, "b": 2400, "c": 2400}


def test_load_balanced_falls_back_then_terminus(h: Harness) -> None:
    """On failure the rotation goes on over the other non-terminus providers, then the terminus."""
    strategy = LoadBalanced()
    failing = {n: Down() for n in "abct"}
    call = h.routed(failing, providers=["a", "b", "c", "t"], strategy=strategy, cooldown=None)
    for _ in range(3):
        with pytest.raises(AllProvidersFailedError):
            call()
    assert h.calls == ["a", "b", "c", "t", "b", "c", "a", "t", "c", "a", "b", "t"]


@pytest.mark.parametrize("n", [1, 2])
def test_load_balanced_small_lists(n: int) -> None:
    """With one non-terminus provider (or none) the order is the list order."""
    names = ["a", "t"][-n:]
    assert execute(names, str, strategy=LoadBalanced(), cooldown=None).provider == names[0]


def test_weighted_first_choice_follows_weights() -> None:
    """First choices are drawn by weight (seeded, so exact); the terminus is never first."""
    strategy = Weighted(weights={"a": 3, "b": 1}, rng=random.Random(7))
    firsts = Counter(
        execute(["a", "b", "t"], str, strategy=strategy, cooldown=None).provider
        for _ in range(4000)
    )
    assert set(firsts) == {"a", "b"}
    assert firsts["a"] / 4000 == pytest.approx(0.75, abs=0.03)


def test_weighted_falls_back_in_weight_order(h: Harness) -> None:
    """After the first choice, providers follow in descending weight; unnamed ones weigh 1."""
    strategy = Weighted(weights={"a": 0.5, "b": 5, "c": 0}, rng=random.Random(1))
    failing = {n: Down() for n in "abcdt"}
    call = h.routed(failing, providers=["a", "b", "c", "d", "t"], strategy=strategy, cooldown=None)
    for _ in range(20):
        h.calls.clear()
        with pytest.raises(AllProvidersFailedError):
            call()
        first, rest = h.calls[0], h.calls[1:]
        assert first != "c", "a zero weight is never a first choice"
        assert rest == [n for n in ["b", "d", "a", "c"] if n != first] + ["t"]


def test_weighted_equal_without_weights() -> None:
    """No weights: every non-terminus provider is equally likely first."""
    strategy = Weighted(rng=random.Random(3))
    firsts = Counter(
        execute(["a", "b", "c", "t"], str, strategy=strategy, cooldown=None).provider
        for _ in range(3000)
    )
    assert all(abs(firsts[n] / 3000 - 1 / 3) < 0.04 for n in "abc")


def test_weighted_all_zero_falls_back_to_list_order() -> None:
    """All weights zero: no random choice, list order (a list shrinking at run time may)."""
    strategy = Weighted(weights={"a": 0, "b": 0})
    assert execute(["a", "b", "t"], str, strategy=strategy, cooldown=None).provider == "a"


def test_a_weight_on_the_terminus_does_nothing() -> None:
    """The terminus is never a first choice, whatever its weight.

    (A providers callable may make any provider the terminus at run time: no error then.)
    """
    strategy = Weighted(weights={"a": 1, "t": 100}, rng=random.Random(2))
    firsts = Counter(
        execute(["a", "b", "t"], str, strategy=strategy, cooldown=None).provider for _ in range(200)
    )
    assert set(firsts) == {"a", "b"}


def test_a_cooling_providers_share_spreads_evenly_over_the_others() -> None:
    """load_balanced and equal weights: no single neighbour takes all of its calls."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=300)
    tracker.record_failure("a", Down())
    for strategy in (LoadBalanced(), Weighted(weights={"a": 2}, rng=random.Random(5))):
        shares = Counter(
            execute(["a", "b", "c", "d", "t"], str, strategy=strategy, cooldown=tracker).provider
            for _ in range(3000)
        )
        assert set(shares) == {"b", "c", "d"}
        assert max(shares.values()) / min(shares.values()) < 1.15, (strategy, shares)


@pytest.mark.parametrize("bad", [-1, float("inf"), "3", True])
def test_weighted_validates(bad: object) -> None:
    """Weights must be finite numbers >= 0."""
    with pytest.raises(InvalidConfigError, match="weight of 'a'"):
        Weighted(weights={"a": bad})  # type: ignore[dict-item]


def test_least_latency_prefers_fast_and_overtakes_slow() -> None:
    """Unmeasured providers first; then the fastest; a provider that became slow is overtaken."""
    strategy = LeastLatency(alpha=0.5)
    latency = {"a": 0.3, "b": 0.1}

    def fn(provider: str) -> str:
        return provider

    for name in ("a", "b"):
        strategy.on_attempt_end(name, latency[name], True)
    assert execute(["a", "b", "c", "t"], fn, strategy=strategy, cooldown=None).provider == "c"
    strategy.on_attempt_end("c", 0.2, True)
    assert execute(["a", "b", "c", "t"], fn, strategy=strategy, cooldown=None).provider == "b"
    for _ in range(3):
        strategy.on_attempt_end("b", 1.0, True)
    assert strategy.latency("b") == pytest.approx(0.88125, abs=1e-3)  # 0.05 after its real call
    assert execute(["a", "b", "c", "t"], fn, strategy=strategy, cooldown=None).provider == "c"
    before = strategy.latency("c")
    strategy.on_attempt_end("c", 5.0, False)
    assert strategy.latency("c") == before, "failures are not latencies"


def test_least_latency_learns_from_real_calls(h: Harness) -> None:
    """Latencies of successful attempts reach the strategy through the routing core."""
    strategy = LeastLatency()
    call = h.routed(providers=["a", "b", "t"], strategy=strategy, cooldown=None)
    call()
    assert strategy.latency("a") is not None
    assert strategy.latency("b") is None


def test_least_latency_measures_again_a_provider_it_passed_over() -> None:
    """Slow once, then passed over: after forget_after calls it is without data, tried first."""
    strategy = LeastLatency(forget_after=10)
    strategy.on_attempt_end("a", 0.5, True)  # one slow answer
    strategy.on_attempt_end("b", 0.01, True)
    firsts = [
        execute(["a", "b", "t"], str, strategy=strategy, cooldown=None).provider for _ in range(12)
    ]
    assert firsts[:9] == ["b"] * 9  # b answers at every call: b stays known
    assert "a" in firsts[9:], "a was never measured again"
    assert strategy.latency("a") is not None and strategy.latency("a") < 0.5


def test_least_latency_ranks_a_provider_that_only_fails_after_the_measured() -> None:
    """Never answered: it has been tried, so it is not 'without data' and does not lead."""
    strategy = LeastLatency()
    calls: list[str] = []

    def call(provider: str) -> str:
        calls.append(provider)
        if provider == "a":
            raise Down()
        return provider

    for _ in range(5):
        execute(["a", "b", "c", "t"], call, strategy=strategy, cooldown=None)
    assert calls[:3] == ["a", "b", "c"]  # a failed, b answered; c first measured
    assert len(calls) == 6 and "a" not in calls[3:]  # then the faster of b and c


def _first(strategy: LeastLatency, providers: list[str]) -> int:
    return next(iter(strategy.order(providers)))


def test_least_latency_measures_a_forgotten_provider_with_one_call_not_all_at_once() -> None:
    """Calls arriving while it is measured anew rank it last: one call pays, not a burst."""
    strategy = LeastLatency(forget_after=2)
    strategy.on_attempt_end("slow", 0.5, True)
    strategy.on_attempt_end("fast", 0.01, True)
    providers = ["slow", "fast", "t"]
    firsts = []
    for _ in range(7):
        first = _first(strategy, providers)
        firsts.append(first)
        if first == 1:
            strategy.on_attempt_end("fast", 0.01, True)  # fast answers; slow's measure runs on
    # A measure that never ends costs one call every forget_after calls, not every call.
    assert firsts == [1, 1, 0, 1, 1, 0, 1]


def test_least_latency_forgets_after_forget_after_calls_without_news_not_one_sooner() -> None:
    strategy = LeastLatency(forget_after=2)
    providers = ["slow", "fast", "t"]
    assert _first(strategy, providers) == 0
    strategy.on_attempt_end("slow", 1.0, True)  # call 1: news of slow
    assert _first(strategy, providers) == 1
    strategy.on_attempt_end("fast", 0.01, True)  # call 2: none of slow
    assert _first(strategy, providers) == 1  # call 3: one call without news only


def test_equal_weights_spread_even_two_neighbours_cooling_down() -> None:
    """All weights equal: the others in a random order, whichever providers cool down."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=300)
    tracker.record_failure("a", Down())
    tracker.record_failure("b", Down())
    strategy = Weighted(rng=random.Random(11))
    shares = Counter(
        execute(["a", "b", "c", "d", "e", "t"], str, strategy=strategy, cooldown=tracker).provider
        for _ in range(3000)
    )
    assert set(shares) == {"c", "d", "e"}
    assert max(shares.values()) / min(shares.values()) < 1.15, shares


@pytest.mark.parametrize("bad", [0, 1.5, -0.1, "x"])
def test_least_latency_validates(bad: object) -> None:
    """Alpha must lie in (0, 1]."""
    with pytest.raises(InvalidConfigError, match="alpha"):
        LeastLatency(alpha=bad)  # type: ignore[arg-type]


def test_least_busy_counts_exactly_under_16_threads() -> None:
    """16 calls held in flight spread 4/4/4/4 over 4 providers; all counts return to zero."""
    strategy = LeastBusy()
    release = threading.Event()
    started = threading.Semaphore(0)
    served: list[str] = []
    lock = threading.Lock()

    @routed(providers=["a", "b", "c", "d", "t"], strategy=strategy, cooldown=None)
    def call(provider: str) -> str:
        with lock:
            served.append(provider)
        started.release()
        release.wait(10)
        return provider

    threads = []
    for _ in range(16):
        thread = threading.Thread(target=call)
        thread.start()
        threads.append(thread)
        started.acquire(timeout=10)  # the next call sees this one in flight
    assert {n: strategy.in_flight(n) for n in "abcd"} == {"a": 4, "b": 4, "c": 4, "d": 4}
    release.set()
    for thread in threads:
        thread.join()
    assert Counter(served) == {"a": 4, "b": 4, "c": 4, "d": 4}
    assert all(strategy.in_flight(n) == 0 for n in "abcdt")


def test_least_busy_counts_failures_and_cancellations_as_finished(h: Harness) -> None:
    """Failed attempts leave the in-flight count as they found it."""
    strategy = LeastBusy()
    with pytest.raises(AllProvidersFailedError):
        h.routed(
            {"a": Down(), "t": Down()}, providers=["a", "t"], strategy=strategy, cooldown=None
        )()
    assert strategy.in_flight("a") == strategy.in_flight("t") == 0


SCRIPTS = st.lists(st.booleans(), min_size=1, max_size=7)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(available_strategies()), failing=SCRIPTS)
def test_every_strategy_calls_listed_providers_once_and_ends_on_terminus(
    name: str, failing: list[bool]
) -> None:
    """Every registered strategy: only listed providers, none twice, the terminus last."""
    names = [f"p{i}" for i in range(len(failing))]
    calls: list[str] = []
    tracker = InMemoryCooldownTracker(failure_threshold=1)

    def fn(provider: str) -> str:
        calls.append(provider)
        if failing[int(provider[1:])]:
            raise Down()
        return provider

    strategy = get_strategy(name)
    try:
        execute(names, fn, strategy=strategy, cooldown=tracker)
    except (AllProvidersFailedError, Down):
        if not getattr(strategy, "single_attempt", False):
            assert calls[-1] == names[-1]
    assert set(calls) <= set(names)
    assert len(calls) == len(set(calls))
    if getattr(strategy, "single_attempt", False):
        assert len(calls) == 1
    else:
        assert names[-1] not in calls[:-1]


def test_terminus_never_first_while_another_is_available() -> None:
    """For every multi-attempt strategy, the first call goes to a non-terminus provider."""
    for name in available_strategies():
        strategy: Any = get_strategy(name)
        if getattr(strategy, "single_attempt", False):
            continue
        for _ in range(5):
            assert execute(["a", "b", "t"], str, strategy=strategy, cooldown=None).provider != "t"


def test_a_weight_naming_no_provider_is_refused_at_decoration() -> None:
    """A typo in a weight's name fails when the function is decorated, naming it."""
    with pytest.raises(InvalidConfigError, match=r"weights name 'gemni', not among the providers"):
        routed(providers=["gemini", "grok", "t"], strategy=Weighted(weights={"gemni": 3}))(
            lambda provider: provider
        )


def test_a_weight_naming_no_provider_of_a_providers_callable_fails_the_call() -> None:
    """With providers read at each call, the check runs at each call."""
    names = ["gemini", "grok", "t"]

    @routed(providers=lambda: names, strategy=Weighted(weights={"gemini": 3}))
    def call(provider: str) -> str:
        return provider

    assert call() in ("gemini", "grok")
    names[0] = "gemini-2"
    with pytest.raises(InvalidConfigError, match="'gemini'"):
        call()
