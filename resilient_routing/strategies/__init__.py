"""Routing strategies: the protocol, the built-in classes and the registry.

======================  ===============  ==================================================
name                    class            first choice, then
======================  ===============  ==================================================
``"fallback"``          Fallback         the list order
``"primary_only"``      PrimaryOnly      the first provider only; its error propagates
``"round_robin"``       RoundRobin       one provider per call, in rotation
``"load_balanced"``     LoadBalanced     rotation over the non-terminus providers
``"weighted"``          Weighted         weighted random, then by weight
``"least_latency"``     LeastLatency     the fastest recent average (EWMA)
``"least_busy"``        LeastBusy        the fewest calls in flight
``"hedged"``            Hedged           the list order, with parallel hedges after a delay
======================  ===============  ==================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._balancing import LeastBusy, LeastLatency, LoadBalanced, Weighted
from ._basic import Fallback, PrimaryOnly, RoundRobin
from ._hedged import Hedged
from ._protocol import Strategy
from ._registry import available_strategies, get_strategy, register_strategy

if TYPE_CHECKING:
    from resilient_routing.cooldown._redis.counter import RedisCounter

__all__ = [
    "Fallback",
    "Hedged",
    "LeastBusy",
    "LeastLatency",
    "LoadBalanced",
    "PrimaryOnly",
    "RedisCounter",
    "RoundRobin",
    "Strategy",
    "Weighted",
    "available_strategies",
    "get_strategy",
    "register_strategy",
]


def __getattr__(name: str) -> Any:
    # RedisCounter imports redis: only when asked for.
    if name == "RedisCounter":
        from resilient_routing.cooldown._redis.counter import RedisCounter

        return RedisCounter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
