"""The simulator: the real routing code against simulated providers on virtual time."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable
from typing import Any

from resilient_routing._exceptions import AllProvidersFailedError, RoutingTimeoutError
from resilient_routing._routing.options import Options
from resilient_routing._routing.route import Route
from resilient_routing._routing.runners import runner
from resilient_routing.cooldown._memory import InMemoryCooldownTracker
from resilient_routing.strategies._protocol import Strategy
from resilient_routing.strategies._registry import strategy_factory

from .collect import Collector, ConfigResult, outage_keys
from .loop import VirtualTimeLoop
from .providers import SimulatedError, SimulatedProvider, kind_of
from .scenario import ConfigSpec, Scenario

__all__ = ["ConfigResult", "SimulatedError", "simulate", "simulate_config"]

_EPOCH = 1_700_000_000.0  # the wall clock of virtual time 0, for HTTP-date Retry-After
#: What a simulated call may end with: the failures the collector counts. Anything else is a
#: bug of the simulator or of the routing, and stops the run.
_EXPECTED = (SimulatedError, AllProvidersFailedError, RoutingTimeoutError, TimeoutError)
#: The routes' logger: the simulator reads events, not logs. Thousands of simulated failures
#: would only cost time, and reach the handlers of whoever runs the simulator in-process.
#: Not registered with ``logging`` (no global state changes), and enabled for nothing.
_SILENT = logging.Logger("resilient_routing.simulate", level=logging.CRITICAL + 1)


def _strategy(spec: ConfigSpec, seed: int) -> Strategy:
    factory = strategy_factory(spec.strategy)
    options = dict(spec.strategy_options)
    if spec.strategy == "weighted":
        options.setdefault("rng", random.Random(f"{seed}:weighted"))
    return factory(**options)


def _tracker(spec: ConfigSpec, loop: asyncio.AbstractEventLoop) -> InMemoryCooldownTracker | None:
    if not spec.track_cooldown:
        return None
    return InMemoryCooldownTracker(
        failure_threshold=spec.failure_threshold,
        cooldown=spec.cooldown,
        max_cooldown=spec.max_cooldown,
        growth=spec.growth,
        half_open=spec.half_open,
        probe_timeout=spec.probe_timeout,
        clock=loop.time,
        wall_clock=lambda: _EPOCH + loop.time(),
    )


def _route(
    scenario: Scenario,
    spec: ConfigSpec,
    providers: list[SimulatedProvider],
    collector: Collector,
    loop: asyncio.AbstractEventLoop,
) -> Callable[[], Any]:
    """Return the routed call of one configuration, built as ``routed()`` builds one."""
    counted = set(spec.cooldown_on)
    options: dict[str, Any] = {
        "strategy": _strategy(spec, scenario.seed),
        "cooldown": _tracker(spec, loop),
        "exempt": spec.exempt,
        "cooldown_on": lambda exc: kind_of(exc) in counted,
        "max_attempts": spec.max_attempts,
        "slow_call": spec.slow_call,
        "listeners": [collector],
        "logger": _SILENT,
    }
    if spec.stream:
        options["first_item_timeout"] = spec.first_item_timeout
        options["idle_timeout"] = spec.idle_timeout
    else:
        options["attempt_timeout"] = spec.attempt_timeout
    route = Route(
        Options.of(providers, options, "simulate"),
        is_async=True,
        name=spec.name,
        clock=loop.time,
        generator=spec.stream,
    )
    run = runner(route)
    if spec.stream:
        # The routed function is the providers' own async generator function: a real
        # streaming route, consumed to its end like a client reading every token.
        async def consume() -> None:
            async for _ in run(SimulatedProvider.stream, (), {}, False):
                pass

        return consume
    return functools.partial(run, _call_provider, (), {}, False)


async def _call_provider(provider: SimulatedProvider) -> str:
    return await provider()


async def _run(
    scenario: Scenario, spec: ConfigSpec, progress: Callable[[float], None]
) -> ConfigResult:
    loop = asyncio.get_running_loop()
    by_name = {p.name: p for p in scenario.providers}
    order = spec.providers or tuple(by_name)
    providers = [SimulatedProvider(by_name[n], scenario, scenario.seed) for n in order]
    result = ConfigResult(name=spec.name, strategy=spec.strategy, stream=spec.stream)
    collector = Collector(result, loop)
    call = _route(scenario, spec, providers, collector, loop)

    async def one() -> None:
        # Failed calls are counted by the collector; anything else is a bug to report.
        with contextlib.suppress(*_EXPECTED):
            await call()

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
        if outage.provider in order:
            around, back, figures = collector.outage(outage)
            result.route_around[key] = around
            result.come_back[key] = back
            result.during[key] = figures
    result.timeline = collector.timeline(scenario, order)
    return result


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
