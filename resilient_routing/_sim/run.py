"""The simulator: the real routing code against simulated providers on virtual time."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from resilient_routing._exceptions import AllProvidersFailedError, RoutingTimeoutError
from resilient_routing._routing.options import Options
from resilient_routing._routing.route import Route
from resilient_routing._routing.runners import runner
from resilient_routing.cooldown._memory import InMemoryCooldownTracker
from resilient_routing.events import (
    AttemptFailed,
    AttemptSucceeded,
    CallFinished,
    CallStarted,
    CooldownStarted,
    RoutingEvent,
)
from resilient_routing.strategies._protocol import Strategy
from resilient_routing.strategies._registry import strategy_factory

from .loop import VirtualTimeLoop
from .scenario import ConfigSpec, ProviderSpec, Scenario

__all__ = ["ConfigResult", "SimulatedError", "simulate", "simulate_config"]

_BUCKET = 60.0  # seconds per point of the timelines
_EPOCH = 1_700_000_000.0  # the wall clock of virtual time 0, for HTTP-date Retry-After


class SimulatedError(Exception):
    """A failure of a simulated provider; ``kind`` is "5xx", "429" or "timeout"."""

    def __init__(self, provider: str, kind: str, retry_after: float | None = None) -> None:
        super().__init__(f"simulated {kind} from {provider}")
        self.kind = kind
        if retry_after is not None:
            self.retry_after = retry_after


class SimulatedTimeoutError(SimulatedError, TimeoutError):
    """A simulated provider that hung until its timeout."""


class _Provider:
    """A simulated provider drawing latencies and errors from its own seeded generator."""

    def __init__(self, spec: ProviderSpec, scenario: Scenario, seed: int) -> None:
        self.name = spec.name
        self.spec = spec
        self.rng = random.Random(f"{seed}:{spec.name}")
        self.outages = [o for o in scenario.outages if o.provider == spec.name]
        self.mu = math.log(spec.latency_median)
        self.sigma = math.log(spec.latency_p95 / spec.latency_median) / 1.6449

    def _failure(self, now: float) -> tuple[str, float] | None:
        for outage in self.outages:
            if outage.start <= now < outage.end and self.rng.random() < outage.failure_rate:
                return outage.kind, outage.retry_after
        if self.rng.random() < self.spec.error_rate:
            return self.spec.error_kind, self.spec.retry_after
        return None

    async def __call__(self) -> str:
        now = asyncio.get_running_loop().time()
        failure = self._failure(now)
        latency = self.rng.lognormvariate(self.mu, self.sigma)
        if failure is None:
            await asyncio.sleep(latency)
            return self.name
        kind, retry_after = failure
        if kind == "timeout":
            await asyncio.sleep(self.spec.timeout)
            raise SimulatedTimeoutError(self.name, kind)
        await asyncio.sleep(latency * 0.2 if kind == "5xx" else 0.05)
        raise SimulatedError(self.name, kind, retry_after if kind == "429" else None)


@dataclass
class ConfigResult:
    """What one configuration did over the scenario."""

    name: str
    strategy: str
    calls: int = 0
    succeeded: int = 0
    attempts: int = 0
    wasted: int = 0
    latencies: list[float] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)
    route_around: dict[str, float | None] = field(default_factory=dict)
    come_back: dict[str, float | None] = field(default_factory=dict)
    timeline: dict[str, list[float]] = field(default_factory=dict)

    def summary(self, providers: tuple[str, ...]) -> dict[str, Any]:
        """Return the figures of the comparison table (and of ``--json``)."""
        lat = sorted(self.latencies)

        def pct(q: float) -> float | None:
            if not lat:
                return None
            return round(lat[min(len(lat) - 1, math.ceil(q * len(lat)) - 1)], 4)

        return {
            "name": self.name,
            "strategy": self.strategy,
            "calls": self.calls,
            "success_rate": round(self.succeeded / self.calls, 6) if self.calls else None,
            "failed_calls": self.calls - self.succeeded,
            "latency_p50": pct(0.50),
            "latency_p95": pct(0.95),
            "latency_p99": pct(0.99),
            "attempts_per_call": round(self.attempts / self.calls, 4) if self.calls else None,
            "wasted_attempts": self.wasted,
            "provider_share": {
                p: round(self.served[p] / self.succeeded, 4) if self.succeeded else 0.0
                for p in providers
            },
            "route_around_s": self.route_around,
            "come_back_s": self.come_back,
        }


class _Collector:
    """Listens to the routing and keeps what the report needs, on virtual time."""

    def __init__(self, result: ConfigResult, loop: asyncio.AbstractEventLoop) -> None:
        self.result = result
        self.loop = loop
        self.started: dict[int, float] = {}
        self.cooldowns: dict[str, list[float]] = defaultdict(list)
        self.successes: dict[str, list[float]] = defaultdict(list)
        self.buckets: dict[int, Counter[str]] = defaultdict(Counter)

    def on_event(self, event: RoutingEvent) -> None:
        now = self.loop.time()
        result = self.result
        if isinstance(event, CallStarted):
            self.started[event.call_id] = now
        elif isinstance(event, CallFinished):
            result.calls += 1
            result.attempts += event.attempt
            result.latencies.append(now - self.started.pop(event.call_id, now))
            bucket = self.buckets[int(now // _BUCKET)]
            bucket["calls"] += 1
            if event.outcome == "success" and event.provider is not None:
                result.succeeded += 1
                result.served[event.provider] += 1
                bucket["ok"] += 1
                bucket[event.provider] += 1
        elif isinstance(event, AttemptFailed):
            result.wasted += 1
        elif isinstance(event, AttemptSucceeded) and event.provider is not None:
            self.successes[event.provider].append(now)
        elif isinstance(event, CooldownStarted) and event.provider is not None:
            self.cooldowns[event.provider].append(now)


def _strategy(spec: ConfigSpec, seed: int) -> Strategy:
    factory = strategy_factory(spec.strategy)
    options = dict(spec.strategy_options)
    if spec.strategy == "weighted":
        options.setdefault("rng", random.Random(f"{seed}:weighted"))
    return factory(**options)


def _first_at_or_after(times: list[float], start: float, end: float = math.inf) -> float | None:
    for t in times:
        if start <= t < end:
            return t
    return None


async def _run(
    scenario: Scenario, spec: ConfigSpec, progress: Callable[[float], None]
) -> ConfigResult:
    loop = asyncio.get_running_loop()
    by_name = {p.name: p for p in scenario.providers}
    order = spec.providers or tuple(by_name)
    providers = [_Provider(by_name[n], scenario, scenario.seed) for n in order]
    result = ConfigResult(name=spec.name, strategy=spec.strategy)
    collector = _Collector(result, loop)
    tracker = (
        InMemoryCooldownTracker(
            failure_threshold=spec.failure_threshold,
            cooldown=spec.cooldown,
            max_cooldown=spec.max_cooldown,
            growth=spec.growth,
            clock=loop.time,
            wall_clock=lambda: _EPOCH + loop.time(),
        )
        if spec.track_cooldown
        else None
    )
    counted = set(spec.cooldown_on)
    options = Options.of(
        providers,
        {
            "strategy": _strategy(spec, scenario.seed),
            "cooldown": tracker,
            "exempt": spec.exempt,
            "cooldown_on": lambda exc: getattr(exc, "kind", "5xx") in counted,
            "attempt_timeout": spec.attempt_timeout,
            "max_attempts": spec.max_attempts,
            "listeners": [collector],
        },
        "simulate",
    )
    run = runner(Route(options, is_async=True, name=spec.name, clock=loop.time))

    async def one() -> None:
        # Failed calls are counted by the collector; anything else is a bug to report.
        with contextlib.suppress(SimulatedError, AllProvidersFailedError, RoutingTimeoutError):
            await run(_call_provider, (), {}, False)

    arrivals = random.Random(f"{scenario.seed}:arrivals")
    tasks: list[asyncio.Task[None]] = []
    now = 0.0
    next_report = 0.0
    while True:
        now += arrivals.expovariate(scenario.rate)
        if now >= scenario.duration:
            break
        await asyncio.sleep(now - loop.time())
        tasks.append(asyncio.ensure_future(one()))
        if now >= next_report:
            progress(now / scenario.duration)
            next_report = now + scenario.duration / 50
    await asyncio.gather(*tasks)
    progress(1.0)

    for outage, key in zip(scenario.outages, outage_keys(scenario), strict=True):
        if outage.provider not in order:
            continue
        cooled = _first_at_or_after(collector.cooldowns[outage.provider], outage.start, outage.end)
        result.route_around[key] = None if cooled is None else round(cooled - outage.start, 3)
        back = _first_at_or_after(collector.successes[outage.provider], outage.end)
        result.come_back[key] = None if back is None else round(back - outage.end, 3)
    result.timeline = _timeline(collector, scenario, order)
    return result


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


def _timeline(
    collector: _Collector, scenario: Scenario, order: tuple[str, ...]
) -> dict[str, list[float]]:
    points = math.ceil(scenario.duration / _BUCKET)
    series: dict[str, list[float]] = {"minute": [], "success_rate": []}
    for name in order:
        series[f"share:{name}"] = []
    for b in range(points):
        counts = collector.buckets.get(b, Counter())
        calls = counts["calls"]
        series["minute"].append(b * _BUCKET / 60)
        series["success_rate"].append(counts["ok"] / calls if calls else math.nan)
        for name in order:
            series[f"share:{name}"].append(
                counts[name] / counts["ok"] if counts["ok"] else math.nan
            )
    return series


async def _call_provider(provider: _Provider) -> str:
    return await provider()


def simulate_config(
    scenario: Scenario, spec: ConfigSpec, progress: Callable[[float], None] = lambda f: None
) -> ConfigResult:
    """Run one configuration over the scenario on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(_run(scenario, spec, progress))
    finally:
        loop.close()


def simulate(
    scenario: Scenario, progress: Callable[[str, float], None] = lambda name, f: None
) -> list[ConfigResult]:
    """Run every configuration of the scenario; same seed, same numbers."""
    return [
        simulate_config(scenario, spec, functools.partial(progress, spec.name))
        for spec in scenario.configs
    ]
