"""The decision state of one routed call: every rule the runners share lives here.

Which provider comes next, whether it may be called, what a skip, a success, a failure or a
deadline means, what to log, what to return or raise. The runners (``_core``, ``_hedge``)
only call providers and trackers and hand the outcomes to a ``Call``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import threading
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import tenacity

from . import _config
from ._exceptions import (
    AllProvidersFailedError,
    InvalidConfigError,
    RoutingTimeoutError,
    describe,
)
from ._route import Route
from ._routing.providers import read_providers

if TYPE_CHECKING:
    from ._result import RouteResult
    from .events import Listener

__all__ = [
    "Call",
    "Won",
    "counts",
    "falls_over",
    "judged",
    "last_route",
    "quick_result",
    "remember",
    "running_loop",
]

T = TypeVar("T")

_DEBUG = logging.DEBUG
_INFO = logging.INFO
_WARNING = logging.WARNING

#: What the runners' quick path remembers of a call it served: the route, the names, the
#: winner's index, response and latency, and the failures before it (None: none).
Won = tuple[Route, tuple[str, ...], int, Any, float, "tuple[tuple[str, Exception], ...] | None"]

# Where last_route() finds the last call: in a task (an event loop runs in this thread), a
# ContextVar, so that each task sees its own; elsewhere a thread-local, which costs half as
# much to write (a ContextVar write was the largest single cost of a plain routed call).
_last: ContextVar[Call | Won | None] = ContextVar("resilient_routing_last_route", default=None)
_last_here = threading.local()
running_loop = asyncio._get_running_loop


def remember(last: Call | Won) -> None:
    """Record the call that just returned, for :func:`last_route`."""
    if running_loop() is None:
        _last_here.value = last
    else:
        _last.set(last)


#: Numbers routed calls for listeners; next() on a count is atomic under the GIL.
_call_ids = itertools.count(1)


@functools.cache
def _events_module() -> ModuleType:
    # Imported on first use: an application without listeners never loads the events.
    from . import events

    return events


@functools.cache
def _result_class() -> type[RouteResult[Any]]:
    # Imported on first use: making the RouteResult dataclass costs ~2 ms at import, which a
    # program calling its routed functions plainly never needs.
    from ._result import RouteResult

    return RouteResult


def last_route() -> RouteResult[Any] | None:
    """Return the RouteResult of the last routed call that returned in this thread or task.

    Code that only receives a routed function's plain return value can still see which
    provider served it. ``None`` before any routed call returned in this context. A call that
    raises leaves the previous value in place.
    """
    last = _last.get() if running_loop() is not None else getattr(_last_here, "value", None)
    if last is None:
        return None
    if isinstance(last, Call):
        return last.route_result()
    return quick_result(last)


def quick_result(won: Won) -> RouteResult[Any]:
    """Return the RouteResult of a call the runners' quick path served."""
    route, names, i, response, latency, failures = won
    return _result_class()(
        response=response,
        provider=names[i],
        latency=latency,
        attempt=1 if failures is None else len(failures) + 1,
        was_terminus=i == len(names) - 1 and not route.single_attempt,
        failures=() if failures is None else failures,
    )


def judged(exc: Exception) -> Exception:
    """Return the exception a failure is judged by: a tenacity.RetryError's last one."""
    if isinstance(exc, tenacity.RetryError):
        last = exc.last_attempt
        if last.failed:
            inner = last.exception()
            if isinstance(inner, Exception):
                return inner
    return exc


def falls_over(route: Route, exc: Exception) -> bool:
    """Whether a failure judged by ``exc`` falls over to the next provider (else: propagates).

    A configuration error fails the same everywhere (like a bad request), and so does a
    RecursionError (a bug in the calling code; falling over at every level of a runaway
    recursion would multiply the calls by the providers at each level): never fall over.
    """
    return not isinstance(exc, _NEVER_FALL_OVER) and bool(route.fallback_on(exc))


_NEVER_FALL_OVER = (InvalidConfigError, RecursionError)


def counts(route: Route, exempt: frozenset[str], name: str, exc: Exception) -> bool:
    """Whether a failure of provider ``name`` (judged by ``exc``) counts toward its cooldown."""
    if name in exempt:
        return False
    cooldown_on = route.cooldown_on
    return cooldown_on is None or bool(cooldown_on(exc))


class Call:
    """The decision state of one routed call."""

    __slots__ = (
        "_order",
        "_result",
        "_terminus_cooling",
        "attempt",
        "call_id",
        "deadline",
        "exempt",
        "failures",
        "hedges",
        "listeners",
        "logger",
        "n",
        "names",
        "providers",
        "route",
        "skipped",
        "winner",
    )

    def __init__(self, route: Route, order: Iterable[int] | None = None) -> None:
        self.route = route
        self._order = order
        self.providers, self.names = read_providers(route.providers)
        self.n = len(self.providers)
        self.logger = route.logger or _config._current.logger
        self.attempt = 0
        self.failures: list[tuple[str, Exception]] = []
        self.skipped: list[str] = []
        self.exempt: frozenset[str] | None = None
        self.deadline = None if route.timeout is None else route.clock() + route.timeout
        self.hedges: tuple[str, ...] = ()
        self.winner: tuple[int, Any, float] | None = None
        self._result: RouteResult[Any] | None = None
        own, shared = route.listeners, _config._current.listeners
        self.listeners: tuple[Listener, ...] = own + shared if own and shared else own or shared
        self.call_id = next(_call_ids) if self.listeners else 0
        self._terminus_cooling = False

    def emit(self, kind: str, i: int | None, **fields: Any) -> None:
        """Tell the listeners.

        Callers check ``self.listeners`` first: events cost nothing when nobody listens.
        """
        events = _events_module()
        events.notify(
            self.listeners,
            getattr(events, kind)(
                call_id=self.call_id,
                function=self.route.name,
                provider=None if i is None else self.names[i],
                attempt=self.attempt,
                time=self.route.clock(),
                **fields,
            ),
        )

    def call_started(self) -> None:
        """Tell the listeners the call starts."""
        self.emit(
            "CallStarted",
            None,
            providers=self.names,
            strategy=type(self.route.strategy).__name__,
        )

    def call_finished(self, exc: BaseException | None, started: float) -> None:
        """Tell the listeners how the call ended (``exc``: what it raised, if anything)."""
        outcome: Literal["success", "exhausted", "timeout", "propagated", "cancelled"]
        if exc is None:
            outcome = "success"
        elif isinstance(exc, AllProvidersFailedError):
            outcome = "exhausted"
        elif isinstance(exc, RoutingTimeoutError):
            outcome = "timeout"
        elif isinstance(exc, Exception):
            outcome = "propagated"
        else:
            outcome = "cancelled"
        winner = None if self.winner is None or exc is not None else self.winner[0]
        self.emit(
            "CallFinished",
            winner,
            outcome=outcome,
            duration=self.route.clock() - started,
            exception=exc,
        )

    # -- which provider next -------------------------------------------------------------

    def plan(self) -> Iterable[int]:
        """Return the indices to consider, each once, the terminus last.

        Lazily: the happy path must not pay for providers it never reaches.
        """
        route = self.route
        n = self.n
        order = self._order
        if order is None:
            order = range(n) if route.in_list_order else route.strategy.order(self.providers)
        if route.single_attempt:
            for i in order:
                return (self._checked(i),)
            raise InvalidConfigError(f"strategy {route.strategy!r} chose no provider")
        if type(order) is range and order.start == 0 and order.step == 1 and order.stop == n:
            # Already every index once, in order, ending on the terminus.
            return order
        return self._deduplicated(order)

    def _checked(self, i: object) -> int:
        if type(i) is not int:
            raise InvalidConfigError(
                f"strategy {self.route.strategy!r} chose index {i!r} of type "
                f"{type(i).__name__}: expected an int"
            )
        if not 0 <= i < self.n:
            raise InvalidConfigError(
                f"strategy {self.route.strategy!r} chose index {i!r}, "
                f"outside the {self.n} providers of this call"
            )
        return i

    def _deduplicated(self, order: Iterable[int]) -> Iterator[int]:
        terminus = self.n - 1
        seen: set[int] = set()
        for i in order:
            if self._checked(i) != terminus and i not in seen:
                seen.add(i)
                yield i
        yield terminus

    def is_terminus(self, i: int) -> bool:
        """Whether provider ``i`` is the terminus (multi-attempt strategies only)."""
        return i == self.n - 1 and not self.route.single_attempt

    def admits(self, i: int) -> bool:
        """Whether ``max_attempts`` leaves room for provider ``i``.

        The last slot is the terminus's.
        """
        cap = self.route.max_attempts
        return cap is None or self.attempt < cap - 1 or self.is_terminus(i)

    def admit_cooling(self, i: int, remaining: float) -> bool:
        """A provider is cooling down: return whether to call it anyway (the terminus)."""
        if self.is_terminus(i):
            self._log(
                _INFO,
                "attempting terminus provider despite cooldown",
                i,
                cooldown_remaining=remaining,
                attempt=self.attempt + 1,
            )
            self._terminus_cooling = True
            return True
        self.skipped.append(self.names[i])
        self._log(_DEBUG, "skipping provider in cooldown", i, cooldown_remaining=remaining)
        if self.listeners:
            self.emit("ProviderSkipped", i, cooldown_remaining=remaining)
        return False

    def starting(self, i: int) -> None:
        """An attempt of provider ``i`` starts now.

        Raises:
            RoutingTimeoutError: the call's ``timeout`` is over: no new attempt starts.
        """
        if self.deadline is not None and self.route.clock() >= self.deadline:
            raise self.timed_out()
        self.attempt += 1
        if self.logger.isEnabledFor(_DEBUG):
            self._log(_DEBUG, "attempting provider", i, attempt=self.attempt)
        hook = self.route.on_attempt_start
        if hook is not None:
            hook(self.names[i])
        if self.listeners:
            if self.n > 1 and self.is_terminus(i):
                self.emit("TerminusUsed", i, in_cooldown=self._terminus_cooling)
            self.emit("AttemptStarted", i)

    def attempt_budget(self) -> tuple[float, bool] | None:
        """Return the seconds the next attempt may take, or None when unbounded.

        The flag beside them tells whether the whole call's deadline (not ``attempt_timeout``)
        sets them.
        """
        limit = self.route.attempt_timeout
        if self.deadline is None:
            return None if limit is None else (limit, False)
        left = self.deadline - self.route.clock()
        if limit is not None and limit < left:
            return (limit, False)
        return (max(left, 0.0), True)

    # -- outcomes ------------------------------------------------------------------------

    def classify(self, i: int, raised: Exception, latency: float) -> Exception | None:
        """Return the exception a failure is judged by, or None when it must propagate."""
        exc = judged(raised)
        if falls_over(self.route, exc):
            return exc
        if self.route.single_attempt:
            self._single_failed(i, raised, exc)
        if self.listeners:
            self.emit(
                "AttemptFailed", i, exception=exc, classification="propagated", latency=latency
            )
        return None

    def records(self, i: int, exc: Exception) -> bool:
        """Whether a failure of provider ``i`` counts toward its cooldown."""
        exempt = self.exempt
        if exempt is None:
            exempt = self.route.exempt
            if exempt is None:
                exempt = _config._current.exempt_providers
            self.exempt = exempt
        return counts(self.route, exempt, self.names[i], exc)

    def cooling_started(self, i: int, remaining: float) -> None:
        """Log that the failure just recorded started a cooldown."""
        self._log(
            _WARNING,
            "provider entering cooldown",
            i,
            attempt=self.attempt,
            cooldown_remaining=remaining,
        )
        if self.listeners:
            self.emit("CooldownStarted", i, duration=remaining)

    def failed(
        self, i: int, raised: Exception, exc: Exception, counted: bool, latency: float
    ) -> bool:
        """Log a failed attempt; return True when the runner must re-raise it as it is.

        ``raised`` is what the provider raised, ``exc`` what it is judged by (they differ for
        a tenacity.RetryError): a single-attempt strategy re-raises the former.
        """
        route = self.route
        name = self.names[i]
        self._log_failure(i, exc)
        if self.listeners:
            self.emit(
                "AttemptFailed",
                i,
                exception=exc,
                classification="counted" if counted else "fell_over",
                latency=latency,
            )
        if route.single_attempt:
            self._note(i, raised)
            return True
        self.failures.append((name, exc))
        return False

    def _note(self, i: int, raised: Exception) -> None:
        note = f"resilient_routing: raised by provider {self.names[i]!r}"
        if note not in getattr(raised, "__notes__", ()):
            raised.add_note(note)

    def _single_failed(self, i: int, raised: Exception, exc: Exception) -> None:
        """Log and note a single-attempt failure that propagates outside ``fallback_on``.

        The same record and note as any failure of such a strategy.
        """
        self._log_failure(i, exc)
        self._note(i, raised)

    def _log_failure(self, i: int, exc: Exception) -> None:
        route = self.route
        self._log(
            route.failure_level,
            route.failure_message,
            i,
            attempt=self.attempt,
            error_type=type(exc).__name__,
            error=describe(exc),
        )

    def succeeded(self, i: int, response: T, latency: float, want_result: bool) -> Any:
        """Provider ``i`` answered: return the response, or its RouteResult."""
        if self.failures:
            self._log(
                _INFO, "succeeded on fallback provider", i, attempt=self.attempt, latency=latency
            )
        self.winner = (i, response, latency)
        remember(self)
        if self.listeners:
            self.emit("AttemptSucceeded", i, latency=latency)
        return self.route_result() if want_result else response

    def route_result(self) -> RouteResult[Any]:
        """Build (once) the RouteResult of the successful attempt."""
        result = self._result
        if result is None:
            assert self.winner is not None
            i, response, latency = self.winner
            result = self._result = _result_class()(
                response=response,
                provider=self.names[i],
                latency=latency,
                attempt=self.attempt,
                was_terminus=self.is_terminus(i),
                failures=tuple(self.failures),
                skipped=tuple(self.skipped),
                hedges=self.hedges,
            )
        return result

    def exhausted(self, remaining: Iterable[float]) -> AllProvidersFailedError:
        """Return the error of a call whose every attempt failed.

        Args:
            remaining: the cooldown left for each provider of the list (none when untracked).
        """
        cooling = [r for r in remaining if r > 0]
        error = AllProvidersFailedError(self.failures, self.n, min(cooling) if cooling else None)
        if self.listeners:
            self.emit(
                "RoutingExhausted",
                None,
                failures=error.failures,
                retry_after=error.retry_after,
            )
        error.__cause__ = self.failures[-1][1] if self.failures else None
        error.__suppress_context__ = True
        return error

    def timed_out(self) -> RoutingTimeoutError:
        """Return the error of a call that ran out of its ``timeout``."""
        assert self.route.timeout is not None
        error = RoutingTimeoutError(self.route.timeout, self.failures)
        error.__cause__ = self.failures[-1][1] if self.failures else None
        return error

    def _log(self, level: int, message: str, i: int, **fields: object) -> None:
        logger = self.logger
        if logger.isEnabledFor(level):
            fields["provider"] = self.names[i]
            fields["is_terminus"] = self.is_terminus(i)
            logger.log(level, message, extra=fields)
