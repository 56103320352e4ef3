"""The cooldown tracker protocols: what the routing core asks of a backend."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["AsyncCooldownTracker", "CooldownTracker"]


@runtime_checkable
class CooldownTracker(Protocol):
    """Remembers which providers are cooling down after failures (synchronous methods).

    Implementations must be safe to call from many threads at once. A tracker whose methods
    block on I/O sets the class attribute ``blocking_io = True``; async routed functions refuse
    such a tracker instead of stalling their event loop.
    """

    def is_available(self, name: str) -> bool:
        """Return True when ``name`` is not cooling down now."""
        ...

    def cooldown_remaining(self, name: str) -> float:
        """Return the seconds left in the cooldown of ``name``, ``0.0`` when available."""
        ...

    def record_failure(self, name: str, exc: BaseException) -> bool:
        """Count a failure of ``name``; return True iff THIS failure started a cooldown."""
        ...

    def record_success(self, name: str) -> None:
        """Count a success of ``name``: its consecutive-failure count starts again."""
        ...

    def reset(self, name: str | None = None) -> None:
        """Forget the state of ``name``, or of every provider when ``name`` is None."""
        ...


@runtime_checkable
class AsyncCooldownTracker(Protocol):
    """:class:`CooldownTracker` with coroutine methods, for async routed functions."""

    async def is_available(self, name: str) -> bool:
        """Return True when ``name`` is not cooling down now."""
        ...

    async def cooldown_remaining(self, name: str) -> float:
        """Return the seconds left in the cooldown of ``name``, ``0.0`` when available."""
        ...

    async def record_failure(self, name: str, exc: BaseException) -> bool:
        """Count a failure of ``name``; return True iff THIS failure started a cooldown."""
        ...

    async def record_success(self, name: str) -> None:
        """Count a success of ``name``: its consecutive-failure count starts again."""
        ...

    async def reset(self, name: str | None = None) -> None:
        """Forget the state of ``name``, or of every provider when ``name`` is None."""
        ...
