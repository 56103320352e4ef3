"""OpenTelemetry traces and metrics of routed calls, through ``opentelemetry-api`` only.

Install with ``pip install 'resilient-routing[otel]'`` and register the listener::

    from resilient_routing import configure
    from resilient_routing.contrib.otel import OpenTelemetryListener

    configure(listeners=[OpenTelemetryListener()])

Each routed call is a span ``route {function}``, current while the call runs so the spans of
provider clients (httpx, openai...) nest under it. Its attempts, skipped providers and
cooldowns are span events. Metrics: ``resilient_routing.calls``,
``resilient_routing.call.duration``, ``resilient_routing.attempts``,
``resilient_routing.attempt.duration`` and ``resilient_routing.cooldowns``. The application
chooses the SDK and exporters; without one, everything is a no-op.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from contextvars import Token

from opentelemetry import context, metrics, trace
from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from resilient_routing.events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    CallFinished,
    CallStarted,
    CooldownStarted,
    FirstItem,
    ProviderSkipped,
    RoutingEvent,
    RoutingExhausted,
    StreamEnded,
    TerminusUsed,
)

__all__ = ["OpenTelemetryListener"]

_FUNCTION = "resilient_routing.function"
_STRATEGY = "resilient_routing.strategy"
_PROVIDERS = "resilient_routing.providers"
_PROVIDER = "resilient_routing.provider"
_OUTCOME = "resilient_routing.outcome"
_ATTEMPTS = "resilient_routing.attempts"
_ATTEMPT = "resilient_routing.attempt"
_TERMINUS = "resilient_routing.terminus"
_TERMINUS_IN_COOLDOWN = "resilient_routing.terminus.in_cooldown"
_CLASSIFICATION = "resilient_routing.classification"
_LATENCY = "resilient_routing.latency"
_COOLDOWN_REMAINING = "resilient_routing.cooldown.remaining"
_COOLDOWN_DURATION = "resilient_routing.cooldown.duration"
_FAILURES = "resilient_routing.failures"
_RETRY_AFTER = "resilient_routing.retry_after"
_FIRST_ITEM = "resilient_routing.first_item.latency"
_STREAM_OUTCOME = "resilient_routing.stream.outcome"
_STREAM_ITEMS = "resilient_routing.stream.items"
_ERROR_TYPE = "error.type"
_EXCEPTION_TYPE = "exception.type"
_EXCEPTION_MESSAGE = "exception.message"

#: Seconds; provider calls (LLM and image APIs) take from milliseconds to over a minute.
_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

#: Characters of an exception's message kept in a span event.
_MESSAGE_LIMIT = 200

#: ``error.type`` when the exception's type is unknown, as the semantic conventions spell it.
_OTHER = "_OTHER"

_CALL_ERRORS = {"exhausted": "AllProvidersFailedError", "timeout": "RoutingTimeoutError"}

_Attributes = dict[str, AttributeValue]


def _owner() -> tuple[int, asyncio.Task[object] | None]:
    """Return the thread and asyncio task running now: where a context was attached."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), task


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        return ""
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


class _Call:
    """The span of one routed call and what its later events need."""

    __slots__ = ("last_error", "owner", "span", "terminus", "terminus_cooling", "token")

    def __init__(self, span: trace.Span, token: Token[Context], owner: object) -> None:
        self.span = span
        self.token: Token[Context] | None = token
        self.owner = owner
        self.terminus: str | None = None
        self.terminus_cooling = False
        self.last_error: str | None = None

    def attempt_attributes(self, event: RoutingEvent) -> _Attributes:
        provider = event.provider or ""
        return {_PROVIDER: provider, _ATTEMPT: event.attempt, _TERMINUS: provider == self.terminus}


class OpenTelemetryListener:
    """A routing listener that traces every routed call and records OpenTelemetry metrics.

    A span ``route {function}`` starts with the call and ends with it, current in between
    (in the caller's thread or task) so spans started by the providers nest under it. Its
    attributes: ``resilient_routing.function``, ``.strategy``, ``.providers``, then
    ``.outcome``, ``.attempts`` and ``.provider`` (the one that served). A call that failed
    (outcome ``exhausted``, ``timeout`` or ``propagated``) has the status ERROR and
    ``error.type``; a cancelled one keeps the status UNSET. Span events: ``attempt_started``,
    ``attempt_succeeded``, ``attempt_failed`` (``exception.type``, and ``exception.message``
    cut to 200 characters), ``provider_skipped``, ``cooldown_started``,
    ``routing_exhausted``.

    A streaming call's span lasts until its stream ends, current only until the first item
    (the consumer's code runs between items); it gets ``resilient_routing.first_item.latency``,
    ``.stream.outcome`` and ``.stream.items``, and the span events ``first_item`` and
    ``stream_ended``.

    Metrics: counters ``resilient_routing.calls`` (``resilient_routing.function``,
    ``resilient_routing.outcome``) and ``resilient_routing.attempts``
    (``resilient_routing.provider``, ``resilient_routing.outcome``: ``success`` or the
    failure's classification), histograms ``resilient_routing.call.duration`` and
    ``resilient_routing.attempt.duration`` (seconds, same attributes), all with ``error.type``
    on failures, the counter ``resilient_routing.cooldowns`` (``resilient_routing.provider``),
    and for streams the histogram ``resilient_routing.time_to_first_item``
    (``resilient_routing.function``, ``resilient_routing.provider``).

    Thread-safe: one instance serves every routed function.

    Args:
        tracer_provider: where spans go; None for the global one, read now.
        meter_provider: where metrics go; None for the global one, read now.
        max_open_calls: spans kept open at most. Every call finishes (the core guarantees it),
            so this only bounds memory should one never do: past it, the oldest open span
            ends with the outcome ``abandoned``.

    Raises:
        ValueError: ``max_open_calls`` is below 1.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        max_open_calls: int = 10_000,
    ) -> None:
        if max_open_calls < 1:
            raise ValueError(f"max_open_calls must be at least 1, got {max_open_calls!r}")
        self._max_open = max_open_calls
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(__name__, meter_provider=meter_provider)
        self._calls_counter = meter.create_counter(
            "resilient_routing.calls", unit="{call}", description="Routed calls."
        )
        self._call_duration = _histogram(
            meter, "resilient_routing.call.duration", "Duration of routed calls."
        )
        self._attempts = meter.create_counter(
            "resilient_routing.attempts", unit="{attempt}", description="Provider attempts."
        )
        self._attempt_duration = _histogram(
            meter, "resilient_routing.attempt.duration", "Duration of provider attempts."
        )
        self._cooldowns = meter.create_counter(
            "resilient_routing.cooldowns",
            unit="{cooldown}",
            description="Cooldowns started by provider failures.",
        )
        self._time_to_first_item = _histogram(
            meter,
            "resilient_routing.time_to_first_item",
            "Time from a streaming call's start to its first item.",
        )
        self._lock = threading.Lock()
        self._open: OrderedDict[int, _Call] = OrderedDict()
        #: The calls whose span ended early (over max_open_calls): their context is still
        #: attached where they run, for their own finish to detach (as many, at most).
        self._dropped: OrderedDict[int, _Call] = OrderedDict()

    def on_event(self, event: RoutingEvent) -> None:
        """Turn one routing event into span changes and measurements."""
        match event:
            case CallStarted():
                self._started(event)
            case CallFinished():
                self._finished(event)
            case AttemptStarted():
                self._attempt_started(event)
            case AttemptSucceeded():
                self._attempt_succeeded(event)
            case AttemptFailed():
                self._attempt_failed(event)
            case TerminusUsed():
                self._terminus_used(event)
            case ProviderSkipped():
                self._skipped(event)
            case CooldownStarted():
                self._cooldown_started(event)
            case RoutingExhausted():
                self._exhausted(event)
            case FirstItem():
                self._first_item(event)
            case StreamEnded():
                self._stream_ended(event)
            case _:
                pass

    # -- the call's span -----------------------------------------------------------------

    def _started(self, event: CallStarted) -> None:
        if event.call_id in self._open:
            return  # heard twice (the listener given twice): the call has its span
        span = self._tracer.start_span(
            f"route {event.function}",
            kind=trace.SpanKind.INTERNAL,
            attributes={
                _FUNCTION: event.function,
                _STRATEGY: event.strategy,
                _PROVIDERS: list(event.providers),
            },
        )
        call = _Call(span, context.attach(trace.set_span_in_context(span)), _owner())
        with self._lock:
            self._open[event.call_id] = call
            evicted = None
            if len(self._open) > self._max_open:
                evicted_id, evicted = self._open.popitem(last=False)
                self._dropped[evicted_id] = evicted
                if len(self._dropped) > self._max_open:
                    self._dropped.popitem(last=False)
        if evicted is not None:
            # Its context stays attached where it was: only its own thread or task may detach.
            evicted.span.set_attribute(_OUTCOME, "abandoned")
            evicted.span.end()

    def _finished(self, event: CallFinished) -> None:
        with self._lock:
            call = self._open.pop(event.call_id, None)
            dropped = self._dropped.pop(event.call_id, None) if call is None else None
        if dropped is not None:
            self._detach(dropped)  # its span ended already: only its context is left
        outcome = event.outcome
        error = _CALL_ERRORS.get(outcome)
        if outcome == "propagated":
            if event.exception is not None:
                error = type(event.exception).__name__
            else:
                error = (call.last_error if call is not None else None) or _OTHER
        attributes: _Attributes = {_FUNCTION: event.function, _OUTCOME: outcome}
        if error is not None:
            attributes[_ERROR_TYPE] = error
        self._calls_counter.add(1, attributes)
        self._call_duration.record(event.duration, attributes)
        if call is None:
            return
        self._detach(call)
        span = call.span
        span.set_attribute(_OUTCOME, outcome)
        span.set_attribute(_ATTEMPTS, event.attempt)
        if event.provider is not None:
            span.set_attribute(_PROVIDER, event.provider)
        if error is not None:
            span.set_attribute(_ERROR_TYPE, error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        span.end()

    @staticmethod
    def _detach(call: _Call) -> None:
        if call.token is not None and call.owner == _owner():
            # Elsewhere the token would not belong to the current context: leave it.
            context.detach(call.token)
        call.token = None

    def _get(self, call_id: int) -> _Call | None:
        with self._lock:
            return self._open.get(call_id)

    # -- attempts ------------------------------------------------------------------------

    def _terminus_used(self, event: TerminusUsed) -> None:
        call = self._get(event.call_id)
        if call is not None:
            call.terminus = event.provider
            call.terminus_cooling = event.in_cooldown

    def _attempt_started(self, event: AttemptStarted) -> None:
        call = self._get(event.call_id)
        if call is None:
            return
        call.last_error = None
        attributes = call.attempt_attributes(event)
        if event.provider == call.terminus:
            attributes[_TERMINUS_IN_COOLDOWN] = call.terminus_cooling
        call.span.add_event(event.kind, attributes)

    def _attempt_succeeded(self, event: AttemptSucceeded) -> None:
        measured: _Attributes = {_PROVIDER: event.provider or "", _OUTCOME: "success"}
        self._attempts.add(1, measured)
        self._attempt_duration.record(event.latency, measured)
        call = self._get(event.call_id)
        if call is not None:
            attributes = call.attempt_attributes(event)
            attributes[_LATENCY] = event.latency
            call.span.add_event(event.kind, attributes)

    def _attempt_failed(self, event: AttemptFailed) -> None:
        exc = event.exception
        error = _OTHER if exc is None else type(exc).__name__
        measured: _Attributes = {
            _PROVIDER: event.provider or "",
            _OUTCOME: event.classification,
            _ERROR_TYPE: error,
        }
        self._attempts.add(1, measured)
        self._attempt_duration.record(event.latency, measured)
        call = self._get(event.call_id)
        if call is None:
            return
        call.last_error = error
        attributes = call.attempt_attributes(event)
        attributes[_CLASSIFICATION] = event.classification
        attributes[_LATENCY] = event.latency
        attributes[_EXCEPTION_TYPE] = error
        if exc is not None:
            attributes[_EXCEPTION_MESSAGE] = _message(exc)
        call.span.add_event(event.kind, attributes)

    # -- cooldowns and exhaustion --------------------------------------------------------

    def _skipped(self, event: ProviderSkipped) -> None:
        call = self._get(event.call_id)
        if call is not None:
            call.span.add_event(
                event.kind,
                {_PROVIDER: event.provider or "", _COOLDOWN_REMAINING: event.cooldown_remaining},
            )

    def _cooldown_started(self, event: CooldownStarted) -> None:
        provider = event.provider or ""
        self._cooldowns.add(1, {_PROVIDER: provider})
        call = self._get(event.call_id)
        if call is not None:
            call.span.add_event(
                event.kind, {_PROVIDER: provider, _COOLDOWN_DURATION: event.duration}
            )

    def _exhausted(self, event: RoutingExhausted) -> None:
        call = self._get(event.call_id)
        if call is None:
            return
        attributes: _Attributes = {_FAILURES: len(event.failures)}
        if event.retry_after is not None:
            attributes[_RETRY_AFTER] = event.retry_after
            call.span.set_attribute(_RETRY_AFTER, event.retry_after)
        call.span.add_event(event.kind, attributes)

    # -- streams -------------------------------------------------------------------------

    def _first_item(self, event: FirstItem) -> None:
        self._time_to_first_item.record(
            event.latency, {_FUNCTION: event.function, _PROVIDER: event.provider or ""}
        )
        call = self._get(event.call_id)
        if call is None:
            return
        if call.token is not None and call.owner == _owner():
            # The consumer's code runs between items: its spans are not the routing's.
            context.detach(call.token)
            call.token = None
        call.span.set_attribute(_FIRST_ITEM, event.latency)
        call.span.add_event(event.kind, {_PROVIDER: event.provider or "", _LATENCY: event.latency})

    def _stream_ended(self, event: StreamEnded) -> None:
        call = self._get(event.call_id)
        if call is None:
            return
        call.span.set_attribute(_STREAM_OUTCOME, event.outcome)
        call.span.set_attribute(_STREAM_ITEMS, event.items)
        attributes: _Attributes = {_STREAM_OUTCOME: event.outcome, _STREAM_ITEMS: event.items}
        if event.exception is not None:
            attributes[_EXCEPTION_TYPE] = type(event.exception).__name__
            attributes[_EXCEPTION_MESSAGE] = _message(event.exception)
        call.span.add_event(event.kind, attributes)


def _histogram(meter: metrics.Meter, name: str, description: str) -> metrics.Histogram:
    try:
        return meter.create_histogram(
            name, unit="s", description=description, explicit_bucket_boundaries_advisory=_BUCKETS
        )
    except TypeError:  # opentelemetry-api < 1.30 takes no bucket advice
        return meter.create_histogram(name, unit="s", description=description)
