"""Cooldown trackers: the protocols and the backends that ship with resilient_routing.

``RedisCooldownTracker`` and ``AsyncRedisCooldownTracker`` need the ``[redis]`` extra; they
are imported on first use, so importing this module never imports redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._memory import InMemoryCooldownTracker
from ._policy import CooldownPolicy
from ._protocol import AsyncCooldownTracker, CooldownTracker
from ._state import ProviderState

if TYPE_CHECKING:
    from ._redis.tracker import AsyncRedisCooldownTracker, RedisCooldownTracker, RedisCounter

__all__ = [
    "AsyncCooldownTracker",
    "AsyncRedisCooldownTracker",
    "CooldownPolicy",
    "CooldownTracker",
    "InMemoryCooldownTracker",
    "ProviderState",
    "RedisCooldownTracker",
    "RedisCounter",
]


def __getattr__(name: str) -> Any:
    if name in ("RedisCooldownTracker", "AsyncRedisCooldownTracker", "RedisCounter"):
        from ._redis import tracker

        return getattr(tracker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
