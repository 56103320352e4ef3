"""Latency distributions of simulated providers: how long an answer (or a first item) takes.

``latency = "lognormal"`` (the default) fits most HTTP APIs: a median and a long right tail.
LLM APIs often have two regimes instead, most answers fast and some stuck behind a queue or a
long generation: ``"bimodal"`` mixes two log-normals. ``"constant"`` and ``"uniform"`` are for
drills where the spread should not matter.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol

from .reader import Reader

__all__ = ["LATENCY_KINDS", "Bimodal", "Constant", "Latency", "Lognormal", "Uniform", "read"]

#: The z-score of the 95th percentile of a normal distribution.
_Z95 = 1.6449


class Latency(Protocol):
    """A distribution of seconds."""

    def draw(self, rng: random.Random) -> float:
        """Return one latency in seconds, drawn from ``rng``."""
        ...


@dataclass(frozen=True, slots=True)
class Lognormal:
    """Log-normal seconds with this median and 95th percentile."""

    median: float
    p95: float

    def draw(self, rng: random.Random) -> float:
        """Return one latency in seconds, drawn from ``rng``."""
        sigma = math.log(self.p95 / self.median) / _Z95
        return rng.lognormvariate(math.log(self.median), sigma)


@dataclass(frozen=True, slots=True)
class Constant:
    """Always the same seconds."""

    seconds: float

    def draw(self, rng: random.Random) -> float:
        """Return the constant (``rng`` is not drawn from)."""
        return self.seconds


@dataclass(frozen=True, slots=True)
class Uniform:
    """Seconds drawn uniformly between ``low`` and ``high``."""

    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        """Return one latency in seconds, drawn from ``rng``."""
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True, slots=True)
class Bimodal:
    """Mostly ``fast``; a ``slow_share`` of the answers come from ``slow``."""

    fast: Lognormal
    slow: Lognormal
    slow_share: float

    def draw(self, rng: random.Random) -> float:
        """Return one latency in seconds, drawn from ``rng``."""
        mode = self.slow if rng.random() < self.slow_share else self.fast
        return mode.draw(rng)


#: The keys each distribution takes, in the order the format documents them.
_KEYS: dict[str, tuple[str, ...]] = {
    "lognormal": ("latency_median", "latency_p95"),
    "constant": ("latency_median",),
    "uniform": ("latency_min", "latency_max"),
    "bimodal": ("latency_median", "latency_p95", "slow_share", "slow_median", "slow_p95"),
}
LATENCY_KINDS = tuple(_KEYS)


def read(r: Reader) -> Latency:
    """Read a provider's ``latency`` and the keys of that distribution from its table."""
    kind = r.text("latency", "lognormal", LATENCY_KINDS)
    takes = _KEYS[kind]
    for key in sorted({k for keys in _KEYS.values() for k in keys} - set(takes)):
        r.refuse(key, f"not used by latency = {kind!r} (it takes {', '.join(takes)})")
    if kind == "uniform":
        low = r.number("latency_min")
        high = r.number("latency_max", low=low, open_low=True)
        return Uniform(low, high)
    median = r.number("latency_median", open_low=True)
    if kind == "constant":
        return Constant(median)
    fast = Lognormal(median, r.number("latency_p95", median * 2, low=median))
    if kind == "lognormal":
        return fast
    share = r.number("slow_share", low=0.0, high=1.0, open_low=True)
    slow_median = r.number("slow_median", low=median)
    slow = Lognormal(slow_median, r.number("slow_p95", slow_median * 2, low=slow_median))
    return Bimodal(fast, slow, share)
