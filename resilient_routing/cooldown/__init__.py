"""Cooldown trackers: the protocols and the backends that ship with resilient_routing.

``RedisCooldownTracker`` and ``AsyncRedisCooldownTracker`` need the ``[redis]`` extra; they
are imported on first use, so importing this module never imports redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._memory import InMemoryCooldownTracker
from ._policy import CooldownPolicy, Standing
from ._protocol import AsyncCooldownTracker, CooldownTracker

if TYPE_CHECKING:
    from ._redis.counter import RedisCounter
    from ._redis.tracker import AsyncRedisCooldownTracker, RedisCooldownTracker
    from ._state import ProviderState

__all__ = [
    "AsyncCooldownTracker",
    "AsyncRedisCooldownTracker",
    "CooldownPolicy",
    "CooldownTracker",
    "InMemoryCooldownTracker",
    "ProviderState",
    "RedisCooldownTracker",
    "RedisCounter",
    "Standing",
]


def __getattr__(name: str) -> Any:
    # The Redis classes import redis: only when asked for.
    if name in ("RedisCooldownTracker", "AsyncRedisCooldownTracker"):
        from ._redis import tracker

        return getattr(tracker, name)
    if name == "ProviderState":  # a dataclass: import time only routing never pays for
        from ._state import ProviderState

        return ProviderState
    if name == "RedisCounter":
        from ._redis.counter import RedisCounter

        return RedisCounter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
