"""The timed cases: floors, routed calls, the fallback path, async, methods, peers and scale.

Every case calls the same provider function shape, ``fn(provider, x)``, so the rows differ
only in what wraps it. Providers are plain strings; ``"a"`` is the primary.
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import wrapt

import resilient_routing
from resilient_routing import InMemoryCooldownTracker, RouteResult, execute, execute_async, routed

from . import streams
from .harness import Case, Check, async_batch, method_batch, sync_batch

P3 = ("a", "b", "c")
X = 1
HUGE = 10**9  # a failure threshold no benchmark reaches
FOREVER = 10.0**6  # seconds: a cooldown that outlives any run

#: Notes on the built-in strategies' rows (strategies registered by others get none).
STRATEGY_NOTES = {
    "hedged": "sync attempts run on a thread pool",
    "weighted": "weighted random first choice",
    "load_balanced": "rotating first choice",
    "round_robin": "one provider per call",
    "primary_only": "one provider per call",
}

# Names the report and the targets refer to.
BARE = "bare call"
WRAPT = "wrapt.decorator pass-through"
ABARE = "async: bare await"
AWRAPT = "async: wrapt.decorator pass-through"
FALLBACK = "routed fallback"
FALLBACK_PATH = "routed fallback, first fails (exempt)"
HANDWRITTEN_PATH = "hand-written loop, first fails"
AFALLBACK = "async: routed fallback"
METHOD = "routed bound method (fallback)"
TENACITY = "tenacity.retry"
TENACITY_PATH = "tenacity.retry, first attempt fails"
SLEEP0 = "time.sleep(0) (reference)"


def scale_name(n: int, cooling: bool) -> str:
    state = f"all but terminus cooling ({n - 1} skipped)" if cooling else "all healthy"
    return f"fallback, {n} providers, {state}"


class ProviderDown(Exception):
    """What a failing provider raises."""


# --- the provider functions ---------------------------------------------------------------------


def ok(provider: str, x: int) -> int:
    return x


def first_fails(provider: str, x: int) -> int:
    if provider == "a":
        raise ProviderDown(provider)
    return x


async def aok(provider: str, x: int) -> int:
    return x


async def afirst_fails(provider: str, x: int) -> int:
    if provider == "a":
        raise ProviderDown(provider)
    return x


def flaky() -> tuple[Callable[[str, int], int], list[int]]:
    """Return a function failing on its odd calls, and its call counter.

    A retry library calls it twice per call (fail, then succeed): the same first-attempt
    failure the routed fallback path recovers from, on one provider instead of two.
    """
    calls = [0]

    def fn(provider: str, x: int) -> int:
        calls[0] += 1
        if calls[0] & 1:
            raise ProviderDown(provider)
        return x

    return fn, calls


# --- floors -------------------------------------------------------------------------------------


def wraps_passthrough(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def wraps_passthrough_async(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    return wrapper


@wrapt.decorator
def wrapt_passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return wrapped(*args, **kwargs)


@wrapt.decorator
async def wrapt_passthrough_awaiting(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return await wrapped(*args, **kwargs)


def loop_over(fn: Callable[[str, int], int]) -> Callable[[int], int]:
    """A hand-written fallback: try each provider in order, return the first success."""

    def call(x: int) -> int:
        for provider in P3:
            try:
                return fn(provider, x)
            except Exception:
                continue
        raise RuntimeError("all providers failed")

    return call


def aloop_over(fn: Callable[[str, int], Awaitable[int]]) -> Callable[[int], Awaitable[int]]:
    async def call(x: int) -> int:
        for provider in P3:
            try:
                return await fn(provider, x)
            except Exception:
                continue
        raise RuntimeError("all providers failed")

    return call


def _returns(fn: Callable[..., Any], *args: Any) -> Check:
    def check() -> None:
        if (got := fn(*args)) != X:
            raise AssertionError(f"expected {X!r}, got {got!r}")

    return check


def _areturns(fn: Callable[..., Awaitable[Any]], *args: Any) -> Check:
    async def check() -> None:
        if (got := await fn(*args)) != X:
            raise AssertionError(f"expected {X!r}, got {got!r}")

    return check


def floors() -> list[Case]:
    s = "floors"
    method = Method()
    return [
        Case(BARE, s, "sync", sync_batch(ok, "a", X), "ok(provider, x): the loop and one call"),
        Case(
            "functools.wraps pass-through",
            s,
            "sync",
            sync_batch(wraps_passthrough(ok), "a", X),
        ),
        Case(WRAPT, s, "sync", sync_batch(wrapt_passthrough(ok), "a", X), "the ratio floor"),
        Case("bare method call", s, "sync", method_batch(method, X), "obj.call(x), bound per call"),
        Case(
            "hand-written loop",
            s,
            "sync",
            sync_batch(loop_over(ok), X),
            "for p in providers: try/except; first succeeds",
        ),
        Case(ABARE, s, "async", async_batch(aok, "a", X), "await in one running loop"),
        Case(
            "async: functools.wraps pass-through",
            s,
            "async",
            async_batch(wraps_passthrough_async(aok), "a", X),
            "async def wrapper awaiting",
        ),
        Case(
            AWRAPT,
            s,
            "async",
            async_batch(wrapt_passthrough(aok), "a", X),
            "returns the coroutine: the async ratio floor",
        ),
        Case(
            "async: wrapt.decorator, awaiting",
            s,
            "async",
            async_batch(wrapt_passthrough_awaiting(aok), "a", X),
            "async def wrapper awaiting",
        ),
        Case(
            "async: hand-written loop",
            s,
            "async",
            async_batch(aloop_over(aok), X),
            "first succeeds",
        ),
    ]


class Method:
    """The undecorated method, the floor of the routed one."""

    def call(self, x: int) -> int:
        return x


class Client:
    """A routed method: the routed plain function's twin, bound at every call."""

    @routed(strategy="fallback", providers=P3, cooldown=InMemoryCooldownTracker())
    def call(self, provider: str, x: int) -> int:
        return x


# --- resilient_routing ---------------------------------------------------------------------------


def _expect(
    result: RouteResult[Any],
    provider: str | None,
    attempt: int = 1,
    skipped: int = 0,
    failures: int = 0,
) -> None:
    """Check a RouteResult; ``provider=None``: any (load-spreading strategies choose)."""
    got = (result.response, result.attempt, len(result.skipped), len(result.failures))
    want = (X, attempt, skipped, failures)
    if got != want or (provider is not None and result.provider != provider):
        raise AssertionError(
            f"expected (response, attempt, skipped, failures) {want} from {provider or 'any'}, "
            f"got {got} from {result.provider!r}"
        )


def _executes(fn: Any, provider: str | None, **want: int) -> Check:
    return lambda: _expect(fn.execute(X), provider, **want)


def _aexecutes(fn: Any, provider: str | None, **want: int) -> Check:
    async def check() -> None:
        _expect(await fn.execute(X), provider, **want)

    return check


def routed_happy() -> list[Case]:
    s = "routed, happy path (3 providers, fresh in-memory tracker)"
    cases: list[Case] = []
    for strategy in resilient_routing.available_strategies():
        fn = routed(strategy=strategy, providers=P3, cooldown=InMemoryCooldownTracker())(ok)
        name = f"routed {strategy}"
        check = _executes(fn, "a" if strategy in ("fallback", "primary_only") else None)
        note = STRATEGY_NOTES.get(strategy, "")
        cases.append(Case(name, s, "sync", sync_batch(fn, X), note, check=check))
    fn = routed(strategy="fallback", providers=P3, cooldown=InMemoryCooldownTracker())(ok)
    cases.append(
        Case(
            "routed fallback .execute()",
            s,
            "sync",
            sync_batch(fn.execute, X),
            "returns a RouteResult",
            check=_executes(fn, "a"),
        )
    )

    class NoOp:
        def on_event(self, event: object) -> None:
            pass

    listened = routed(
        strategy="fallback", providers=P3, cooldown=InMemoryCooldownTracker(), listeners=[NoOp()]
    )(ok)
    cases.append(
        Case(
            "routed fallback, one no-op listener",
            s,
            "sync",
            sync_batch(listened, X),
            "what listening costs; without a listener the path builds no event",
            check=_executes(listened, "a"),
        )
    )
    tracker = InMemoryCooldownTracker()

    def functional(x: int) -> RouteResult[int]:
        return execute(P3, lambda provider: ok(provider, x), cooldown=tracker)

    cases.append(
        Case(
            "execute(providers, fn)",
            s,
            "sync",
            sync_batch(functional, X),
            "functional form: options resolved per call",
            check=lambda: _expect(functional(X), "a"),
        )
    )
    return cases


def fallback_path() -> list[Case]:
    s = "fallback path: provider a raises, b succeeds"
    exempt = routed(providers=P3, cooldown=InMemoryCooldownTracker(), exempt={"a"})(first_fails)
    recording = routed(providers=P3, cooldown=InMemoryCooldownTracker(failure_threshold=HUGE))(
        first_fails
    )
    versus = (("hand-written loop", HANDWRITTEN_PATH),)
    # What the default costs: a logger enabled at WARNING writes a record per failure (here to
    # a NullHandler), and the call takes the general loop that writes it.
    warning = logging.getLogger("resilient_routing.benchmarks.warning")
    warning.setLevel(logging.WARNING)
    warning.propagate = False
    if not warning.handlers:
        warning.addHandler(logging.NullHandler())
    logged = routed(providers=P3, cooldown=InMemoryCooldownTracker(), exempt={"a"}, logger=warning)(
        first_fails
    )
    return [
        Case(
            FALLBACK_PATH,
            s,
            "sync",
            sync_batch(exempt, X),
            "a is exempt: never recorded",
            check=_executes(exempt, "b", attempt=2, failures=1),
            versus=versus,
        ),
        Case(
            "routed fallback, first fails (recorded)",
            s,
            "sync",
            sync_batch(recording, X),
            f"failure recorded, threshold {HUGE:.0e}",
            check=_executes(recording, "b", attempt=2, failures=1),
            versus=versus,
        ),
        Case(
            "routed fallback, first fails (exempt), WARNING logged",
            s,
            "sync",
            sync_batch(logged, X),
            "logger at WARNING (the default level): one record per failure, general loop",
            check=_executes(logged, "b", attempt=2, failures=1),
            versus=versus,
        ),
        Case(
            HANDWRITTEN_PATH,
            s,
            "sync",
            sync_batch(loop_over(first_fails), X),
            "try/except over the providers",
            check=_returns(loop_over(first_fails), X),
        ),
    ]


def async_cases() -> list[Case]:
    s = "async (awaited in one running loop)"
    cases: list[Case] = []
    for strategy in resilient_routing.available_strategies():
        fn = routed(strategy=strategy, providers=P3, cooldown=InMemoryCooldownTracker())(aok)
        check = _aexecutes(fn, "a" if strategy in ("fallback", "primary_only") else None)
        note = "" if strategy == "hedged" else STRATEGY_NOTES.get(strategy, "")
        batch = async_batch(fn, X)
        cases.append(Case(f"async: routed {strategy}", s, "async", batch, note, check=check))
    fn = routed(strategy="fallback", providers=P3, cooldown=InMemoryCooldownTracker())(aok)
    cases.append(
        Case(
            "async: routed fallback .execute()",
            s,
            "async",
            async_batch(fn.execute, X),
            check=_aexecutes(fn, "a"),
        )
    )
    tracker = InMemoryCooldownTracker()

    async def functional(x: int) -> RouteResult[int]:
        return await execute_async(P3, lambda provider: aok(provider, x), cooldown=tracker)

    async def check_functional() -> None:
        _expect(await functional(X), "a")

    cases.append(
        Case(
            "async: execute_async(providers, fn)",
            s,
            "async",
            async_batch(functional, X),
            check=check_functional,
        )
    )
    exempt = routed(providers=P3, cooldown=InMemoryCooldownTracker(), exempt={"a"})(afirst_fails)
    cases.append(
        Case(
            "async: routed fallback, first fails (exempt)",
            s,
            "async",
            async_batch(exempt, X),
            check=_aexecutes(exempt, "b", attempt=2, failures=1),
            versus=(("async hand-written loop", "async: hand-written loop, first fails"),),
        )
    )
    cases.append(
        Case(
            "async: hand-written loop, first fails",
            s,
            "async",
            async_batch(aloop_over(afirst_fails), X),
            check=_areturns(aloop_over(afirst_fails), X),
        )
    )
    return cases


def method_cases() -> list[Case]:
    client = Client()
    return [
        Case(
            METHOD,
            "methods",
            "sync",
            method_batch(client, X),
            "client.call(x), bound per call",
            check=lambda: _expect(client.call.execute(X), "a"),
            versus=(("routed plain function", FALLBACK),),
        )
    ]


def scale_cases() -> list[Case]:
    s = "scale: fallback happy path by provider count"
    cases: list[Case] = []
    for n in (2, 10, 100):
        names = tuple(f"p{i}" for i in range(n))
        healthy = routed(providers=names, cooldown=InMemoryCooldownTracker())(ok)
        tracker = InMemoryCooldownTracker(
            failure_threshold=1, cooldown=FOREVER, max_cooldown=FOREVER
        )
        for name in names[:-1]:
            tracker.record_failure(name, ProviderDown(name))
        cooling = routed(providers=names, cooldown=tracker)(ok)
        versus = (("3 providers", FALLBACK),)
        cases.append(
            Case(
                scale_name(n, cooling=False),
                s,
                "sync",
                sync_batch(healthy, X),
                check=_executes(healthy, "p0"),
                versus=versus,
            )
        )
        cases.append(
            Case(
                scale_name(n, cooling=True),
                s,
                "sync",
                sync_batch(cooling, X),
                "the terminus answers",
                check=_executes(cooling, names[-1], skipped=n - 1),
                versus=versus,
            )
        )
    return cases


# --- peers --------------------------------------------------------------------------------------


def _calls_twice(fn: Callable[..., Any], calls: list[int]) -> Check:
    """Check one call of a retrying ``fn`` over a ``flaky()`` function fails once, then succeeds."""

    def check() -> None:
        before = calls[0]
        if (got := fn("a", X)) != X or calls[0] - before != 2:
            raise AssertionError(f"expected 2 attempts and {X!r}, got {calls[0] - before}, {got!r}")

    return check


def _peer_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _retry_peer(
    label: str,
    module: str,
    make: Callable[[Any, Callable[..., Any]], Callable[..., Any]],
    note: str,
) -> list[Case]:
    """The happy path and the first-attempt-fails path of a retry library."""
    s = "peers (same provider function)"
    happy_name, path_name = label, f"{label}, first attempt fails"
    mod = _peer_module(module)
    if mod is None:
        return [
            Case(happy_name, s, "sync", None, skip="not installed"),
            Case(path_name, s, "sync", None, skip="not installed"),
        ]
    fn, calls = flaky()
    happy, recovering = make(mod, ok), make(mod, fn)
    return [
        Case(
            happy_name,
            s,
            "sync",
            sync_batch(happy, "a", X),
            note,
            check=_returns(happy, "a", X),
            versus=(("routed fallback", FALLBACK),),
        ),
        Case(
            path_name,
            s,
            "sync",
            sync_batch(recovering, "a", X),
            note,
            check=_calls_twice(recovering, calls),
            versus=(("routed fallback path", FALLBACK_PATH),),
        ),
    ]


def _no_sleep(seconds: float) -> None:
    pass


def _tenacity(mod: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    return mod.retry(  # type: ignore[no-any-return]
        stop=mod.stop_after_attempt(2), wait=mod.wait_none(), sleep=_no_sleep, reraise=True
    )(fn)


def _stamina(mod: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    # Testing mode: no backoff, exactly 2 attempts. No instrumentation hooks (they log).
    mod.set_testing(True, attempts=2)
    mod.instrumentation.set_on_retry_hooks([])
    return mod.retry(on=ProviderDown, attempts=2)(fn)  # type: ignore[no-any-return]


def _backoff(mod: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    return mod.on_exception(  # type: ignore[no-any-return]
        mod.constant, ProviderDown, max_tries=2, interval=0, jitter=None, logger=None
    )(fn)


def _breaker_peer(
    label: str, module: str, make: Callable[[Any, str], Any], failures: Callable[[Any], int]
) -> list[Case]:
    """A breaker per provider in a hand-written loop: happy path, and provider a failing."""
    s = "peers (same provider function)"
    happy_name, path_name = label, f"{label}, first fails"
    mod = _peer_module(module)
    if mod is None:
        return [
            Case(happy_name, s, "sync", None, skip="not installed"),
            Case(path_name, s, "sync", None, skip="not installed"),
        ]
    note = "a breaker per provider in a hand-written loop"

    def guarded(fn: Callable[[str, int], int], tag: str) -> tuple[Callable[[int], int], Any]:
        breakers = {p: make(mod, f"bench-{tag}-{p}") for p in P3}
        calls: dict[str, Callable[[str, int], int]] = {p: breakers[p](fn) for p in P3}

        def call(x: int) -> int:
            for provider in P3:
                try:
                    return calls[provider](provider, x)
                except ProviderDown:
                    continue
            raise RuntimeError("all providers failed")

        return call, breakers["a"]

    happy, _ = guarded(ok, "ok")
    recovering, primary = guarded(first_fails, "fails")

    def check_path() -> None:
        before = failures(primary)
        if recovering(X) != X or failures(primary) != before + 1:
            raise AssertionError("expected provider a to fail once and the call to succeed")

    return [
        Case(
            happy_name,
            s,
            "sync",
            sync_batch(happy, X),
            note,
            check=_returns(happy, X),
            versus=(("routed fallback", FALLBACK),),
        ),
        Case(
            path_name,
            s,
            "sync",
            sync_batch(recovering, X),
            note,
            check=check_path,
            versus=(("routed fallback path", FALLBACK_PATH),),
        ),
    ]


def peer_cases() -> list[Case]:
    cases = _retry_peer(
        TENACITY, "tenacity", _tenacity, "stop_after_attempt(2), wait_none(), no-op sleep"
    )
    cases += _retry_peer(
        "stamina.retry",
        "stamina",
        _stamina,
        "set_testing(True, attempts=2), no instrumentation hooks; time.sleep(0) between attempts",
    )
    cases += _retry_peer(
        "backoff.on_exception",
        "backoff",
        _backoff,
        "constant, interval=0, max_tries=2, logger=None; time.sleep(0) between attempts",
    )
    cases += _breaker_peer(
        "pybreaker",
        "pybreaker",
        lambda mod, name: mod.CircuitBreaker(fail_max=HUGE, reset_timeout=60, name=name),
        lambda breaker: int(breaker.fail_counter),
    )
    cases += _breaker_peer(
        "circuitbreaker",
        "circuitbreaker",
        lambda mod, name: mod.CircuitBreaker(
            failure_threshold=HUGE, recovery_timeout=60, expected_exception=ProviderDown, name=name
        ),
        lambda breaker: int(breaker.failure_count),
    )
    cases.append(
        Case(
            SLEEP0,
            "peers (same provider function)",
            "sync",
            sync_batch(time.sleep, 0),
            "what stamina and backoff pay between attempts",
        )
    )
    return cases


def all_cases() -> list[Case]:
    """Return every timed case, in report order."""
    return (
        floors()
        + routed_happy()
        + fallback_path()
        + async_cases()
        + method_cases()
        + peer_cases()
        + scale_cases()
        + streams.stream_cases()
    )
