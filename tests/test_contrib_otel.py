"""OpenTelemetryListener, read back through the real SDK on private providers."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeter, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    configure,
    events,
    get_config,
    routed,
)
from resilient_routing.contrib.otel import OpenTelemetryListener
from resilient_routing.events import AttemptFailed, CallFinished, CallStarted, RoutingEvent
from resilient_routing.testing import FakeClock

from .harness import Harness

P = "resilient_routing."


class Down(Exception):
    pass


class BadRequest(Exception):
    pass


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def meter_provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def listener(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> OpenTelemetryListener:
    return OpenTelemetryListener(tracer_provider=tracer_provider, meter_provider=meter_provider)


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def span_events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    """The span's events as (name, attributes without the resilient_routing. prefix)."""
    return [
        (e.name, {k.removeprefix(P): v for k, v in (e.attributes or {}).items()})
        for e in span.events
    ]


def key(**attributes: object) -> frozenset[tuple[str, object]]:
    """Metric attributes; ``error_type`` is ``error.type``, the others get the prefix."""
    return frozenset(
        ("error.type" if k == "error_type" else P + k, v) for k, v in attributes.items()
    )


def measured(reader: InMemoryMetricReader) -> dict[str, dict[frozenset[tuple[str, object]], Any]]:
    """One collection: each metric's points by attributes (a counter's value, a histogram's count).

    Collect once per check: older SDKs (1.20) leave out of a collection the histogram points
    that did not change since the previous one.
    """
    data = reader.get_metrics_data()
    found: dict[str, dict[frozenset[tuple[str, object]], Any]] = defaultdict(dict)
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = (
                        point.count
                        if isinstance(point, HistogramDataPoint)
                        else getattr(point, "value", None)
                    )
                    found[metric.name][frozenset((point.attributes or {}).items())] = value
    return found


def test_success_on_first_provider(
    h: Harness, listener: OpenTelemetryListener, exporter: InMemorySpanExporter, reader: Any
) -> None:
    """A call served by its first provider is one ended span with two attempt events."""
    h.routed(providers=["a", "b", "c"], listeners=[listener])()
    span = only_span(exporter)
    attributes = dict(span.attributes or {})
    function = attributes[P + "function"]
    assert isinstance(function, str) and function.endswith("call")
    assert span.name == f"route {function}"
    assert span.kind is trace.SpanKind.INTERNAL
    assert attributes[P + "strategy"] == "fallback"  # the registered name
    assert attributes[P + "providers"] == ("a", "b", "c")
    assert attributes[P + "outcome"] == "success"
    assert attributes[P + "provider"] == "a"
    assert attributes[P + "attempts"] == 1
    assert "error.type" not in attributes
    assert span.status.status_code is StatusCode.UNSET
    (started, started_attrs), (succeeded, succeeded_attrs) = span_events(span)
    assert started == "attempt_started"
    assert started_attrs == {"provider": "a", "attempt": 1, "terminus": False}
    assert succeeded == "attempt_succeeded"
    assert succeeded_attrs["provider"] == "a" and succeeded_attrs["latency"] >= 0
    m = measured(reader)
    assert m["resilient_routing.calls"] == {key(function=function, outcome="success"): 1}
    assert m["resilient_routing.call.duration"] == {key(function=function, outcome="success"): 1}
    assert m["resilient_routing.attempts"] == {key(provider="a", outcome="success"): 1}
    assert m["resilient_routing.attempt.duration"] == {key(provider="a", outcome="success"): 1}


def test_fallback_after_failure(
    h: Harness, listener: OpenTelemetryListener, exporter: InMemorySpanExporter, reader: Any
) -> None:
    """A failure then a success: both attempts are events, the one that served is recorded."""
    h.routed({"a": Down("a is down")}, providers=["a", "b", "c"], listeners=[listener])()
    span = only_span(exporter)
    assert span.attributes is not None
    assert span.attributes[P + "provider"] == "b" and span.attributes[P + "attempts"] == 2
    assert span.status.status_code is StatusCode.UNSET
    names = [name for name, _ in span_events(span)]
    assert names == ["attempt_started", "attempt_failed", "attempt_started", "attempt_succeeded"]
    failed = span_events(span)[1][1]
    assert failed["provider"] == "a" and failed["attempt"] == 1 and failed["terminus"] is False
    assert failed["classification"] == "counted"
    assert failed["exception.type"] == "Down" and failed["exception.message"] == "a is down"
    m = measured(reader)
    assert m["resilient_routing.attempts"] == {
        key(provider="a", outcome="counted", error_type="Down"): 1,
        key(provider="b", outcome="success"): 1,
    }
    assert m["resilient_routing.attempt.duration"] == {
        key(provider="a", outcome="counted", error_type="Down"): 1,
        key(provider="b", outcome="success"): 1,
    }


def test_all_failed(
    h: Harness, listener: OpenTelemetryListener, exporter: InMemorySpanExporter, reader: Any
) -> None:
    """Every provider failing ends the span in ERROR, with the exhaustion as an event."""
    script = {n: Down(n) for n in "abc"}
    with pytest.raises(AllProvidersFailedError):
        h.routed(script, providers=["a", "b", "c"], cooldown=None, listeners=[listener])()
    span = only_span(exporter)
    assert span.attributes is not None
    assert span.attributes[P + "outcome"] == "exhausted"
    assert span.attributes[P + "attempts"] == 3
    assert P + "provider" not in span.attributes
    assert span.attributes["error.type"] == "AllProvidersFailedError"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "AllProvidersFailedError"
    events = span_events(span)
    assert [e["terminus"] for name, e in events if name == "attempt_failed"] == [
        False,
        False,
        True,
    ]
    assert {e["classification"] for name, e in events if name == "attempt_failed"} == {"fell_over"}
    assert events[-1] == ("routing_exhausted", {"failures": 3})
    function = span.attributes[P + "function"]
    m = measured(reader)
    assert m["resilient_routing.calls"] == {
        key(function=function, outcome="exhausted", error_type="AllProvidersFailedError"): 1
    }
    assert m["resilient_routing.attempts"] == {
        key(provider=n, outcome="fell_over", error_type="Down"): 1 for n in "abc"
    }


def test_propagated_exception(
    h: Harness, listener: OpenTelemetryListener, exporter: InMemorySpanExporter, reader: Any
) -> None:
    """An exception outside fallback_on ends the span in ERROR with its own type."""
    with pytest.raises(BadRequest):
        h.routed(
            {"a": BadRequest("no")}, providers=["a", "b"], fallback_on=Down, listeners=[listener]
        )()
    span = only_span(exporter)
    assert span.attributes is not None
    assert span.attributes[P + "outcome"] == "propagated"
    assert span.attributes["error.type"] == "BadRequest"
    assert span.status.status_code is StatusCode.ERROR
    assert span_events(span)[-1][1]["classification"] == "propagated"
    function = span.attributes[P + "function"]
    m = measured(reader)
    assert m["resilient_routing.calls"] == {
        key(function=function, outcome="propagated", error_type="BadRequest"): 1
    }


def test_single_attempt_failure_names_its_exception(
    h: Harness, listener: OpenTelemetryListener, exporter: InMemorySpanExporter
) -> None:
    """A single-attempt strategy's failure propagates: the span names the provider's error."""
    with pytest.raises(Down):
        h.routed(
            {"a": Down("x")}, strategy="primary_only", providers=["a", "b"], listeners=[listener]
        )()
    span = only_span(exporter)
    assert span.attributes is not None
    assert span.attributes[P + "strategy"] == "primary_only"
    assert span.attributes[P + "outcome"] == "propagated"
    assert span.attributes["error.type"] == "Down"


def test_propagated_error_type_is_what_the_call_raised(
    listener: OpenTelemetryListener, exporter: InMemorySpanExporter
) -> None:
    """A call propagating an error no attempt raised (a strategy bug) names its type."""

    class Broken:
        def order(self, providers: object) -> list[int]:
            raise RuntimeError("strategy bug")

    @routed(strategy=Broken(), providers=["a"], listeners=[listener])
    def call(provider: str) -> str:
        return provider

    with pytest.raises(RuntimeError):
        call()
    span = only_span(exporter)
    assert span.attributes is not None and span.attributes["error.type"] == "RuntimeError"
    assert span.status.status_code is StatusCode.ERROR


def test_timeout_outcome(
    listener: OpenTelemetryListener, exporter: InMemorySpanExporter, reader: Any
) -> None:
    """A call that ran out of its timeout ends in ERROR as a RoutingTimeoutError."""
    common: dict[str, Any] = {"call_id": -2, "function": "f", "provider": None, "time": 0.0}

    def run() -> None:
        listener.on_event(CallStarted(**common, attempt=0))
        listener.on_event(CallFinished(**common, attempt=2, outcome="timeout", duration=10.0))

    contextvars.copy_context().run(run)
    span = only_span(exporter)
    assert span.attributes is not None
    assert span.attributes[P + "outcome"] == "timeout" and span.attributes[P + "attempts"] == 2
    assert span.attributes["error.type"] == "RoutingTimeoutError"
    assert span.status.status_code is StatusCode.ERROR
    m = measured(reader)
    assert m["resilient_routing.call.duration"] == {
        key(function="f", outcome="timeout", error_type="RoutingTimeoutError"): 1
    }


def test_long_messages_are_cut(
    listener: OpenTelemetryListener, exporter: InMemorySpanExporter
) -> None:
    """Only the exception's type and the first 200 characters of its message are kept."""
    Harness("sync").routed({"a": Down("x" * 500)}, providers=["a", "b"], listeners=[listener])()
    failed = [e for name, e in span_events(only_span(exporter)) if name == "attempt_failed"]
    assert failed[0]["exception.message"] == "x" * 199 + "…"


def test_unprintable_exception(
    listener: OpenTelemetryListener, exporter: InMemorySpanExporter
) -> None:
    """An exception whose str() raises is named by its type alone; a missing one is _OTHER."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    common: dict[str, Any] = {"call_id": -3, "function": "f", "attempt": 1, "time": 0.0}

    def run() -> None:
        listener.on_event(CallStarted(**common, provider=None))
        listener.on_event(AttemptFailed(**common, provider="a", exception=Unprintable()))
        listener.on_event(AttemptFailed(**common, provider="b"))
        listener.on_event(CallFinished(**common, provider=None, outcome="propagated"))

    contextvars.copy_context().run(run)
    span = only_span(exporter)
    (_, failed), (_, unknown) = span_events(span)
    assert failed["exception.type"] == "Unprintable" and failed["exception.message"] == ""
    assert unknown["exception.type"] == "_OTHER" and "exception.message" not in unknown
    assert span.attributes is not None and span.attributes["error.type"] == "_OTHER"


def test_skipped_provider_and_cooldown_start(
    h: Harness, listener: OpenTelemetryListener, exporter: InMemorySpanExporter, reader: Any
) -> None:
    """A failure that starts a cooldown, then the skip it causes, are span events."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=30, clock=FakeClock())
    call = h.routed({"a": Down("a")}, providers=["a", "b"], cooldown=tracker, listeners=[listener])
    call()
    call()
    first, second = exporter.get_finished_spans()
    assert ("cooldown_started", {"provider": "a", "cooldown.duration": 30.0}) in span_events(first)
    assert span_events(second)[0] == (
        "provider_skipped",
        {"provider": "a", "cooldown.remaining": 30.0},
    )
    assert [name for name, _ in span_events(second)][1:] == [
        "attempt_started",
        "attempt_succeeded",
    ]
    m = measured(reader)
    assert m["resilient_routing.cooldowns"] == {key(provider="a"): 1}


def test_terminus_in_cooldown_is_flagged(
    h: Harness, listener: OpenTelemetryListener, exporter: InMemorySpanExporter
) -> None:
    """The terminus called despite its cooldown is flagged on its attempt, with retry_after."""
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=30, clock=FakeClock())
    call = h.routed(
        {"a": Down("a"), "b": Down("b")},
        providers=["a", "b"],
        cooldown=tracker,
        listeners=[listener],
    )
    for _ in range(2):
        with pytest.raises(AllProvidersFailedError):
            call()
    first, second = exporter.get_finished_spans()
    assert [e for name, e in span_events(first) if name == "attempt_started"][1] == {
        "provider": "b",
        "attempt": 2,
        "terminus": True,
        "terminus.in_cooldown": False,
    }
    assert span_events(second)[1] == (
        "attempt_started",
        {"provider": "b", "attempt": 1, "terminus": True, "terminus.in_cooldown": True},
    )
    assert second.attributes is not None and second.attributes[P + "retry_after"] == 30.0
    assert span_events(second)[-1] == ("routing_exhausted", {"failures": 1, "retry_after": 30.0})


def test_provider_spans_nest_under_the_call(
    listener: OpenTelemetryListener, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Spans a provider starts are children of the call's span, which ends current no more."""
    tracer = tracer_provider.get_tracer("client")

    @routed(providers=["a", "b"], listeners=[listener])
    def call(provider: str) -> str:
        with tracer.start_as_current_span(f"client {provider}"):
            if provider == "a":
                raise Down(provider)
        return provider

    with tracer.start_as_current_span("request") as request:
        call()
        assert trace.get_current_span() is request
    assert trace.get_current_span() is trace.INVALID_SPAN
    spans = {s.name: s for s in exporter.get_finished_spans()}
    route = next(s for n, s in spans.items() if n.startswith("route "))
    assert route.parent is not None and route.parent.span_id == request.get_span_context().span_id
    for client in ("client a", "client b"):
        parent = spans[client].parent
        assert parent is not None and parent.span_id == route.context.span_id


def test_nested_routed_calls(
    listener: OpenTelemetryListener, exporter: InMemorySpanExporter
) -> None:
    """A routed call made inside a provider is a child span of the outer call."""

    @routed(providers=["x"], listeners=[listener])
    def inner(provider: str) -> str:
        return provider

    @routed(providers=["a"], listeners=[listener])
    def outer(provider: str) -> str:
        return inner()

    outer()
    inner_span, outer_span = exporter.get_finished_spans()
    assert inner_span.attributes is not None and inner_span.attributes[P + "provider"] == "x"
    assert inner_span.parent is not None and inner_span.parent.span_id == outer_span.context.span_id
    assert outer_span.parent is None
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_async_calls_each_get_their_span(
    listener: OpenTelemetryListener, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Concurrent async calls: each task's provider span nests under its own call's span."""
    tracer = tracer_provider.get_tracer("client")

    @routed(providers=["a", "b"], cooldown=None, listeners=[listener])
    async def call(provider: str, n: int) -> int:
        with tracer.start_as_current_span(f"client {n} {provider}"):
            await asyncio.sleep(0)
            if provider == "a" and n % 2:
                raise Down(provider)
        return n

    assert await asyncio.gather(*(call(n) for n in range(20))) == list(range(20))
    assert trace.get_current_span() is trace.INVALID_SPAN
    spans = exporter.get_finished_spans()
    routes = {s.context.span_id: s for s in spans if s.name.startswith("route ")}
    assert len(routes) == 20 and all(s.parent is None for s in routes.values())
    clients = [s for s in spans if s.name.startswith("client ")]
    assert len(clients) == 30
    by_call: dict[int, set[str]] = {}
    for client in clients:
        assert client.parent is not None
        by_call.setdefault(client.parent.span_id, set()).add(client.name.split()[1])
    assert all(len(numbers) == 1 for numbers in by_call.values())
    assert set(by_call) == set(routes)


async def test_cancelled_call_ends_its_span(
    listener: OpenTelemetryListener, exporter: InMemorySpanExporter, reader: Any
) -> None:
    """A cancelled async call ends its span (outcome cancelled, status UNSET) and detaches."""
    entered = asyncio.Event()

    @routed(providers=["a", "b"], listeners=[listener])
    async def call(provider: str) -> str:
        entered.set()
        await asyncio.Event().wait()
        return provider

    task = asyncio.create_task(call())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = only_span(exporter)
    assert span.attributes is not None and span.attributes[P + "outcome"] == "cancelled"
    assert "error.type" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET
    assert listener._open == {}
    function = span.attributes[P + "function"]
    m = measured(reader)
    assert m["resilient_routing.calls"] == {key(function=function, outcome="cancelled"): 1}


def test_threads(
    listener: OpenTelemetryListener, exporter: InMemorySpanExporter, reader: Any
) -> None:
    """Many threads routing at once: every span ends, with its own events; counts are exact."""
    threads, per_thread = 8, 25

    @routed(providers=["a", "b"], cooldown=None, listeners=[listener])
    def call(provider: str, n: int) -> int:
        if provider == "a" and n % 2:
            raise Down(provider)
        return n

    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            for n in range(per_thread):
                assert call(n) == n
            assert trace.get_current_span() is trace.INVALID_SPAN
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    total = threads * per_thread
    spans = exporter.get_finished_spans()
    assert len(spans) == total and listener._open == {}
    for span in spans:
        assert span.attributes is not None
        served = "b" if span.attributes[P + "attempts"] == 2 else "a"
        assert span.attributes[P + "provider"] == served
        assert len(span.events) == (4 if served == "b" else 2)
    function = "test_threads.<locals>.call"
    failed = threads * (per_thread // 2)
    m = measured(reader)
    assert m["resilient_routing.calls"] == {key(function=function, outcome="success"): total}
    assert m["resilient_routing.attempts"] == {
        key(provider="a", outcome="success"): total - failed,
        key(provider="a", outcome="fell_over", error_type="Down"): failed,
        key(provider="b", outcome="success"): failed,
    }


def test_global_listener(listener: OpenTelemetryListener, exporter: InMemorySpanExporter) -> None:
    """Registered with configure(listeners=...), it traces functions that name none."""
    saved = get_config().listeners
    configure(listeners=[listener])
    try:

        @routed(providers=["a"])
        def call(provider: str) -> str:
            return provider

        call()
    finally:
        configure(listeners=saved)
    assert only_span(exporter).attributes is not None


def test_finish_in_another_thread_leaves_the_context(
    listener: OpenTelemetryListener,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A CallFinished delivered elsewhere ends the span without detaching a foreign context."""
    started = CallStarted(call_id=-1, function="f", provider=None, attempt=0, time=0.0)
    finished = CallFinished(call_id=-1, function="f", provider=None, attempt=0, time=0.0)

    def start() -> trace.Span:
        listener.on_event(started)
        return trace.get_current_span()

    current = contextvars.copy_context().run(start)
    worker = threading.Thread(target=listener.on_event, args=(finished,))
    worker.start()
    worker.join()
    span = only_span(exporter)
    assert current.get_span_context().span_id == span.context.span_id
    assert listener._open == {}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_open_spans_are_bounded(
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    exporter: InMemorySpanExporter,
    reader: Any,
) -> None:
    """Past max_open_calls, the oldest open span ends as abandoned; its late finish is counted."""
    listener = OpenTelemetryListener(tracer_provider, meter_provider, max_open_calls=2)

    def event(kind: type[RoutingEvent], call_id: int) -> RoutingEvent:
        return kind(call_id=call_id, function="f", provider=None, attempt=0, time=0.0)

    def run() -> None:
        for call_id in (1, 2, 3):
            listener.on_event(event(CallStarted, call_id))
        (abandoned,) = exporter.get_finished_spans()
        assert abandoned.attributes is not None
        assert abandoned.attributes[P + "outcome"] == "abandoned"
        for call_id in (3, 2, 1):
            listener.on_event(event(CallFinished, call_id))

    contextvars.copy_context().run(run)
    assert len(exporter.get_finished_spans()) == 3
    m = measured(reader)
    assert m["resilient_routing.calls"] == {key(function="f", outcome="success"): 3}
    with pytest.raises(ValueError, match="max_open_calls"):
        OpenTelemetryListener(max_open_calls=0)


def test_a_call_whose_span_was_dropped_still_detaches_its_context(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> None:
    """Over max_open_calls the outer span ends early; its call still restores the context.

    Otherwise the ended span stays current, and later spans of the thread nest in it.
    """
    listener = OpenTelemetryListener(tracer_provider, meter_provider, max_open_calls=1)

    @routed(providers=["i"], listeners=[listener], cooldown=None)
    def inner(provider: str) -> str:
        return provider

    @routed(providers=["o"], listeners=[listener], cooldown=None)
    def outer(provider: str) -> str:
        return inner()

    def run() -> object:
        outer()
        return trace.get_current_span()

    assert contextvars.copy_context().run(run) is trace.INVALID_SPAN


def test_events_of_unknown_calls_are_only_measured(
    listener: OpenTelemetryListener, exporter: InMemorySpanExporter, reader: Any
) -> None:
    """Events of a call whose start it never saw are measured; other event kinds are ignored."""
    common: Mapping[str, Any] = {"call_id": -7, "function": "f", "provider": "a", "attempt": 1}
    for made in (
        events.TerminusUsed(**common, time=0.0),
        events.AttemptStarted(**common, time=0.0),
        events.AttemptSucceeded(**common, time=0.0),
        events.AttemptFailed(**common, time=0.0),
        events.ProviderSkipped(**common, time=0.0),
        events.CooldownStarted(**common, time=0.0),
        events.RoutingExhausted(**common, time=0.0),
        events.RoutingEvent(**common, time=0.0),
    ):
        listener.on_event(made)
    assert exporter.get_finished_spans() == ()
    m = measured(reader)
    assert m["resilient_routing.attempts"] == {
        key(provider="a", outcome="success"): 1,
        key(provider="a", outcome="fell_over", error_type="_OTHER"): 1,
    }
    assert m["resilient_routing.cooldowns"] == {key(provider="a"): 1}


def test_api_without_bucket_advice() -> None:
    """An opentelemetry-api older than 1.30 (no bucket advice on histograms) still works."""

    class OldMeter(NoOpMeter):
        def create_histogram(  # type: ignore[override]
            self, name: str, unit: str = "", description: str = ""
        ) -> Any:
            return super().create_histogram(name, unit, description)

    class OldMeterProvider(NoOpMeterProvider):
        def get_meter(self, name: str, *args: Any, **kwargs: Any) -> NoOpMeter:
            return OldMeter(name)

    listener = OpenTelemetryListener(meter_provider=OldMeterProvider())

    @routed(providers=["a"], listeners=[listener])
    def call(provider: str) -> str:
        return provider

    assert call() == "a"


def test_a_failing_listener_never_breaks_the_call(
    tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """When tracing itself raises, routed calls still answer, and the next calls are traced."""
    failures: list[str] = []
    real = tracer_provider.get_tracer("resilient_routing.contrib.otel")

    class FlakyTracer(trace.NoOpTracer):
        def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
            if not failures:
                failures.append("raised")
                raise RuntimeError("exporter misconfigured")
            return real.start_span(*args, **kwargs)

    class FlakyProvider(trace.NoOpTracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
            return FlakyTracer()

    listener = OpenTelemetryListener(tracer_provider=FlakyProvider())

    @routed(providers=["a", "b"], listeners=[listener])
    def call(provider: str) -> str:
        return provider

    assert call() == "a"
    assert failures == ["raised"]
    assert call() == "a"
    assert len(exporter.get_finished_spans()) == 1 and listener._open == {}
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_import_does_not_import_opentelemetry() -> None:
    """Importing resilient_routing (and resilient_routing.contrib) leaves OpenTelemetry out."""
    code = (
        "import sys, resilient_routing, resilient_routing.contrib, resilient_routing.events; "
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_stream_is_one_span_until_its_end(
    listener: OpenTelemetryListener, exporter: InMemorySpanExporter, reader: Any
) -> None:
    """A streaming call's span lasts until its stream ends, current until the first item."""
    inside: list[bool] = []

    @routed(providers=["a", "b"], listeners=[listener])
    def chat(provider: str) -> Iterator[str]:
        inside.append(trace.get_current_span().is_recording())
        if provider == "a":
            raise Down("429")
        yield from ("b1", "b2", "b3")

    stream = chat()
    assert next(stream) == "b1"
    assert exporter.get_finished_spans() == ()  # the call goes on with its stream
    assert not trace.get_current_span().is_recording()  # the consumer's code is its own
    assert list(stream) == ["b2", "b3"]
    span = only_span(exporter)
    assert inside == [True, True]  # the providers ran under the route's span
    attributes = {k.removeprefix(P): v for k, v in (span.attributes or {}).items()}
    assert attributes["stream.outcome"] == "completed"
    assert attributes["stream.items"] == 3
    assert attributes["outcome"] == "success" and attributes["provider"] == "b"
    assert attributes["first_item.latency"] >= 0
    names = [name for name, _ in span_events(span)]
    assert names[-2:] == ["first_item", "stream_ended"]
    ttfi = measured(reader)["resilient_routing.time_to_first_item"]
    (point,) = ttfi.values()
    assert point == 1


def test_a_stream_failing_mid_way_is_an_error_span(
    listener: OpenTelemetryListener, exporter: InMemorySpanExporter
) -> None:
    @routed(providers=["a"], listeners=[listener])
    def chat(provider: str) -> Iterator[str]:
        yield "a1"
        raise Down("cut")

    with pytest.raises(Down):
        list(chat())
    span = only_span(exporter)
    attributes = {k.removeprefix(P): v for k, v in (span.attributes or {}).items()}
    assert attributes["stream.outcome"] == "failed" and attributes["stream.items"] == 1
    assert attributes["outcome"] == "propagated" and attributes["error.type"] == "Down"
    assert span.status.status_code is StatusCode.ERROR
