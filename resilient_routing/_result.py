"""The result of a routed call, with its routing metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["RouteResult"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RouteResult(Generic[T]):
    """What a routed call returned, and how it got there.

    Attributes:
        response: the value returned by the provider that succeeded.
        provider: the name of that provider.
        latency: seconds taken by the successful attempt.
        attempt: how many providers were actually called (1-based; skipped ones do not count).
        was_terminus: whether the successful provider was the terminus (the last provider of a
            multi-attempt strategy, the fallback of last resort).
        failures: ``(name, exception)`` for each failed attempt before the success, in order.
        skipped: names of the providers skipped because they were cooling down.
        hedges: names of the providers started in parallel while another attempt was still
            running (hedged strategies; empty otherwise).
    """

    response: T
    provider: str
    latency: float
    attempt: int
    was_terminus: bool
    failures: tuple[tuple[str, Exception], ...] = ()
    skipped: tuple[str, ...] = ()
    hedges: tuple[str, ...] = ()
