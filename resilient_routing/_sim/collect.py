"""What the simulator keeps of a run: the routing's events on virtual time, and their figures."""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from resilient_routing import events

from .scenario import OutageSpec, Scenario

__all__ = ["BUCKET", "Collector", "ConfigResult", "outage_keys", "percentile"]

BUCKET = 60.0  # seconds per point of the timelines


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the nearest-rank ``q`` quantile of the sorted ``values``, rounded; None if empty."""
    if not values:
        return None
    return round(values[min(len(values) - 1, math.ceil(q * len(values)) - 1)], 4)


@dataclass
class ConfigResult:
    """What one configuration did over the scenario."""

    name: str
    strategy: str
    stream: bool = False
    calls: int = 0
    succeeded: int = 0
    attempts: int = 0
    wasted: int = 0
    latencies: list[float] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)
    provider_latencies: dict[str, list[float]] = field(default_factory=dict)
    probes: Counter[str] = field(default_factory=Counter)  # started / succeeded / failed
    slow_calls: Counter[str] = field(default_factory=Counter)  # seen / counted
    first_items: list[float] = field(default_factory=list)
    streams: Counter[str] = field(default_factory=Counter)  # StreamEnded outcomes
    route_around: dict[str, float | None] = field(default_factory=dict)
    come_back: dict[str, float | None] = field(default_factory=dict)
    during: dict[str, dict[str, int]] = field(default_factory=dict)
    timeline: dict[str, list[float]] = field(default_factory=dict)

    def summary(self, providers: tuple[str, ...]) -> dict[str, Any]:
        """Return the figures of the comparison table (and of ``--json``)."""
        lat = sorted(self.latencies)
        ttfi = sorted(self.first_items)
        per_provider = {p: sorted(self.provider_latencies.get(p, ())) for p in providers}
        streams = None
        if self.stream:
            mid = self.streams["failed"]
            streams = {
                "completed": self.streams["completed"],
                "failed_mid_stream": mid,
                "failed_before_first_item": self.calls - self.succeeded - mid,
            }
        return {
            "name": self.name,
            "strategy": self.strategy,
            "stream": self.stream,
            "calls": self.calls,
            "success_rate": round(self.succeeded / self.calls, 6) if self.calls else None,
            "failed_calls": self.calls - self.succeeded,
            "latency_p50": percentile(lat, 0.50),
            "latency_p95": percentile(lat, 0.95),
            "latency_p99": percentile(lat, 0.99),
            "ttfi_p50": percentile(ttfi, 0.50),
            "ttfi_p95": percentile(ttfi, 0.95),
            "ttfi_p99": percentile(ttfi, 0.99),
            "streams": streams,
            "attempts_per_call": round(self.attempts / self.calls, 4) if self.calls else None,
            "wasted_attempts": self.wasted,
            "probes": {k: self.probes[k] for k in ("started", "succeeded", "failed")},
            "slow_calls": {k: self.slow_calls[k] for k in ("seen", "counted")},
            "provider_share": {
                p: round(self.served[p] / self.succeeded, 4) if self.succeeded else 0.0
                for p in providers
            },
            "provider_latency": {
                p: {"p50": percentile(v, 0.50), "p95": percentile(v, 0.95)}
                for p, v in per_provider.items()
            },
            "route_around_s": self.route_around,
            "come_back_s": self.come_back,
            "during_outages": self.during,
        }


class Collector:
    """Listens to the routing and keeps what the report needs, on virtual time."""

    def __init__(self, result: ConfigResult, loop: asyncio.AbstractEventLoop) -> None:
        self.result = result
        self.loop = loop
        self.started: dict[int, float] = {}
        self.attempts: dict[str, list[float]] = defaultdict(list)
        self.cooldowns: dict[str, list[float]] = defaultdict(list)
        self.successes: dict[str, list[float]] = defaultdict(list)
        self.probes: dict[str, list[float]] = defaultdict(list)
        self.buckets: dict[int, Counter[str]] = defaultdict(Counter)
        self.bucket_latencies: dict[int, list[float]] = defaultdict(list)

    def on_event(self, event: events.RoutingEvent) -> None:
        """Keep what ``event`` tells (the simulator's listener)."""
        now = self.loop.time()
        result = self.result
        provider = event.provider
        if isinstance(event, events.AttemptStarted) and provider is not None:
            self.attempts[provider].append(now)
        elif isinstance(event, events.CallStarted):
            self.started[event.call_id] = now
        elif isinstance(event, events.CallFinished):
            result.calls += 1
            result.attempts += event.attempt
            latency = now - self.started.pop(event.call_id, now)
            result.latencies.append(latency)
            bucket = self.buckets[int(now // BUCKET)]
            bucket["calls"] += 1
            if not result.stream:
                self.bucket_latencies[int(now // BUCKET)].append(latency)
            if event.outcome == "success" and provider is not None:
                result.succeeded += 1
                result.served[provider] += 1
                bucket["ok"] += 1
                bucket[provider] += 1
        elif isinstance(event, events.AttemptFailed):
            result.wasted += 1
        elif isinstance(event, events.AttemptSucceeded) and provider is not None:
            self.successes[provider].append(now)
            result.provider_latencies.setdefault(provider, []).append(event.latency)
        elif isinstance(event, events.CooldownStarted) and provider is not None:
            self.cooldowns[provider].append(now)
        elif isinstance(event, events.FirstItem):
            result.first_items.append(event.latency)
            self.bucket_latencies[int(now // BUCKET)].append(event.latency)
        elif isinstance(event, events.StreamEnded):
            result.streams[event.outcome] += 1
        elif isinstance(event, events.ProbeStarted) and provider is not None:
            result.probes["started"] += 1
            self.probes[provider].append(now)
        elif isinstance(event, events.ProbeSucceeded):
            result.probes["succeeded"] += 1
        elif isinstance(event, events.ProbeFailed):
            result.probes["failed"] += 1
        elif isinstance(event, events.SlowCall):
            result.slow_calls["seen"] += 1
            result.slow_calls["counted"] += event.counted

    def outage(self, outage: OutageSpec) -> tuple[float | None, float | None, dict[str, int]]:
        """Return the time to route around ``outage``, to come back after it, and its figures.

        The figures: ``attempts`` sent to the provider during the outage, the ``cooldowns``
        that started, the half-open ``probes``, the ``recoveries`` (a cooldown ended and calls
        went to the provider again) and the ``largest_recovery`` (the most attempts sent
        between one cooldown and the next: 1 when half-open probes one at a time).
        """
        name, start, end = outage.provider, outage.start, outage.end
        sent = [t for t in self.attempts[name] if start <= t < end]
        cools = [t for t in self.cooldowns[name] if start <= t < end]
        bursts = []
        for low, high in zip(cools, [*cools[1:], end], strict=False):  # none if no cooldown
            n = sum(1 for t in sent if low < t <= high)
            if n:
                bursts.append(n)
        figures = {
            "attempts": len(sent),
            "cooldowns": len(cools),
            "probes": sum(1 for t in self.probes[name] if start <= t < end),
            "recoveries": len(bursts),
            "largest_recovery": max(bursts, default=0),
        }
        back = next((t for t in self.successes[name] if t >= end), None)
        return (
            None if not cools else round(cools[0] - start, 3),
            None if back is None else round(back - end, 3),
            figures,
        )

    def timeline(self, scenario: Scenario, order: tuple[str, ...]) -> dict[str, list[float]]:
        """Return the per-minute series of the plot (NaN where a minute has no data)."""
        points = math.ceil(scenario.duration / BUCKET)
        series: dict[str, list[float]] = {
            "minute": [],
            "success_rate": [],
            "latency_p50": [],
            "latency_p95": [],
        }
        for name in order:
            series[f"share:{name}"] = []
        for b in range(points):
            counts = self.buckets.get(b, Counter())
            calls, ok = counts["calls"], counts["ok"]
            series["minute"].append(b * BUCKET / 60)
            series["success_rate"].append(ok / calls if calls else math.nan)
            latencies = sorted(self.bucket_latencies.get(b, ()))
            for q, key in ((0.5, "latency_p50"), (0.95, "latency_p95")):
                value = percentile(latencies, q)
                series[key].append(math.nan if value is None else value)
            for name in order:
                series[f"share:{name}"].append(counts[name] / ok if ok else math.nan)
        return series


def outage_keys(scenario: Scenario) -> list[str]:
    """Return a unique label per outage: ``provider@start``, numbered when they repeat."""
    keys: list[str] = []
    for outage in scenario.outages:
        key = f"{outage.provider}@{outage.start:g}s"
        n = 2
        while key in keys:
            key = f"{outage.provider}@{outage.start:g}s#{n}"
            n += 1
        keys.append(key)
    return keys
