"""Single-attempt strategies, the registry, and the rules the core applies to any strategy."""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    InvalidConfigError,
    available_strategies,
    execute,
    get_strategy,
    register_strategy,
    routed,
)
from resilient_routing.strategies import Fallback, PrimaryOnly, RoundRobin

from .harness import Harness


class Down(Exception):
    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


@pytest.fixture
def registry() -> Iterator[None]:
    """Remove strategies a test registers."""
    before = set(available_strategies())
    yield
    from resilient_routing.strategies import _registry

    for name in set(available_strategies()) - before:
        del _registry._factories[name]
    _registry._factories["fallback"] = Fallback


def test_primary_only_calls_first_and_reraises_unchanged(
    h: Harness, fresh_config: InMemoryCooldownTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """primary_only calls providers[0] once and re-raises its own exception with a note."""
    caplog.set_level(logging.DEBUG, "resilient_routing")
    boom = Down("primary down")
    with pytest.raises(Down) as info:
        h.routed({"a": boom}, providers=["a", "b"], strategy="primary_only")()
    assert info.value is boom
    assert "resilient_routing: raised by provider 'a'" in boom.__notes__
    assert h.calls == ["a"]
    (error,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (error.message, error.levelno, error.provider) == (
        "primary provider failed: 'a': Down: primary down",
        logging.ERROR,
        "a",
    )


def test_primary_only_ignores_cooldown(h: Harness, fresh_config: InMemoryCooldownTracker) -> None:
    """primary_only neither consults nor records cooldowns."""
    for _ in range(5):
        fresh_config.record_failure("a", Down())
    assert h.routed(providers=["a", "b"], strategy="primary_only")().provider == "a"
    fresh_config.reset()
    for _ in range(5):
        with pytest.raises(Down):
            h.routed({"a": Down()}, providers=["a", "b"], strategy="primary_only")()
    assert fresh_config.is_available("a")


def test_note_added_once_when_same_exception_reraised(h: Harness) -> None:
    """A provider raising the same exception object twice does not pile up notes."""
    boom = Down()
    call = h.routed({"a": boom}, providers=["a"], strategy="primary_only")
    for _ in range(2):
        with pytest.raises(Down):
            call()
    assert boom.__notes__ == ["resilient_routing: raised by provider 'a'"]


def test_round_robin_rotates(h: Harness) -> None:
    """round_robin calls providers[i % n] for i = 0, 1, 2, ..."""
    call = h.routed(providers=["a", "b", "c"], strategy="round_robin")
    assert [call().provider for _ in range(7)] == list("abcabca")
    assert call().was_terminus is False


def test_round_robin_failure_reraised_with_note(
    h: Harness, fresh_config: InMemoryCooldownTracker, caplog: pytest.LogCaptureFixture
) -> None:
    """A round-robin provider's failure is its own exception, logged at ERROR, not recorded."""
    caplog.set_level(logging.ERROR, "resilient_routing")
    boom = Down()
    call = h.routed({"b": boom}, providers=["a", "b"], strategy="round_robin")
    call()
    with pytest.raises(Down) as info:
        call()
    assert info.value is boom and boom.__notes__ == ["resilient_routing: raised by provider 'b'"]
    assert [r.message for r in caplog.records] == ["round-robin provider failed: 'b': Down: "]
    assert fresh_config.is_available("b")


def test_round_robin_exact_under_threads() -> None:
    """8 threads x 3000 calls spread exactly evenly over 3 providers: no lost or doubled index."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    @routed(providers=["a", "b", "c"], strategy="round_robin")
    def call(provider: str) -> str:
        return provider

    def worker() -> None:
        local = Counter(call() for _ in range(3000))
        with lock:
            counts.update(local)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == {"a": 8000, "b": 8000, "c": 8000}


def test_round_robin_counter_option() -> None:
    """RoundRobin(counter=...) takes its rotation from the given counter."""
    values = iter([5, 6, 7])
    rr = RoundRobin(counter=lambda: next(values))
    assert [execute(["a", "b"], str, strategy=rr).provider for _ in range(3)] == ["b", "a", "b"]
    with pytest.raises(InvalidConfigError, match="counter"):
        RoundRobin(counter=3)  # type: ignore[arg-type]


def test_registry_lists_and_builds_new_instances() -> None:
    """get_strategy returns a new object each time; the built-ins are registered."""
    assert {"fallback", "primary_only", "round_robin"} <= set(available_strategies())
    assert available_strategies() == sorted(available_strategies())
    one, two = get_strategy("round_robin"), get_strategy("round_robin")
    assert isinstance(one, RoundRobin) and one is not two
    assert isinstance(get_strategy("primary_only"), PrimaryOnly)


def test_unknown_strategy_names_the_known_ones() -> None:
    """An unknown name lists the registered ones."""
    with pytest.raises(InvalidConfigError, match="expected one of 'fallback'"):
        get_strategy("fastest")


class Reverse:
    """Try providers from the end: the core still keeps the terminus for last."""

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        return range(len(providers) - 1, -1, -1)


def test_user_strategy_registered_and_used(h: Harness, registry: None) -> None:
    """A registered user strategy works by name, with the terminus still the last resort."""
    register_strategy("reverse", Reverse)
    assert "reverse" in available_strategies()
    result = h.routed(
        {"c": Down(), "b": Down()}, providers=["a", "b", "c", "d"], strategy="reverse"
    )()
    assert h.calls == ["c", "b", "a"]
    assert result.provider == "a"
    h.calls.clear()
    with pytest.raises(AllProvidersFailedError):
        h.routed({n: Down() for n in "abcd"}, providers=["a", "b", "c", "d"], strategy="reverse")()
    assert h.calls == ["c", "b", "a", "d"]


def test_taken_name_needs_replace(registry: None) -> None:
    """Registering a taken name fails unless replace=True; built-ins have no privileged path."""
    with pytest.raises(InvalidConfigError, match="already registered"):
        register_strategy("fallback", Reverse)
    register_strategy("fallback", Reverse, replace=True)
    calls: list[str] = []

    @routed(providers=["a", "b", "c"])
    def fn(provider: str) -> str:
        calls.append(provider)
        raise Down()

    with pytest.raises(AllProvidersFailedError):
        fn()
    assert calls == ["b", "a", "c"]


@pytest.mark.parametrize(
    ("name", "factory", "message"),
    [("", Reverse, "non-empty str"), (3, Reverse, "non-empty str"), ("x", 3, "callable")],
)
def test_register_validates(name: Any, factory: Any, message: str) -> None:
    """Bad names and factories are refused with what was expected."""
    with pytest.raises(InvalidConfigError, match=message):
        register_strategy(name, factory)


def test_factory_returning_non_strategy(registry: None) -> None:
    """A factory whose product has no order() is refused when used."""
    register_strategy("broken", object)
    with pytest.raises(InvalidConfigError, match="no order"):
        routed(providers=["a"], strategy="broken")


@pytest.mark.parametrize("bad", [[5], [-1], ["0"]])
def test_strategy_choosing_outside_the_list(bad: list[Any]) -> None:
    """A strategy choosing an index outside the list fails clearly, naming it."""

    class Bad:
        def order(self, providers: Sequence[Any]) -> Iterable[int]:
            return bad

    with pytest.raises(InvalidConfigError, match="chose index"):
        execute(["a", "b"], str, strategy=Bad())


def test_single_attempt_strategy_choosing_nothing() -> None:
    """A single-attempt strategy must choose a provider."""

    class Nothing:
        single_attempt = True

        def order(self, providers: Sequence[Any]) -> Iterable[int]:
            return ()

    with pytest.raises(InvalidConfigError, match="chose no provider"):
        execute(["a"], str, strategy=Nothing())


class Scripted:
    def __init__(self, order: list[int]) -> None:
        self._order = order

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        return [i for i in self._order if i < len(providers)]


@given(
    n=st.integers(min_value=1, max_value=8),
    order=st.lists(st.integers(min_value=0, max_value=7), max_size=20),
    failing=st.sets(st.integers(min_value=0, max_value=7)),
    cooling=st.sets(st.integers(min_value=0, max_value=7)),
)
def test_any_strategy_calls_each_listed_provider_at_most_once(
    n: int, order: list[int], failing: set[int], cooling: set[int]
) -> None:
    """Whatever a strategy orders: only listed providers, none twice, the terminus last."""
    names = [f"p{i}" for i in range(n)]
    tracker = InMemoryCooldownTracker(failure_threshold=1000)
    for i in cooling:
        if i < n:
            tracker.record_failure(names[i], Down(retry_after=60))
    calls: list[str] = []

    def fn(provider: str) -> str:
        calls.append(provider)
        if int(provider[1:]) in failing:
            raise Down()
        return provider

    try:
        result = execute(names, fn, strategy=Scripted(order), cooldown=tracker)
    except AllProvidersFailedError as err:
        failed = [name for name, _ in err.failures]
        assert calls[-1] == names[-1]
        assert failed == calls
    else:
        assert result.provider == calls[-1] and result.attempt == len(calls)
        assert all(int(c[1:]) in failing for c in calls[:-1])
    assert set(calls) <= set(names)
    assert len(calls) == len(set(calls))
    assert names[-1] not in calls[:-1]
    assert not any(int(c[1:]) in cooling for c in calls if c != names[-1])


def test_strategy_asked_once_per_call_when_first_attempt_fails(h: Harness) -> None:
    """A failing first attempt hands over without asking the strategy again (exact rotation)."""
    calls = h.routed({"b": Down()}, providers=["a", "b", "c"], strategy="round_robin")
    outcomes = []
    for _ in range(6):
        try:
            outcomes.append(calls().provider)
        except Down:
            outcomes.append("b!")
    assert outcomes == ["a", "b!", "c", "a", "b!", "c"]


def test_single_attempt_note_and_log_when_outside_fallback_on(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception outside fallback_on still gets the provider note and the ERROR record."""
    caplog.set_level(logging.ERROR, "resilient_routing")
    boom = KeyError("bad request")
    with pytest.raises(KeyError) as info:
        h.routed({"a": boom}, providers=["a"], strategy="primary_only", fallback_on=Down)()
    assert info.value is boom
    assert boom.__notes__ == ["resilient_routing: raised by provider 'a'"]
    assert [r.message for r in caplog.records] == [
        "primary provider failed: 'a': KeyError: 'bad request'"
    ]


def test_invalid_config_error_from_a_provider_propagates(h: Harness) -> None:
    """A configuration error (say from a nested routed call) fails the same everywhere."""
    with pytest.raises(InvalidConfigError):
        h.routed({"a": InvalidConfigError("bad option")}, providers=["a", "b"], cooldown=None)()
    assert h.calls == ["a"]


def test_recursion_error_propagates_unrecorded(
    h: Harness, tracker: InMemoryCooldownTracker
) -> None:
    """A RecursionError is a bug in the calling code: no fall over, nothing recorded."""
    with pytest.raises(RecursionError):
        h.routed({"a": RecursionError("deep")}, providers=["a", "b"], cooldown=tracker)()
    assert h.calls == ["a"]
    assert tracker.states() == []


def test_runaway_recursion_through_a_routed_method_ends_in_one_pass() -> None:
    """Each level calls one provider: the recursion ends at the limit, not 2^depth calls."""
    calls = [0]

    class Client:
        @routed(providers=["a", "b"], cooldown=None)
        def call(self, provider: str) -> str:
            calls[0] += 1
            return self.call()  # a bug: no base case

    with pytest.raises(RecursionError):
        Client().call()
    assert calls[0] < sys.getrecursionlimit()


def test_factory_needing_arguments(registry: None) -> None:
    """A factory that cannot be called without arguments is refused clearly."""
    register_strategy("needs_two", lambda x: Fallback())  # type: ignore[arg-type,misc]
    with pytest.raises(InvalidConfigError, match="must build a strategy with no arguments"):
        routed(providers=["a"], strategy="needs_two")


def test_non_int_index_named_by_type() -> None:
    """A strategy choosing True or '0' is told an int was expected."""

    class Bad:
        def order(self, providers: Sequence[Any]) -> Iterable[int]:
            return [True]

    with pytest.raises(InvalidConfigError, match="of type bool: expected an int"):
        execute(["a", "b"], str, strategy=Bad())


class Index:
    """An integer index that is no int (as a numpy integer is)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def test_an_index_that_is_no_int_but_an_integer_is_taken() -> None:
    """numpy.argsort() gives numpy integers: they index as ints do."""

    class Reversed:
        def order(self, providers: Sequence[Any]) -> Iterable[Any]:
            return [Index(i) for i in reversed(range(len(providers) - 1))]

    assert execute(["a", "b", "t"], str, strategy=Reversed(), cooldown=None).provider == "b"


@pytest.mark.parametrize("single", [False, True], ids=["multi-attempt", "single-attempt"])
@pytest.mark.parametrize("returned", [None, 0], ids=["forgot return", "an int"])
def test_an_order_that_is_not_iterable_is_a_clear_error(returned: Any, single: bool) -> None:
    """A forgotten ``return`` in order() says so, not a TypeError from inside the library."""

    class Forgetful:
        single_attempt = single

        def order(self, providers: Sequence[Any]) -> Any:
            return returned

    with pytest.raises(InvalidConfigError, match=r"order\(\) returned .*: expected an iterable"):
        execute(["a", "b", "t"], str, strategy=Forgetful(), cooldown=None)


def test_an_order_that_raises_while_read_is_a_clear_error() -> None:
    """A strategy's generator failing after the first choice: its bug, named, not a provider's."""

    class Broken:
        def order(self, providers: Sequence[Any]) -> Iterator[int]:
            yield 0
            raise ValueError("bug in order")

    calls: list[str] = []

    def call(provider: str) -> str:
        calls.append(provider)
        raise Down(provider)

    with pytest.raises(InvalidConfigError, match=r"order\(\) failed while it was read: Value"):
        execute(["a", "b", "t"], call, strategy=Broken(), cooldown=None)
    assert calls == ["a"]
