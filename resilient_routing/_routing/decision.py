"""The decision core: every routing rule, and no I/O.

One :class:`Decision` per call says what to do next and takes each outcome back. Its methods
return the next *step*; a driver performs it and reports what happened::

    step = decision.start()
    while True:
        if step is CHECK:      # is decision.index available in the tracker?
            step = decision.available() or decision.cooling(seconds_left)
        elif step is ATTEMPT:  # call provider decision.index
            step = decision.failed(i, exc, latency)    # or: decision.succeeded(...)
        elif step is RECORD:   # record_failure(decision.names[decision.index], decision.judged)
            step = decision.recorded(started, seconds_left)
        elif step is CLEAR:    # record_success(decision.names[decision.winner])
            step = decision.returns()
        elif step is RETURN:
            return decision.value
        elif step is TALLY:    # every provider's cooldown_remaining, for the error's retry_after
            step = decision.tallied(remaining)
        elif step is WAIT:     # hedging: wait up to decision.wait seconds for running attempts
            step = decision.waited()
        elif step is RAISE:
            raise decision.error

The rules: the strategy's order, each provider once, the terminus last and always attempted;
skipping providers cooling down; ``max_attempts`` (the last slot is the terminus's);
``slow_call`` (a slow answer is returned, and recorded as a failure);
``timeout`` and ``attempt_timeout`` on the route's clock; which failures fall over
(``fallback_on``), which count toward a cooldown (exempt names, ``cooldown_on``); what a
single-attempt strategy re-raises; what is returned or raised; how many attempts run at once
(hedging). What the call tells the world goes through :mod:`.report`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from resilient_routing._exceptions import (
    AllProvidersFailedError,
    SlowCallError,
)

from . import report
from .deadlines import Deadlines
from .failures import judge
from .providers import read_providers
from .racing import WAIT, Racing

if TYPE_CHECKING:
    from resilient_routing._result import RouteResult

    from .route import Context, Route

__all__ = ["ATTEMPT", "CHECK", "CLEAR", "RAISE", "RECORD", "RETURN", "TALLY", "WAIT", "Decision"]

#: Steps: what the driver does next.
CHECK: Final = 1
ATTEMPT: Final = 2
RECORD: Final = 3
TALLY: Final = 4
RAISE: Final = 6
CLEAR: Final = 7
RETURN: Final = 8

_running_loop = report.running_loop
_last_here = report.last_here
_last_in_task = report.last_in_task


class Decision(Racing, Deadlines):
    """The decision state of one routed call (see the module docstring for its steps).

    Args:
        route: the routed function's route.
        context: what the call reads of the global configuration (its tracker, the names to
            ask it about, exempt names, logger and listeners).
        want_result: return a RouteResult instead of the response.
        providers: the providers and their names, when the caller read them already.
        plan: when a driver's fast lane hands the call over: the indices it did not draw
            (None: it took index 0 of the route's ``rest`` without drawing a plan).
        drawn: the index that lane drew (-1: no lane; the strategy's plan is drawn at the
            first step).
        attempted: 1 when that lane attempted ``drawn`` (it reports the failure with
            :meth:`failed`); 0 when it found ``drawn`` cooling down (it reports the cooldown
            with :meth:`cooling`: the tracker is not asked twice).

    Attributes:
        index: the provider the current step is about.
        value: what a call that succeeded returns.
        error: what a call raises (``RAISE``).
        budget: the seconds the attempt of ``ATTEMPT`` may take (None: unbounded).
        wait: the seconds of ``WAIT`` (None: until an outcome).
        judged: the exception of ``RECORD`` to record.
    """

    # Attributes that only some steps use are set by those steps: a routed call whose first
    # choice fails builds one of these, and every write costs.
    # One line per few names: the slots read as a list, not a column.
    __slots__ = tuple(
        (  # noqa: SIM905
            "_plan asks attempt budget call_id cut deadline deadline_bound error exempt failures "
            "finished hedges in_flight index judged latency listeners logger loud names numbers "
            "probes providers raised response result route skipped slow_answer started tracked "
            "value wait want_result winner"
        ).split()
    )
    judged: Exception
    raised: Exception

    def __init__(
        self,
        route: Route,
        context: Context,
        want_result: bool,
        providers: tuple[tuple[Any, ...], tuple[str, ...]] | None = None,
        plan: Iterator[int] | None = None,
        drawn: int = -1,
        attempted: int = 0,
    ) -> None:
        self.route = route
        self.want_result = want_result
        self.tracked = context.tracker is not None
        self.asks = context.asks
        if providers is None:
            providers = read_providers(route.providers)
            check = route.caps.check_providers
            if check is not None and route.static_names is None:
                check(providers[1])  # a providers callable: its list is new at every call
        self.providers, names = providers
        self.names = names
        if drawn >= 0:
            self.index = drawn
            if plan is None:
                assert route.rest is not None  # the lane took index 0 without drawing a plan
                plan = iter(route.rest)
        self._plan = plan
        self.attempt = attempted
        self.failures: tuple[tuple[str, Exception], ...] = ()
        self.skipped: tuple[str, ...] = ()
        self.hedges: tuple[str, ...] = ()
        self.result: RouteResult[Any] | None = None
        self.budget: float | None = None
        self.exempt = context.exempt
        self.logger = logger = context.logger
        self.listeners = listeners = context.listeners
        loudest = route.loudest
        # A verdict the logger cached saves asking it (see Context.levels).
        self.loud = (
            True
            if listeners
            else context.levels.get(loudest) is not False and logger.isEnabledFor(loudest)
        )
        if not route.plain:
            options = route.options
            self.in_flight = 0
            #: Each attempt's number by provider: attempts in flight together end out of order.
            self.numbers: dict[int, int] = {}
            self.deadline: float | None = None
            #: The attempts whose budget is the call's time left: when it runs out, the
            #: caller's deadline ended them, not the provider (hedges each have their own).
            self.deadline_bound: tuple[int, ...] = ()
            if options.timeout is not None:
                self.started = route.clock()
                self.deadline = self.started + options.timeout
        if listeners:
            self.finished = False  # only those listening are told the call ended
            self.probes: tuple[int, ...] = ()  # the half-open probes the call holds
            self.started = route.clock()
            self.call_id = next(report.call_ids)
            report.call_started(self)

    # -- entry points ----------------------------------------------------------------------

    def start(self) -> int:
        """Return the first step of the call (drivers call it first).

        A driver's fast lane that attempted its first choice, or found it cooling down, hands
        the call over by reporting that instead (:meth:`failed`, :meth:`cooling`).
        """
        return self._next()

    # -- which provider next ---------------------------------------------------------------

    def number(self, i: int) -> int:
        """The number of provider ``i``'s attempt in the call (1-based)."""
        return self.attempt if self.route.plain else self.numbers.get(i, self.attempt)

    def is_terminus(self, i: int) -> bool:
        """Whether provider ``i`` is the terminus (multi-attempt strategies only)."""
        return i == len(self.names) - 1 and not self.route.single

    def _next(self) -> int:
        route = self.route
        plan = self._plan
        if plan is None:
            plan = self._plan = route.plan(self.providers)
        if route.plain:
            for i in plan:
                self.index = i
                return CHECK if self.names[i] in self.asks else self._begin(i)
            return TALLY if self.tracked else self._exhausted(())
        if self.in_flight > route.caps.max_hedges:
            return self._waiting()
        cap = route.options.max_attempts
        for i in plan:
            if cap is not None and self.attempt >= cap - 1 and not self.is_terminus(i):
                continue  # the last slot is the terminus's
            self.index = i
            return CHECK if self.names[i] in self.asks else self._begin(i)
        if self.in_flight:
            return self._waiting(False)  # no provider left to hedge with: wait for an outcome
        return TALLY if self.tracked else self._exhausted(())

    def available(self, probe: bool = False) -> int:
        """The provider asked about (``CHECK``) is available: attempt it.

        ``probe``: the call holds its half-open probe (drivers tell when someone listens).
        """
        if probe:
            self.probes += (self.index,)
            report.probe_started(self, self.index)
        return self._begin(self.index)

    def cooling(self, remaining: float) -> int:
        """The provider asked about (``CHECK``) is cooling down for ``remaining`` seconds."""
        i = self.index
        if self.is_terminus(i):
            if self.loud:
                report.terminus_cooling(self, i, remaining)
            return self._begin(i, True)
        self.skipped += (self.names[i],)
        if self.loud:
            report.skipped(self, i, remaining)
        return self._next()

    def _begin(self, i: int, cooling: bool = False) -> int:
        route = self.route
        if not route.plain:
            timed = self.deadline is not None or route.attempt_limit is not None
            if timed and not self._budget(route, i):
                return self._raise(self._timed_out())
            if self.in_flight:
                self.hedges += (self.names[i],)
            self.in_flight += 1
            self.numbers[i] = self.attempt + 1
            hook = route.caps.on_attempt_start
            if hook is not None:
                hook(self.names[i])
        self.attempt += 1
        if self.loud:
            report.attempting(self, i, cooling)
        return ATTEMPT

    # -- outcomes --------------------------------------------------------------------------

    def succeeded(self, i: int, response: Any, latency: float) -> int:
        """Provider ``i`` answered: ``CLEAR`` (record its success), ``RECORD`` or ``RETURN``.

        ``RECORD``: a slow answer, recorded as a failure. The call returns :attr:`value`.
        """
        if not self.route.plain:
            self.in_flight -= 1
            self._answered(i, latency)
        self.winner = i
        self.response = response
        self.latency = latency
        slow = self.route.options.slow_call
        error = (
            None if slow is None or latency <= slow else SlowCallError(self.names[i], latency, slow)
        )
        counted = error is not None and self.tracked and self.counts(i, error)
        if self.loud:
            report.succeeded(self, i, latency, error, counted)
        self.value = report.result(self) if self.want_result else response
        if counted:
            self.index = i
            self.judged = self.raised = error  # type: ignore[assignment]
            self.slow_answer, self.cut = True, False
            return RECORD
        return CLEAR if self.names[i] in self.asks else self.returns()

    def returns(self) -> int:
        """The call returns :attr:`value`: ``RETURN`` (drivers call it once ``CLEAR`` is done).

        Only now does ``last_route()`` name it and do listeners hear that it succeeded: the
        tracker steps before it may still raise.
        """
        # The thread's too: after asyncio.run(), the thread's last call is the loop's last.
        _last_here.value = self
        if _running_loop() is not None:
            _last_in_task.set(self)
        if self.loud:
            self.finish(None)
        return RETURN

    def failed(self, i: int, raised: Exception, latency: float, expired: bool = False) -> int:
        """Provider ``i`` raised ``raised`` after ``latency`` seconds; return the next step.

        Args:
            i: the provider.
            raised: what it raised.
            latency: the seconds the attempt took.
            expired: the attempt's time budget ran out (async drivers).
        """
        route = self.route
        ours = False  # a limit of the route's own ended the attempt: it falls over, always
        if not route.plain:
            self.in_flight -= 1
            self._ended(i, latency, False)
            if expired:
                if i in self.deadline_bound:
                    # The caller's deadline, not the provider, ended this attempt: not recorded
                    # as its failure; but past slow_call unanswered, it was a slow call.
                    error = self._timed_out()
                    error.__cause__ = raised
                    slow = self.outran(i, latency)
                    if slow is None:
                        return self._raise(error)
                    self.index, self.judged, self.raised = i, slow, error
                    self.slow_answer, self.cut = False, True
                    return RECORD
                # asyncio's TimeoutError says nothing: the failure tells which limit it was.
                timeout = TimeoutError(
                    f"provider {self.names[i]!r} did not answer within "
                    f"{route.attempt_limit_name}={route.attempt_limit:g} s"
                )
                timeout.__cause__ = raised
                raised, ours = timeout, True
        exc, falls_over = (raised, True) if ours else judge(route.options.fallback_on, raised)
        if not falls_over:
            if self.loud:
                report.failed(self, i, exc, "propagated", latency, logged=route.single)
            if route.single:
                self._note(i, raised)
            return self._raise(raised)
        if self.tracked and self.counts(i, exc):
            self.index = i
            self.judged = exc
            self.raised = raised
            self.latency = latency
            self.slow_answer = self.cut = False
            return RECORD
        if self.loud:
            report.failed(self, i, exc, "fell_over", latency)
        if route.single:
            self._note(i, raised)
            return self._raise(raised)
        self.failures += ((self.names[i], exc),)
        return self._next()

    def counts(self, i: int, exc: Exception) -> bool:
        """Whether a failure of provider ``i`` (that falls over) counts toward a cooldown."""
        cooldown_on = self.route.options.cooldown_on
        return self.names[i] not in self.exempt and (cooldown_on is None or cooldown_on(exc))

    def recorded(self, started: bool, remaining: float) -> int:
        """The failure of ``RECORD`` was recorded; ``started``: it started a cooldown."""
        i = self.index
        exc, raised = self.judged, self.raised
        if self.slow_answer or self.cut:  # the call returns it, or times out
            if started and self.loud:
                report.cooldown_started(self, i, remaining)
            return self._raise(raised) if self.cut else self.returns()
        if self.loud:
            report.failed(self, i, exc, "counted", self.latency)
            if started:
                report.cooldown_started(self, i, remaining)
            if self.listeners:
                report.probe_failed(self, i, exc)
        if self.route.single:
            self._note(i, raised)
            return self._raise(raised)
        self.failures += ((self.names[i], exc),)
        return self._next()

    def abandoned(self, i: int, latency: float, answered: bool = False) -> None:
        """An attempt of provider ``i`` ended without its outcome being judged.

        Its call was cancelled, or it lost a hedging race: nothing is recorded.
        """
        self._ended(i, latency, answered)

    def _answered(self, i: int, latency: float) -> None:
        """The attempt of provider ``i`` answered (the call's winner)."""
        self._ended(i, latency, True)

    def _ended(self, i: int, latency: float, ok: bool) -> None:
        """The attempt of provider ``i`` ended: the strategy hears of it (how it learns)."""
        hook = self.route.caps.on_attempt_end
        if hook is not None:
            hook(self.names[i], latency, ok)

    def _note(self, i: int, raised: Exception, note: str = "raised by provider") -> None:
        note = f"resilient_routing: {note} {self.names[i]!r}"
        if note not in getattr(raised, "__notes__", ()):
            raised.add_note(note)

    # -- the end ---------------------------------------------------------------------------

    def tallied(self, remaining: list[float]) -> int:
        """``TALLY`` answered: the cooldown left for each provider of the list."""
        return self._exhausted(remaining)

    def _exhausted(self, remaining: list[float] | tuple[()]) -> int:
        cooling = [r for r in remaining if r > 0]
        retry_after = min(cooling) if cooling else None
        route = self.route
        error = AllProvidersFailedError(
            self.failures,
            len(self.names),
            retry_after,
            self.skipped,
            route.options.max_attempts,
        )
        error.__cause__ = self.failures[-1][1] if self.failures else None
        error.__suppress_context__ = True
        if self.listeners:
            report.exhausted(self, error)
        return self._raise(error)

    def tracker_late(self, step: int) -> int:
        """The tracker did not answer ``step`` before the call's deadline.

        An answer in hand stands (its success goes unrecorded); otherwise the call timed out.
        """
        if step is CLEAR or (step is RECORD and self.slow_answer):
            return self.returns()
        if step is RECORD and self.cut:
            return self._raise(self.raised)
        if step is RECORD:  # its failure goes unrecorded, not untold
            self.failures += ((self.names[self.index], self.judged),)
        return self._raise(self._timed_out())

    def _raise(self, error: BaseException) -> int:
        self.error = error
        self.finish(error)
        return RAISE

    def finish(self, exc: BaseException | None) -> None:
        """The call ends, having raised ``exc`` (None: it returned); tell the listeners once.

        Drivers call it for whatever escapes them (a cancellation, a tracker's own error).
        """
        if self.listeners and not self.finished:
            self.finished = True
            report.call_finished(self, exc)
