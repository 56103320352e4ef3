"""The rules of attempts racing in flight (hedged strategies), a part of the decision core.

:class:`Racing` is mixed into :class:`~.decision.Decision`: when to start another attempt
beside the running ones (``WAIT``), when the call's deadline ends the wait, and what a losing
attempt that ran past ``slow_call`` tells about its provider.
"""

from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Final, Self

from resilient_routing._exceptions import SlowCallError

from . import report

if TYPE_CHECKING:
    from resilient_routing._exceptions import RoutingTimeoutError

    from .route import Route

__all__ = ["WAIT", "Racing"]

#: What a decision holds of its call's outcome: the response, the error, the failures judged.
_OUTCOME: Final = ("response", "value", "result", "error", "judged", "raised")

#: A step: wait up to ``wait`` seconds for an outcome of the attempts in flight.
WAIT: Final = 5


class Racing:
    """The racing rules of a decision (see the module docstring)."""

    __slots__ = ()

    if TYPE_CHECKING:  # what Decision holds, and its steps these rules lead to
        route: Route
        names: tuple[str, ...]
        in_flight: int
        failures: tuple[tuple[str, Exception], ...]
        deadline: float | None
        wait: float | None
        tracked: bool
        loud: bool

        def _next(self) -> int: ...
        def _raise(self, error: BaseException) -> int: ...
        def _timed_out(self) -> RoutingTimeoutError: ...
        def counts(self, i: int, exc: Exception) -> bool: ...

    def started_attempt(self) -> int:
        """The hedged driver started the attempt it was told to: return the next step."""
        return self._waiting()

    def _waiting(self, hedging: bool = True) -> int:
        """Wait for an outcome; ``hedging``: at most the hedge delay (a provider is left)."""
        caps = self.route.caps
        wait = caps.hedge_delay if hedging and self.in_flight <= caps.max_hedges else None
        if self.deadline is not None:
            left = max(self.deadline - self.route.clock(), 0.0)
            wait = left if wait is None else min(wait, left)
        self.wait = wait  # type: ignore[misc]  # a slot of Decision's
        return WAIT

    def waited(self) -> int:
        """A ``WAIT`` ended with no outcome: hedge, or time out."""
        if self.deadline is not None and self.route.clock() >= self.deadline:
            return self._raise(self._timed_out())
        return self._next()

    def outran(self, i: int, elapsed: float) -> SlowCallError | None:
        """A losing attempt of provider ``i`` was stopped after ``elapsed`` seconds, unanswered.

        Past ``slow_call`` it was a slow call whatever it would have answered: return the
        error to record against the provider (None: nothing to record).
        """
        slow = self.route.options.slow_call
        if slow is None or elapsed <= slow or not self.tracked:
            return None
        error = SlowCallError(self.names[i], elapsed, slow)
        counted = self.counts(i, error)
        if self.loud:
            report.slow_answer(self, i, error, counted)  # type: ignore[arg-type]
        return error if counted else None

    def outran_recorded(self, i: int, started: bool, remaining: float) -> None:
        """The slow call of :meth:`outran` was recorded; ``started``: it began a cooldown."""
        if started and self.loud:
            report.cooldown_started(self, i, remaining)  # type: ignore[arg-type]

    def detached(self) -> Self:
        """A copy for the attempts that outlive the call (sync hedged losers run on).

        It keeps what their ends need (the route, names, listeners, the call's identity) and
        not the call's outcome: a loser that runs for minutes must not keep the winner's
        response and the failures alive.
        """
        other = copy.copy(self)
        other.failures = ()  # type: ignore[misc]  # a slot of Decision's
        for name in _OUTCOME:
            with contextlib.suppress(AttributeError):  # a slot never set
                delattr(other, name)
        return other
