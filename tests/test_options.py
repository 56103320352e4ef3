"""Per-call options beyond the seed: cooldown_on, max_attempts, retry_after, last_route."""

from __future__ import annotations

import asyncio
import enum
import functools
import operator
import pickle
import threading
from typing import Any

import pytest
import tenacity
from tenacity import retry, retry_if_exception_type, stop_after_attempt

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    InvalidConfigError,
    last_route,
    routed,
    wait_for_recovery,
)
from resilient_routing.testing import FakeClock

from .harness import Harness


class Down(Exception):
    pass


class Slow(TimeoutError):
    pass


@pytest.fixture(params=["class", "tuple", "predicate"])
def counts_down(request: pytest.FixtureRequest) -> Any:
    """cooldown_on in its three forms: Down counts, a timeout does not."""
    return {
        "class": Down,
        "tuple": (Down, KeyError),
        "predicate": lambda exc: not isinstance(exc, TimeoutError),
    }[request.param]


def test_cooldown_on_decides_what_counts(
    h: Harness, tracker: InMemoryCooldownTracker, counts_down: Any
) -> None:
    """A failure cooldown_on rejects falls over without cooling the provider down."""
    call = h.routed({"a": Slow()}, providers=["a", "b"], cooldown=tracker, cooldown_on=counts_down)
    assert call().provider == "b"
    assert tracker.is_available("a")
    call = h.routed({"a": Down()}, providers=["a", "b"], cooldown=tracker, cooldown_on=counts_down)
    assert call().provider == "b"
    assert not tracker.is_available("a")


def test_cooldown_on_default_counts_every_fall_over(
    h: Harness, tracker: InMemoryCooldownTracker
) -> None:
    """Without cooldown_on, every failure that falls over counts (the seed's behaviour)."""
    h.routed({"a": Slow()}, providers=["a", "b"], cooldown=tracker)()
    assert not tracker.is_available("a")


def test_max_attempts_keeps_the_last_slot_for_the_terminus(h: Harness) -> None:
    """max_attempts=2 tries the first provider, then jumps to the terminus."""
    failing: dict[str, object] = {n: Down() for n in "abct"}
    with pytest.raises(AllProvidersFailedError) as info:
        h.routed(failing, providers=["a", "b", "c", "t"], max_attempts=2, cooldown=None)()
    assert h.calls == ["a", "t"]
    assert [n for n, _ in info.value.failures] == ["a", "t"]
    h.calls.clear()
    del failing["t"]
    result = h.routed(failing, providers=["a", "b", "c", "t"], max_attempts=3, cooldown=None)()
    assert h.calls == ["a", "b", "t"] and result.provider == "t" and result.attempt == 3


def test_max_attempts_counts_calls_not_skips(h: Harness, tracker: InMemoryCooldownTracker) -> None:
    """Providers skipped for cooldown take no slot."""
    tracker.record_failure("a", Down())
    result = h.routed(
        {"b": Down()}, providers=["a", "b", "c", "t"], max_attempts=2, cooldown=tracker
    )()
    assert h.calls == ["b", "t"] and result.skipped == ("a",)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_max_attempts_validated(bad: object) -> None:
    """max_attempts must be an int >= 1."""
    with pytest.raises(InvalidConfigError, match="max_attempts"):
        routed(providers=["a"], max_attempts=bad)  # type: ignore[arg-type]


def test_retry_after_is_time_to_first_recovery(
    h: Harness, tracker: InMemoryCooldownTracker, clock: FakeClock
) -> None:
    """AllProvidersFailedError.retry_after: seconds until the first provider leaves cooldown."""
    tracker.record_failure("a", Down())
    clock.advance(20)
    with pytest.raises(AllProvidersFailedError) as info:
        h.routed({"b": Down(), "t": Down()}, providers=["a", "b", "t"], cooldown=tracker)()
    assert info.value.retry_after == pytest.approx(40)


def test_retry_after_none_when_nothing_cools(h: Harness) -> None:
    """Without a cooling provider (or a tracker) retry_after is None."""
    with pytest.raises(AllProvidersFailedError) as info:
        h.routed({"a": Down()}, providers=["a"], cooldown=None)()
    assert info.value.retry_after is None


def test_wait_for_recovery_waits_exactly_retry_after(tracker: InMemoryCooldownTracker) -> None:
    """@retry(wait=wait_for_recovery()) over @routed sleeps until the first recovery."""
    slept: list[float] = []
    outcomes = iter([Down(), Down(), "ok"])

    @retry(
        wait=wait_for_recovery(),
        stop=stop_after_attempt(3),
        sleep=slept.append,
        retry=retry_if_exception_type(AllProvidersFailedError),
    )
    @routed(providers=["a", "t"], cooldown=tracker, exempt={"t"})
    def call(provider: str) -> str:
        if provider == "a":
            raise Down()
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert call() == "ok"
    assert slept == [pytest.approx(60), pytest.approx(60)]


def test_wait_for_recovery_fallback_and_cap() -> None:
    """Without a known recovery it uses the fallback wait; it never exceeds max."""
    wait = wait_for_recovery(fallback=tenacity.wait_fixed(3), max=10)
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.set_exception((ValueError, ValueError("x"), None))
    assert wait(state) == 3
    state.set_exception(
        (AllProvidersFailedError, AllProvidersFailedError([], 1, retry_after=99.0), None)
    )
    assert wait(state) == 10
    with pytest.raises(InvalidConfigError, match="max"):
        wait_for_recovery(max=-1)
    with pytest.raises(InvalidConfigError, match="max must be a number of seconds >= 0, got nan"):
        wait_for_recovery(max=float("nan"))
    with pytest.raises(InvalidConfigError, match="fallback must be a tenacity wait"):
        wait_for_recovery(fallback=5)  # type: ignore[arg-type]


def test_last_route_after_asyncio_run_names_the_loops_last_call() -> None:
    """The thread's last call is the one that returned in the loop it ran, not an older one."""

    @routed(providers=["sync-provider"], cooldown=None)
    def sync_call(provider: str) -> str:
        return provider

    @routed(providers=["async-provider"], cooldown=None)
    async def async_call(provider: str) -> str:
        return provider

    sync_call()
    assert asyncio.run(async_call()) == "async-provider"
    route = last_route()
    assert route is not None and route.provider == "async-provider"


def test_last_route_after_plain_call() -> None:
    """last_route() tells which provider served the plain call that just returned."""

    @routed(providers=["a", "b"], cooldown=None)
    def call(provider: str) -> str:
        if provider == "a":
            raise Down()
        return provider

    assert call() == "b"
    route = last_route()
    assert route is not None
    assert route.provider == "b" and route.attempt == 2 and route.failures[0][0] == "a"
    assert route is last_route()


def test_last_route_is_per_thread() -> None:
    """Another thread sees its own last route (None before any)."""

    @routed(providers=["a"], cooldown=None)
    def call(provider: str) -> str:
        return provider

    call()
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(last_route()))
    thread.start()
    thread.join()
    assert seen == [None]


async def test_last_route_is_per_task() -> None:
    """Concurrent tasks each see the route of their own call."""

    @routed(providers=lambda: ["x", "y"], cooldown=None)
    async def call(provider: str, fail: bool) -> str:
        await asyncio.sleep(0)
        if fail and provider == "x":
            raise Down()
        return provider

    async def one(fail: bool) -> str | None:
        await call(fail)
        await asyncio.sleep(0)
        route = last_route()
        return None if route is None else route.provider

    assert await asyncio.gather(one(True), one(False)) == ["y", "x"]


async def test_last_route_of_sync_calls_is_per_task() -> None:
    """Sync routed calls made inside tasks are kept per task too, apart from the thread's."""

    @routed(providers=["x", "y"], cooldown=None)
    def call(provider: str, fail: bool) -> str:
        if fail and provider == "x":
            raise Down()
        return provider

    async def one(fail: bool) -> str | None:
        call(fail)
        await asyncio.sleep(0)  # the other task calls meanwhile
        route = last_route()
        return None if route is None else route.provider

    assert await asyncio.gather(one(True), one(False)) == ["y", "x"]
    in_thread: list[object] = []

    def outside_the_loop() -> None:
        call(False)
        route = last_route()
        in_thread.append(None if route is None else route.provider)

    await asyncio.to_thread(outside_the_loop)
    assert in_thread == ["x"]


@pytest.mark.parametrize(
    ("options", "cooling", "message"),
    [
        ({}, "", "all 4 providers failed (last error: Down: d)"),
        ({"max_attempts": 2}, "", "2 of 4 providers failed, 2 not attempted (max_attempts=2)"),
        ({}, "bc", "2 of 4 providers failed, 2 skipped in cooldown (last error: Down: d)"),
        (
            {"max_attempts": 2},
            "a",
            "2 of 4 providers failed, 1 skipped in cooldown, 1 not attempted (max_attempts=2)",
        ),
    ],
)
def test_exhaustion_message_tells_what_happened(
    options: dict[str, Any], cooling: str, message: str, clock: FakeClock
) -> None:
    """Failed, skipped for cooldown and left out by max_attempts are counted apart."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=60, clock=clock)
    for name in cooling:
        tracker.record_failure(name, Down(name))

    @routed(providers=list("abcd"), cooldown=tracker, exempt=set("abcd"), **options)
    def call(provider: str) -> str:
        raise Down(provider)

    with pytest.raises(AllProvidersFailedError) as info:
        call()
    assert str(info.value).startswith(message)
    assert info.value.skipped == tuple(cooling)
    assert len(info.value.failures) + len(info.value.skipped) + info.value.not_attempted == 4
    assert pickle.loads(pickle.dumps(info.value)).skipped == tuple(cooling)


class Region(enum.Enum):
    EU = "eu"
    US = "us"


def _predicate(exc: Exception, *, strict: bool = False) -> bool:
    return not strict


class _Callable:
    def __call__(self, exc: Exception) -> bool:
        return True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"providers": Region}, r"got the class Region \(an Enum: list\(Region\)\)"),
        ({"providers": list}, "got the class list"),
        (
            {"providers": lambda region: ["a"]},
            r"providers must be a zero-argument callable, got .*, which takes \(region\)",
        ),
        ({"fallback_on": lambda: True}, r"fallback_on must be .*, which takes \(\)"),
        ({"cooldown_on": lambda exc, why: True}, r"cooldown_on must be .*, which takes"),
        ({"fallback_on": lambda exc, *, strict: True}, r"which takes \(exc, \*, strict\)"),
    ],
)
def test_callable_options_of_the_wrong_shape_are_refused_when_decorating(
    options: dict[str, Any], message: str
) -> None:
    """A callable that cannot take the arguments it will get fails now, naming the option."""
    options.setdefault("providers", ["a", "b"])
    with pytest.raises(InvalidConfigError, match=message):
        routed(cooldown=None, **options)


@pytest.mark.parametrize(
    "predicate",
    [
        lambda *args: True,
        lambda exc, extra=1: True,
        _predicate,
        functools.partial(_predicate, strict=False),
        _Callable(),
        _Callable().__call__,
        operator.truth,  # a builtin
    ],
)
def test_predicates_taking_one_argument_are_accepted(predicate: Any) -> None:
    """Any callable taking the exception: defaults, *args, partials, objects and methods."""

    @routed(providers=["a", "b"], cooldown=None, fallback_on=predicate)
    def call(provider: str) -> str:
        if provider == "a":
            raise Down()
        return provider

    assert call() == "b"


def test_clocks_and_backoff_of_the_wrong_shape_are_refused() -> None:
    """The trackers' clocks take no argument; a backoff takes tenacity's retry state."""
    with pytest.raises(InvalidConfigError, match=r"clock must be .*, which takes \(now\)"):
        InMemoryCooldownTracker(clock=lambda now: 0.0)
    with pytest.raises(InvalidConfigError, match=r"wall_clock must be .*, which takes \(tz\)"):
        InMemoryCooldownTracker(wall_clock=lambda tz: 0.0)
    with pytest.raises(InvalidConfigError, match=r"backoff must be .*, which takes \(\)"):
        InMemoryCooldownTracker(backoff=lambda: 1.0)  # type: ignore[arg-type,misc]
    assert InMemoryCooldownTracker(backoff=tenacity.wait_fixed(3)).cooldown_remaining("a") == 0
