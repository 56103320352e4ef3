"""The seed's three strategies: ordered fallback, the primary only, and round robin.

A strategy decides the order in which providers are tried; the routing core applies the
rules every strategy shares (cooldown skips, the terminus as last resort, recording, logging,
errors). The built-ins are ordinary strategies registered like user ones.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from resilient_routing._exceptions import InvalidConfigError

__all__ = ["Fallback", "PrimaryOnly", "RoundRobin"]


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
