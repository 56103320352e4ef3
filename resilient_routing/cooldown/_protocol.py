"""The cooldown tracker protocols: what the routing core asks of a backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["AsyncCooldownTracker", "CooldownTracker", "telling_admit"]


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


def telling_admit(tracker: object) -> Callable[[str], Any] | None:
    """The tracker's ``admit``, when it answers what its ``is_available`` would.

    Not a base class's ``admit`` under a subclass (or an instance) that replaced
    ``is_available`` alone: asking it would go round the replacement.
    """
    admit = getattr(tracker, "admit", None)
    if admit is None:
        return None
    own = getattr(tracker, "__dict__", {})
    if "is_available" in own and "admit" not in own:
        return None
    return admit if _admit_at_least_as_derived(type(tracker)) else None


#: By class: whether its ``admit`` is defined at least as far down as its ``is_available``.
_ADMIT_TELLS: dict[type, bool] = {}


def _admit_at_least_as_derived(cls: type) -> bool:
    tells = _ADMIT_TELLS.get(cls)
    if tells is None:
        mro = cls.__mro__

        def defined(attr: str) -> int:
            return next((i for i, c in enumerate(mro) if attr in vars(c)), len(mro))

        tells = _ADMIT_TELLS[cls] = defined("admit") <= defined("is_available")
    return tells
