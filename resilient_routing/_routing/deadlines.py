"""The rules of a call's time, a part of the decision core.

:class:`Deadlines` is mixed into :class:`~.decision.Decision`: how long each attempt may take
(``attempt_timeout``, or what is left of the call's ``timeout``), and the error of a call whose
deadline passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resilient_routing._exceptions import RoutingTimeoutError

if TYPE_CHECKING:
    from .route import Route

__all__ = ["Deadlines"]


class Deadlines:
    """The time rules of a decision (see the module docstring)."""

    __slots__ = ()

    if TYPE_CHECKING:  # what Decision holds
        route: Route
        deadline: float | None
        deadline_bound: tuple[int, ...]
        budget: float | None
        failures: tuple[tuple[str, Exception], ...]

    def _budget(self, route: Route, i: int) -> bool:
        """Set the budget of provider ``i``'s attempt; return False when the deadline is over."""
        budget = route.attempt_limit
        if self.deadline is not None:
            left = self.deadline - route.clock()
            if left <= 0:
                return False
            if budget is None or left <= budget:
                budget = left
                self.deadline_bound += (i,)  # type: ignore[misc]  # a slot of Decision's
        self.budget = budget  # type: ignore[misc]
        return True

    def _timed_out(self) -> RoutingTimeoutError:
        timeout = self.route.options.timeout
        assert timeout is not None
        error = RoutingTimeoutError(timeout, self.failures)
        error.__cause__ = self.failures[-1][1] if self.failures else None
        return error
