"""Load-aware strategies: they spread first choices and learn from outcomes.

Every one tries several providers and leaves the terminus (the last provider) for last: the
core appends it to whatever order they return.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from resilient_routing import _validate
from resilient_routing._exceptions import InvalidConfigError
from resilient_routing._routing.providers import provider_name

__all__ = ["LeastBusy", "LeastLatency", "LoadBalanced", "Weighted"]


class LoadBalanced:
    """First choices rotate exactly evenly over the non-terminus providers.

    On failure it falls back through the other non-terminus providers, then the terminus.
    Their order turns too, one step per round of first choices, so that the calls one provider
    cooling down would have taken spread evenly over the others (two neighbours in the list
    cooling down leave more to the provider after them). Use it to spread load over
    equivalent providers while keeping a last resort.
    """

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = itertools.count().__next__

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return the next first choice, then the others from a point that turns each round."""
        head = len(providers) - 1
        if head <= 1:
            return range(len(providers))
        turn, k = divmod(self._next(), head)
        step = turn % (head - 1)
        if not step:
            return itertools.chain(range(k, head), range(k))
        after = [*range(k + 1, head), *range(k)]  # the others, started `step` further on
        return [k, *after[step:], *after[:step]]


class Weighted:
    """A weighted random first choice, then fallback in descending weight.

    Args:
        weights: provider name -> weight (>= 0). Providers not named weigh 1; with no weights
            all are equal. A weight of 0 is never a first choice but still a fallback (when
            every provider before the terminus weighs 0: the list order); equal weights fall
            back in a random order, so that a provider cooling down leaves its share to its
            equals evenly. A weight on the terminus does nothing: it is never a first choice.
        rng: a ``random.Random`` (seed it for reproducible routing).
    """

    __slots__ = ("_rng", "weights")

    def __init__(
        self, *, weights: Mapping[str, float] | None = None, rng: random.Random | None = None
    ) -> None:
        self.weights = {
            name: _validate.number(f"weight of {name!r}", weight)
            for name, weight in (weights or {}).items()
        }
        self._rng = rng or random.Random()

    def check_providers(self, names: Sequence[str]) -> None:
        """Refuse weights that name no provider of the route (a typo would split evenly).

        Raises:
            InvalidConfigError: a weight names no provider.
        """
        unknown = sorted(set(self.weights) - set(names))
        if unknown:
            raise InvalidConfigError(
                f"Weighted: weights name {', '.join(map(repr, unknown))}, not among the "
                f"providers {list(names)!r}"
            )

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return a weighted random first choice, then the rest by descending weight."""
        head = len(providers) - 1
        if head <= 1:
            return range(len(providers))
        weights = [self.weights.get(provider_name(p), 1.0) for p in providers[:head]]
        if sum(weights) <= 0:
            return range(len(providers))  # no first choice to draw: the list order
        rng = self._rng
        first = rng.choices(range(head), weights=weights)[0]
        distinct = len(set(weights))
        if distinct == 1:  # all equal: the others in a random order
            others = [*range(first), *range(first + 1, head)]
            rng.shuffle(others)
            return [first, *others]
        if distinct < head:  # some equal: in a random order among themselves
            ties = {i: rng.random() for i in range(head)}
            by_weight = sorted(range(head), key=lambda i: (-weights[i], ties[i]))
        else:
            by_weight = sorted(range(head), key=lambda i: -weights[i])
        return [first, *(i for i in by_weight if i != first)]


class LeastLatency:
    """Order providers by a decaying average (EWMA) of their recent successful latencies.

    Providers without data come first (in list order) so they get some; a provider that
    became slow sees its average rise and is overtaken. What it knows of a provider is
    forgotten after ``forget_after`` calls without news of it: one passed over since (slow
    once) is then without data again, and measured anew. A provider whose every attempt
    failed comes after those with an average. Use it when providers differ in speed and speed
    matters more than spreading load.

    Args:
        alpha: weight of the newest latency in the average (0 < alpha <= 1). Default 0.3.
        forget_after: calls of the strategy after which a provider with no attempt ended since
            is without data again. Default 100.
    """

    __slots__ = ("_calls", "_ewma", "_heard", "alpha", "forget_after")

    def __init__(self, *, alpha: float = 0.3, forget_after: int = 100) -> None:
        self.alpha = _validate.number("alpha", alpha, high=1.0, low_open=True)
        self.forget_after = _validate.count("forget_after", forget_after)
        self._ewma: dict[str, float] = {}
        #: The call count at the last attempt of each provider that ended (data or a failure).
        self._heard: dict[str, int] = {}
        self._calls = 0

    def latency(self, name: str) -> float | None:
        """Return the average latency of ``name`` in seconds, None without data."""
        return self._ewma.get(name)

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return providers without data first, then the fastest first, then the failing."""
        head = len(providers) - 1
        # A lost update between two threads only delays a forgetting by a call.
        self._calls = calls = self._calls + 1
        stale = calls - self.forget_after
        ewma, heard = self._ewma, self._heard
        scores = []
        for p in providers[:head]:
            name = provider_name(p)
            last = heard.get(name)
            if last is None:
                scores.append(-1.0)  # without data: first
            elif last < stale:
                # Forgotten: this call measures it anew; the calls meanwhile wait for that.
                heard[name] = calls
                ewma.pop(name, None)
                scores.append(-1.0)
            else:
                scores.append(ewma.get(name, math.inf))  # only failures: after the measured
        return sorted(range(head), key=scores.__getitem__)

    def on_attempt_end(self, name: str, seconds: float, ok: bool) -> None:
        """Fold a successful attempt's latency into the average of ``name``.

        A failure is no latency: it only tells that ``name`` was tried.
        """
        heard = self._heard
        last = heard.get(name)
        stale = last is not None and last < self._calls - self.forget_after
        heard[name] = self._calls
        if stale:
            self._ewma.pop(name, None)  # forgotten: what it answered long ago says nothing
        if ok:
            old = self._ewma.get(name)
            # A lost update between two threads only drops one sample from an average.
            self._ewma[name] = seconds if old is None else old + self.alpha * (seconds - old)


class LeastBusy:
    """Order providers by how many calls each has in flight now, fewest first.

    Counted exactly across threads and tasks (attempts start and end under a lock). Use it
    when providers have limited concurrency and queueing is what makes them slow.
    """

    __slots__ = ("_in_flight", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}

    def in_flight(self, name: str) -> int:
        """Return the number of attempts of ``name`` running now."""
        return self._in_flight.get(name, 0)

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return the non-terminus providers from least to most busy (stable)."""
        head = len(providers) - 1
        counts = self._in_flight
        busy = [counts.get(provider_name(p), 0) for p in providers[:head]]
        return sorted(range(head), key=busy.__getitem__)

    def on_attempt_start(self, name: str) -> None:
        """Count an attempt of ``name`` in flight."""
        with self._lock:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1

    def on_attempt_end(self, name: str, seconds: float, ok: bool) -> None:
        """Count an attempt of ``name`` finished (or cancelled)."""
        with self._lock:
            left = self._in_flight.get(name, 0) - 1
            if left > 0:
                self._in_flight[name] = left
            else:
                self._in_flight.pop(name, None)
