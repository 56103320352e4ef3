"""Hedging: start the next provider beside a slow one; the first answer wins."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Sequence
from typing import Any

from resilient_routing import _validate

__all__ = ["Hedged"]


class Hedged:
    """Start the first provider; if it has not answered within ``delay``, start the next too.

    Up to ``max_hedges`` extra attempts run at once; the first success wins. A failure starts
    the next provider at once. Async: the other attempts are cancelled before the call
    returns. Sync: attempts run on a thread pool and the others are abandoned (not waited for,
    their outcomes not recorded). Use it for latency-sensitive calls to providers with long
    tails, at the price of extra calls.

    Args:
        delay: seconds to wait for an attempt before hedging. Default 0.25.
        max_hedges: extra attempts allowed in flight at once. Default 1.
        executor: the ``concurrent.futures.Executor`` of sync attempts; default a shared pool.
    """

    in_list_order = True

    def __init__(
        self,
        *,
        delay: float = 0.25,
        max_hedges: int = 1,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.hedge_delay = _validate.seconds("delay", delay, zero=True)
        self.max_hedges = _validate.count("max_hedges", max_hedges)
        self.executor = executor

    def __repr__(self) -> str:
        return f"Hedged(delay={self.hedge_delay}, max_hedges={self.max_hedges})"

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return the indices in list order (the terminus last)."""
        return range(len(providers))
