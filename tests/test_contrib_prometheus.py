"""PrometheusListener, read back from a real CollectorRegistry."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    configure,
    get_config,
    routed,
)
from resilient_routing.contrib import prometheus
from resilient_routing.contrib.prometheus import PrometheusListener
from resilient_routing.events import (
    AttemptSucceeded,
    CallStarted,
    CooldownStarted,
)
from resilient_routing.testing import FakeClock

from .harness import Harness

NS = "resilient_routing"


class Down(Exception):
    pass


class BadRequest(Exception):
    pass


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def listener(registry: CollectorRegistry, clock: FakeClock) -> PrometheusListener:
    return PrometheusListener(registry, clock=clock)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value; 0 when absent (a label set never seen)."""
    found = registry.get_sample_value(f"{NS}_{name}", labels)
    return 0.0 if found is None else found


def functions(registry: CollectorRegistry) -> set[str]:
    """The function labels of the calls counter."""
    return {
        sample.labels["function"]
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == f"{NS}_calls_total"
    }


def attempts(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """Attempts by (provider, outcome), zeros left out."""
    return {
        (sample.labels["provider"], sample.labels["outcome"]): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == f"{NS}_attempts_total" and sample.value
    }


def test_success_on_first_provider(
    h: Harness, listener: PrometheusListener, registry: CollectorRegistry
) -> None:
    """A call served by its first provider counts one call and one successful attempt."""
    h.routed(providers=["a", "b", "c"], listeners=[listener])()
    (function,) = functions(registry)
    assert function.endswith("call")
    assert value(registry, "calls_total", function=function, outcome="success") == 1
    assert value(registry, "call_duration_seconds_count", function=function, outcome="success") == 1
    assert attempts(registry) == {("a", "success"): 1}
    assert value(registry, "attempt_duration_seconds_count", provider="a", outcome="success") == 1
    assert value(registry, "attempt_duration_seconds_sum", provider="a", outcome="success") >= 0
    assert value(registry, "providers_in_cooldown") == 0


def test_fallback_after_failure(
    h: Harness, listener: PrometheusListener, registry: CollectorRegistry
) -> None:
    """A failure then a success: each attempt is counted under its provider and outcome."""
    h.routed({"a": Down("a")}, providers=["a", "b", "c"], listeners=[listener])()
    (function,) = functions(registry)
    assert value(registry, "calls_total", function=function, outcome="success") == 1
    assert attempts(registry) == {("a", "counted"): 1, ("b", "success"): 1}
    assert value(registry, "attempt_duration_seconds_count", provider="a", outcome="counted") == 1


def test_all_failed(h: Harness, listener: PrometheusListener, registry: CollectorRegistry) -> None:
    """Every provider failing counts an exhausted call and every attempt that fell over."""
    script = {n: Down(n) for n in "abc"}
    with pytest.raises(AllProvidersFailedError):
        h.routed(script, providers=["a", "b", "c"], cooldown=None, listeners=[listener])()
    (function,) = functions(registry)
    assert value(registry, "calls_total", function=function, outcome="exhausted") == 1
    assert value(registry, "calls_total", function=function, outcome="success") == 0
    assert attempts(registry) == {(n, "fell_over"): 1 for n in "abc"}


def test_propagated_exception(
    h: Harness, listener: PrometheusListener, registry: CollectorRegistry
) -> None:
    """An exception outside fallback_on counts a propagated call and a propagated attempt."""
    with pytest.raises(BadRequest):
        h.routed(
            {"a": BadRequest("no")}, providers=["a", "b"], fallback_on=Down, listeners=[listener]
        )()
    (function,) = functions(registry)
    assert value(registry, "calls_total", function=function, outcome="propagated") == 1
    assert attempts(registry) == {("a", "propagated"): 1}


def test_cooldowns_and_skips(
    h: Harness, listener: PrometheusListener, registry: CollectorRegistry, clock: FakeClock
) -> None:
    """A cooldown is counted, the gauge holds it until it runs out; a skipped provider is not."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=30, clock=clock)
    call = h.routed({"a": Down("a")}, providers=["a", "b"], cooldown=tracker, listeners=[listener])
    call()
    assert value(registry, "cooldowns_started_total", provider="a") == 1
    assert value(registry, "providers_in_cooldown") == 1
    call()  # a is skipped: no attempt
    assert attempts(registry) == {("a", "counted"): 1, ("b", "success"): 2}
    clock.advance(29.5)
    assert value(registry, "providers_in_cooldown") == 1
    clock.advance(0.5)
    assert value(registry, "providers_in_cooldown") == 0
    assert value(registry, "cooldowns_started_total", provider="a") == 1


def test_a_success_ends_the_cooldown(
    h: Harness, listener: PrometheusListener, registry: CollectorRegistry, clock: FakeClock
) -> None:
    """The terminus answering despite its cooldown leaves the gauge, as it leaves the tracker."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=30, clock=clock)
    outcomes: list[object] = [Down("b"), "ok"]

    def terminus(provider: str) -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    call = h.routed(
        {"a": Down("a"), "b": terminus},
        providers=["a", "b"],
        cooldown=tracker,
        listeners=[listener],
    )
    with pytest.raises(AllProvidersFailedError):
        call()
    assert value(registry, "providers_in_cooldown") == 2
    assert call().provider == "b"
    assert value(registry, "providers_in_cooldown") == 1
    assert tracker.cooldowns().keys() == {"a"}


def test_the_longest_cooldown_counts(
    listener: PrometheusListener, registry: CollectorRegistry, clock: FakeClock
) -> None:
    """Two cooldowns of one provider keep it until the later end; other events are ignored."""
    common: dict[str, Any] = {
        "call_id": 1,
        "function": "f",
        "provider": "a",
        "attempt": 1,
        "time": 0.0,
    }
    listener.on_event(CooldownStarted(**common, duration=60))
    listener.on_event(CooldownStarted(**common, duration=10))
    listener.on_event(CallStarted(**common))
    assert value(registry, "cooldowns_started_total", provider="a") == 2
    clock.advance(30)
    assert value(registry, "providers_in_cooldown") == 1
    clock.advance(30)
    assert value(registry, "providers_in_cooldown") == 0
    listener.on_event(AttemptSucceeded(**common))
    assert functions(registry) == set()


def test_threads(listener: PrometheusListener, registry: CollectorRegistry) -> None:
    """Many threads routing at once: every call and attempt is counted exactly."""
    threads, per_thread = 8, 25

    @routed(providers=["a", "b"], cooldown=None, listeners=[listener])
    def call(provider: str, n: int) -> int:
        if provider == "a" and n % 2:
            raise Down(provider)
        return n

    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for n in range(per_thread):
            call(n)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total, failed = threads * per_thread, threads * (per_thread // 2)
    function = "test_threads.<locals>.call"
    assert value(registry, "calls_total", function=function, outcome="success") == total
    assert attempts(registry) == {
        ("a", "success"): total - failed,
        ("a", "fell_over"): failed,
        ("b", "success"): failed,
    }
    assert (
        value(registry, "attempt_duration_seconds_count", provider="a", outcome="fell_over")
        == failed
    )


def test_registries_do_not_collide(clock: FakeClock) -> None:
    """Listeners on separate registries count apart; a registry refuses a second one."""
    first, second = CollectorRegistry(), CollectorRegistry()
    listeners = [PrometheusListener(first, clock=clock), PrometheusListener(second, clock=clock)]

    @routed(providers=["a"], listeners=[listeners[0]])
    def call(provider: str) -> str:
        return provider

    call()
    call()
    assert attempts(first) == {("a", "success"): 2}
    assert attempts(second) == {}
    with pytest.raises(ValueError, match="Duplicated"):
        PrometheusListener(first)
    PrometheusListener(first, namespace="other")
    assert first.get_sample_value("other_providers_in_cooldown") == 0


def test_default_registry_and_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """registry=None means prometheus_client's REGISTRY; buckets= sets the histograms'."""
    default = CollectorRegistry()
    monkeypatch.setattr(prometheus, "REGISTRY", default)
    listener = PrometheusListener(buckets=(0.5, 1.0))

    @routed(providers=["a"], listeners=[listener])
    def call(provider: str) -> str:
        return provider

    call()
    assert attempts(default) == {("a", "success"): 1}
    buckets = {
        sample.labels["le"]
        for metric in default.collect()
        for sample in metric.samples
        if sample.name == f"{NS}_attempt_duration_seconds_bucket"
    }
    assert buckets == {"0.5", "1.0", "+Inf"}


def test_global_listener(listener: PrometheusListener, registry: CollectorRegistry) -> None:
    """Registered with configure(listeners=...), it counts functions that name none."""
    saved = get_config().listeners
    configure(listeners=[listener])
    try:

        @routed(providers=["a"])
        def call(provider: str) -> str:
            return provider

        call()
    finally:
        configure(listeners=saved)
    assert attempts(registry) == {("a", "success"): 1}


def test_import_does_not_import_prometheus_client() -> None:
    """Importing resilient_routing (and resilient_routing.contrib) leaves prometheus_client out."""
    code = (
        "import sys, resilient_routing, resilient_routing.contrib, resilient_routing.events; "
        "print('prometheus_client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_streams_time_to_first_item_and_how_they_ended(
    listener: PrometheusListener, registry: CollectorRegistry
) -> None:
    @routed(providers=["a", "b"], listeners=[listener])
    def chat(provider: str) -> Iterator[str]:
        if provider == "a":
            raise Down("429")
        yield from ("b1", "b2")

    assert list(chat()) == ["b1", "b2"]
    for _ in chat():
        break
    (function,) = functions(registry)
    labels = {"function": function, "provider": "b"}
    assert value(registry, "time_to_first_item_seconds_count", **labels) == 2
    assert value(registry, "streams_total", function=function, outcome="completed") == 1
    assert value(registry, "streams_total", function=function, outcome="closed") == 1
    assert value(registry, "calls_total", function=function, outcome="success") == 2
