"""The strategy protocol and the built-in strategies.

A strategy decides the order in which providers are tried; the routing core applies the
rules every strategy shares (cooldown skips, the terminus as last resort, recording, logging,
errors). The built-ins are ordinary strategies registered like user ones.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from resilient_routing._exceptions import InvalidConfigError

__all__ = ["Fallback", "Hedged", "PrimaryOnly", "RoundRobin", "Strategy"]


@runtime_checkable
class Strategy(Protocol):
    """Chooses which providers a routed call tries, and in which order.

    Only :meth:`order` is required. Optional class attributes, read once when a routed function
    is decorated, tune what the core does around it:

    - ``single_attempt`` (default False): try only the first provider chosen and re-raise its
      own exception (with a note naming it) instead of falling over.
    - ``uses_cooldown`` (default True): skip providers cooling down and record each outcome in
      the tracker.
    - ``failure_message`` / ``failure_level``: the log record of a failed attempt (default
      ``"provider failed"`` at WARNING).
    - ``on_attempt_start(name)`` / ``on_attempt_end(name, seconds, ok)``: called around every
      attempt (``on_attempt_end`` also when it is cancelled), for strategies that learn from
      outcomes (latency, calls in flight).
    - ``hedge_delay`` / ``max_hedges`` / ``executor``: run attempts in parallel (see
      :class:`Hedged`).
    - ``in_list_order`` (default False): a promise that :meth:`order` always returns the list
      order (a single-attempt strategy: always chooses the first provider), so the core need
      not ask (it saves a call on every routed call).

    For multi-attempt strategies the core tries the chosen providers in order, never one
    twice, and always ends with the terminus (the last provider of the list) when the others
    failed or were skipped: a strategy need not (and cannot) place the terminus elsewhere.
    """

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return the indices of ``providers`` in the order to try them."""
        ...


class PrimaryOnly:
    """Call the first provider only; its exception propagates unchanged."""

    single_attempt = True
    in_list_order = True
    uses_cooldown = False
    failure_message = "primary provider failed"
    failure_level = logging.ERROR

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return ``(0,)``."""
        return (0,)


class Fallback:
    """Try each provider in list order until one succeeds; the last one is the terminus."""

    in_list_order = True

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return the indices in list order."""
        return range(len(providers))


class RoundRobin:
    """Call one provider per call, ``providers[i % n]`` for a shared, thread-safe counter ``i``.

    Share one instance between routed functions to share its counter.

    Args:
        counter: a zero-argument callable returning successive ints, each once, to take the
            rotation from elsewhere (``RedisCounter`` spreads several processes as one).
            Default: an exact in-process counter.
    """

    single_attempt = True
    uses_cooldown = False
    failure_message = "round-robin provider failed"
    failure_level = logging.ERROR

    __slots__ = ("_next",)

    def __init__(self, *, counter: Callable[[], int] | None = None) -> None:
        if counter is not None and not callable(counter):
            raise InvalidConfigError(
                f"counter must be a zero-argument callable returning ints, got {counter!r}"
            )
        # next() on itertools.count is a single C call under the GIL: exact without a lock.
        self._next: Callable[[], int] = counter or itertools.count().__next__

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return the next index in the rotation."""
        return (self._next() % len(providers),)


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

    def __init__(
        self,
        *,
        delay: float = 0.25,
        max_hedges: int = 1,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        if (
            isinstance(delay, bool)
            or not isinstance(delay, (int, float))
            or not math.isfinite(delay)
            or delay < 0
        ):
            raise InvalidConfigError(f"delay must be a number of seconds >= 0, got {delay!r}")
        if isinstance(max_hedges, bool) or not isinstance(max_hedges, int) or max_hedges < 1:
            raise InvalidConfigError(f"max_hedges must be an int >= 1, got {max_hedges!r}")
        self.hedge_delay = float(delay)
        self.in_list_order = True
        self.max_hedges = max_hedges
        self.executor = executor

    def __repr__(self) -> str:
        return f"Hedged(delay={self.hedge_delay}, max_hedges={self.max_hedges})"

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return the indices in list order (the terminus last)."""
        return range(len(providers))
