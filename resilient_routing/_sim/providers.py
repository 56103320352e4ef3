"""Simulated providers: answers and streams on virtual time, with their failures and outages."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import NoReturn

from resilient_routing._exceptions import SlowCallError

from .scenario import OutageSpec, ProviderSpec, Scenario

__all__ = ["SimulatedError", "SimulatedProvider", "SimulatedTimeoutError", "kind_of"]


class SimulatedError(Exception):
    """A failure of a simulated provider; ``kind`` is "5xx", "429", "timeout" or "cut"."""

    def __init__(self, provider: str, kind: str, retry_after: float | None = None) -> None:
        super().__init__(f"simulated {kind} from {provider}")
        self.kind = kind
        if retry_after is not None:
            self.retry_after = retry_after


class SimulatedTimeoutError(SimulatedError, TimeoutError):
    """A simulated provider that hung until its timeout."""


def kind_of(exc: BaseException) -> str:
    """Return the kind of failure ``exc`` is, as ``cooldown_on`` names it.

    A provider's own failures say; a slow answer is ``"slow"``; the route's own time limits
    (``attempt_timeout``, ``first_item_timeout``, ``idle_timeout``) are ``"timeout"``.
    """
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str):
        return kind
    if isinstance(exc, SlowCallError):
        return "slow"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "5xx"


class SimulatedProvider:
    """A simulated provider drawing latencies and failures from its own seeded generator.

    Awaited (``await provider()``) it answers once; :meth:`stream` sends items instead.
    """

    def __init__(self, spec: ProviderSpec, scenario: Scenario, seed: int) -> None:
        self.name = spec.name
        self.spec = spec
        self.rng = random.Random(f"{seed}:{spec.name}")
        self.outages = [o for o in scenario.outages if o.provider == spec.name]

    def _hit(self) -> tuple[str, OutageSpec | None] | None:
        """Return what goes wrong with a call starting now (its kind and outage), if anything."""
        now = asyncio.get_running_loop().time()
        rng = self.rng
        for outage in self.outages:
            if outage.start <= now < outage.end and rng.random() < outage.failure_rate:
                return outage.kind, outage
        if rng.random() < self.spec.error_rate:
            return self.spec.error_kind, None
        return None

    async def _fail(self, kind: str, outage: OutageSpec | None, latency: float) -> NoReturn:
        """Fail the way ``kind`` does, before any answer: wait as long as it takes, raise."""
        if kind in ("timeout", "stall"):
            await asyncio.sleep(self.spec.timeout)
            raise SimulatedTimeoutError(self.name, "timeout")
        if kind == "cut":  # the connection drops while the answer is on its way
            await asyncio.sleep(latency)
            raise SimulatedError(self.name, kind)
        await asyncio.sleep(latency * 0.2 if kind == "5xx" else 0.05)
        retry_after = None
        if kind == "429":
            retry_after = self.spec.retry_after if outage is None else outage.retry_after
        raise SimulatedError(self.name, kind, retry_after)

    async def __call__(self) -> str:
        """Answer once (a call that does not stream): a cut or a stall fails the answer."""
        hit = self._hit()
        latency = self.spec.latency.draw(self.rng)
        if hit is not None:
            kind, outage = hit
            if kind != "slow" or outage is None:
                await self._fail(kind, outage, latency)
            latency += outage.added_latency
        await asyncio.sleep(latency)
        return self.name

    async def stream(self) -> AsyncIterator[int]:
        """Send ``items`` items, the first after the latency, then one per ``item_interval``.

        An error outage fails before the first item; ``slow`` delays the first item; ``cut``
        raises after ``after_items`` items (or a random point), ``stall`` stops sending there
        until the provider's timeout.
        """
        spec = self.spec
        hit = self._hit()
        first = spec.latency.draw(self.rng)
        kind, broken_at = "", 0  # 0: never (items count from 1)
        if hit is not None:
            kind, outage = hit
            if kind == "slow" and outage is not None:
                first += outage.added_latency
            elif kind in ("cut", "stall") and outage is not None:
                broken_at = outage.after_items or self.rng.randint(1, spec.items)
            else:
                await self._fail(kind, outage, first)
        await asyncio.sleep(first)
        for i in range(1, spec.items + 1):
            yield i
            if i == broken_at:
                if kind == "stall":
                    await asyncio.sleep(spec.timeout)
                    raise SimulatedTimeoutError(self.name, "timeout")
                await asyncio.sleep(spec.item_interval)
                raise SimulatedError(self.name, "cut")
            if i < spec.items:
                await asyncio.sleep(spec.item_interval)
