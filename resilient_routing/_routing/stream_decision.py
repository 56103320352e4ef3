"""The decision of a streaming call: the rules of a call until the first item, then its stream's.

Routing ends at the winner's first item; the call ends with the stream (run out, closed,
failed), and only then is its success recorded and the strategy told the attempt ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import report
from .decision import CLEAR, RECORD, Decision
from .failures import judge

if TYPE_CHECKING:
    import weakref

    from .route import Context, Route

__all__ = ["StreamDecision"]


class StreamDecision(Decision):
    """The decision of a streaming call: routing ends at the first item, the call at the end.

    Attributes:
        items: the items handed to the consumer (counted while someone listens).
    """

    __slots__ = ("clears", "closed", "delivered", "first_at", "held", "items", "over")

    def __init__(self, route: Route, context: Context) -> None:
        super().__init__(route, context, False)
        self.delivered = self.over = self.closed = self.clears = False
        self.items = 0
        #: The winner's attempt, which ends with its stream: (index, time to first item).
        self.held: tuple[int, float] | None = None

    def _answered(self, i: int, latency: float) -> None:
        # The provider is busy until its stream ends (least_busy counts it in flight until
        # then); what the strategy learns of its speed is the time to the first item.
        self.held = (i, latency)

    def released(self) -> None:
        """The call is over, however it ended: the winner's attempt ends with it."""
        held, self.held = self.held, None
        if held is not None:
            self._ended(*held, True)

    def succeeded(self, i: int, response: Any, latency: float) -> int:
        """The first item arrived (see :meth:`Decision.succeeded`).

        Its success is recorded when the stream ends well (:attr:`clears`), not now: a
        provider that cuts every stream after a few items must reach its failure threshold.
        """
        step = super().succeeded(i, response, latency)
        if step is CLEAR:
            self.clears = True
            return self.returns()
        return step

    def deliver(self, stream: weakref.ref[Any]) -> None:
        """The winner's first item arrived: ``stream`` (the routed stream) is its from now on."""
        self.delivered = True
        # The opened stream goes to the driver only: last_route() keeps this decision, and
        # must not keep a stream its consumer dropped.
        self.response = stream
        self.value = None
        if self.listeners:
            self.first_at = self.route.clock()
            report.first_item(self)

    def broke(self, raised: Exception, stalled: bool = False) -> int:
        """The winner's stream raised ``raised`` after its first item: ``RECORD`` or ``RAISE``.

        Recorded as the winner's failure by the rules of any failure (``fallback_on``,
        ``cooldown_on``, exempt names; ``stalled``: ``idle_timeout`` ended it, which counts
        whatever ``fallback_on`` says); re-raised with a note either way.
        """
        i = self.winner
        fallback_on = self.route.options.fallback_on
        exc, falls_over = (raised, True) if stalled else judge(fallback_on, raised)
        if falls_over and self.tracked and self.counts(i, exc):
            self.index, self.judged, self.raised = i, exc, raised
            return RECORD
        if self.loud:
            report.stream_broke(self, exc, "counted" if falls_over else "propagated")
        self._note(i, raised, "raised mid-stream by provider")
        return self._raise(raised)

    def recorded(self, started: bool, remaining: float) -> int:
        """The failure of ``RECORD`` was recorded; ``started``: it started a cooldown."""
        if not self.delivered:
            return super().recorded(started, remaining)
        i = self.winner
        if self.loud:
            report.stream_broke(self, self.judged, "counted")
            if started:
                report.cooldown_started(self, i, remaining)
        self._note(i, self.raised, "raised mid-stream by provider")
        return self._raise(self.raised)

    def ended(self, closed: bool = False) -> None:
        """The stream ran out (``closed``: its consumer closed it first): the call ends."""
        self.over, self.closed = True, closed
        self.finish(None)

    def finish(self, exc: BaseException | None) -> None:
        """Tell the listeners the call ended, once: a success ends it only with its stream."""
        if self.listeners and not self.finished:
            if exc is None and not self.over:
                return  # the first item: the call goes on with its stream
            if self.delivered:
                report.stream_ended(self, exc, self.closed, self.items, self.first_at)
        super().finish(exc)
