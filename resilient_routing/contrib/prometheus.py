"""Prometheus metrics of routed calls, through ``prometheus-client``.

Install with ``pip install 'resilient-routing[prometheus]'`` and register the listener::

    from resilient_routing import configure
    from resilient_routing.contrib.prometheus import PrometheusListener

    configure(listeners=[PrometheusListener()])

The metrics land in ``prometheus_client``'s default registry, or the one you pass; expose it
as usual (``prometheus_client.start_http_server``, ``make_asgi_app``...).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from resilient_routing.events import (
    AttemptFailed,
    AttemptSucceeded,
    CallFinished,
    CooldownStarted,
    FirstItem,
    RoutingEvent,
    StreamEnded,
)

__all__ = ["PrometheusListener"]

#: Seconds; provider calls (LLM and image APIs) take from milliseconds to over a minute.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)


class PrometheusListener:
    """A routing listener that keeps Prometheus metrics of routed calls.

    With the default namespace:

    - ``resilient_routing_calls_total{function, outcome}``: routed calls by outcome
      (``success``, ``exhausted``, ``timeout``, ``propagated``, ``cancelled``);
    - ``resilient_routing_call_duration_seconds{function, outcome}``: their duration;
    - ``resilient_routing_attempts_total{provider, outcome}``: provider attempts, the outcome
      ``success`` or the failure's classification (``fell_over``, ``counted``,
      ``propagated``);
    - ``resilient_routing_attempt_duration_seconds{provider, outcome}``: their duration;
    - ``resilient_routing_cooldowns_started_total{provider}``: cooldowns started;
    - ``resilient_routing_providers_in_cooldown``: providers cooling down now, computed at
      scrape time from the cooldowns started (a provider leaves when its cooldown runs out
      or when it next answers, which ends a cooldown; a streaming provider at its first item,
      although its success is recorded only when its stream ends well);
    - ``resilient_routing_time_to_first_item_seconds{function, provider}``: streaming calls'
      time from their start to their first item (failed attempts included);
    - ``resilient_routing_streams_total{function, outcome}``: streams that ended, by how
      (``completed``, ``closed`` by the consumer, ``failed`` after the first item,
      ``cancelled``).

    Thread-safe: one instance serves every routed function.

    Args:
        registry: where the metrics are registered; None for ``prometheus_client.REGISTRY``.
            A registry takes one listener per namespace (a second raises ``ValueError``).
        namespace: the prefix of every metric name.
        clock: monotonic seconds, to tell when cooldowns run out;
            ``resilient_routing.testing.FakeClock()`` in tests.
        buckets: the histogram buckets, in seconds.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        namespace: str = "resilient_routing",
        *,
        clock: Callable[[], float] = time.monotonic,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        registry = REGISTRY if registry is None else registry
        self._clock = clock
        self._lock = threading.Lock()
        self._cooling: dict[str, float] = {}

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(
                name, doc, labels, namespace=namespace, registry=registry, buckets=buckets
            )

        calls, attempts = ("function", "outcome"), ("provider", "outcome")
        self._calls = counter("calls", "Routed calls, by function and outcome.", calls)
        self._call_duration = histogram(
            "call_duration_seconds", "Duration of routed calls, by function and outcome.", calls
        )
        self._attempts = counter(
            "attempts", "Provider attempts, by provider and outcome.", attempts
        )
        self._attempt_duration = histogram(
            "attempt_duration_seconds",
            "Duration of provider attempts, by provider and outcome.",
            attempts,
        )
        self._cooldowns = counter(
            "cooldowns_started",
            "Cooldowns started by provider failures, by provider.",
            ("provider",),
        )
        self._first_item = histogram(
            "time_to_first_item_seconds",
            "Time from a streaming call's start to its first item, by function and provider.",
            ("function", "provider"),
        )
        self._streams = counter(
            "streams", "Streams that ended, by function and outcome.", ("function", "outcome")
        )
        in_cooldown = Gauge(
            "providers_in_cooldown",
            "Providers cooling down now.",
            namespace=namespace,
            registry=registry,
        )
        in_cooldown.set_function(self._count_cooling)

    def on_event(self, event: RoutingEvent) -> None:
        """Count one routing event."""
        match event:
            case CallFinished():
                self._calls.labels(event.function, event.outcome).inc()
                self._call_duration.labels(event.function, event.outcome).observe(event.duration)
            case AttemptSucceeded():
                provider = event.provider or ""
                self._attempts.labels(provider, "success").inc()
                self._attempt_duration.labels(provider, "success").observe(event.latency)
                if provider in self._cooling:
                    with self._lock:
                        self._cooling.pop(provider, None)
            case AttemptFailed():
                provider = event.provider or ""
                self._attempts.labels(provider, event.classification).inc()
                self._attempt_duration.labels(provider, event.classification).observe(event.latency)
            case FirstItem():
                self._first_item.labels(event.function, event.provider or "").observe(event.latency)
            case StreamEnded():
                self._streams.labels(event.function, event.outcome).inc()
            case CooldownStarted():
                provider = event.provider or ""
                self._cooldowns.labels(provider).inc()
                until = self._clock() + event.duration
                with self._lock:
                    self._cooling[provider] = max(until, self._cooling.get(provider, until))
            case _:
                pass

    def _count_cooling(self) -> float:
        now = self._clock()
        with self._lock:
            for name in [n for n, until in self._cooling.items() if until <= now]:
                del self._cooling[name]
            return len(self._cooling)
