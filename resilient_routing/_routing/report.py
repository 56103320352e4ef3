"""What a routed call tells the world: log records, events, ``last_route()`` and results.

The decision core calls these at its outcomes; nothing here decides anything. Log records
carry their facts in ``extra`` for structured handlers; events are built only when someone
listens (the event classes are imported on first use).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
from contextvars import ContextVar
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from resilient_routing._exceptions import (
    AllProvidersFailedError,
    RoutingTimeoutError,
    SlowCallError,
    bounded,
    describe,
)

if TYPE_CHECKING:
    from resilient_routing._result import RouteResult
    from resilient_routing.events import RoutingEvent
    from resilient_routing.strategies._protocol import Capabilities

    from .decision import Decision
    from .route import Route

__all__ = [
    "attempting",
    "call_finished",
    "call_started",
    "cooldown_started",
    "exhausted",
    "failed",
    "failure_line",
    "first_item",
    "last_route",
    "probe_failed",
    "probe_started",
    "quick_result",
    "result",
    "skipped",
    "slow_answer",
    "stream_broke",
    "stream_ended",
    "succeeded",
    "terminus_cooling",
]

_DEBUG, _INFO, _WARNING = 10, 20, 30

# -- last_route() -----------------------------------------------------------------------
#
# A call that returns is remembered in a thread-local (cheap to write, which matters: it is
# a plain routed call's largest cost after the provider) and in a task in a ContextVar too.

#: What the fast lane remembers of a plain success: its route, the provider's index, the
#: response and the latency. The decision core remembers itself.
Quick = tuple["Route", int, Any, float]

last_in_task: ContextVar[Decision | Quick | None] = ContextVar(
    "resilient_routing_last", default=None
)
last_here = threading.local()
running_loop = asyncio._get_running_loop


def remembered() -> tuple[Any, Any]:
    """What ``last_route()`` remembers here now (the thread's, the task's): to restore."""
    return getattr(last_here, "value", None), last_in_task.get()


def restore(memory: tuple[Any, Any], d: Decision) -> None:
    """Put back what :func:`remembered` returned where ``d`` (raising after all) still is."""
    if getattr(last_here, "value", None) is d:  # not a later call's, of another task
        last_here.value = memory[0]
    if last_in_task.get() is d:
        last_in_task.set(memory[1])


def last_route() -> RouteResult[Any] | None:
    """Return the RouteResult of the last routed call that returned in this thread or task.

    Code that only receives a routed function's plain return value can still see which
    provider served it. ``None`` before any routed call returned in this context. A call that
    raises leaves the previous value in place. In a task: the task's calls (and those before
    it was made); outside a loop: the thread's last, one a loop it ran made included.
    """
    in_task = running_loop() is not None
    last = last_in_task.get() if in_task else getattr(last_here, "value", None)
    if last is None:
        return None
    if isinstance(last, tuple):
        return quick_result(*last)
    return result(last)


@functools.cache
def _result_class() -> type[RouteResult[Any]]:
    from resilient_routing._result import RouteResult  # costs import time plain calls skip

    return RouteResult


def quick_result(route: Route, i: int, response: Any, latency: float) -> RouteResult[Any]:
    """Return the RouteResult of a call the fast lane served (its first choice answered)."""
    names = route.static_names
    assert names is not None  # the fast lane serves routes whose providers are known
    return _result_class()(
        response=response,
        provider=names[i],
        latency=latency,
        attempt=1,
        was_terminus=route.is_terminus(i, len(names)),
    )


def result(d: Decision) -> RouteResult[Any]:
    """Build (once) the RouteResult of a decided call."""
    made = d.result
    if made is None:
        i = d.winner
        response = d.response
        if d.route.stream:
            # The stream, held weakly by its own call: it must close when its consumer drops
            # it, so neither the decision nor a kept result may hold it.
            response = response()
        made = _result_class()(
            response=response,
            provider=d.names[i],
            latency=d.latency,
            attempt=d.attempt,
            was_terminus=d.is_terminus(i),
            failures=d.failures,
            skipped=d.skipped,
            hedges=d.hedges,
        )
        if not d.route.stream:
            d.result = made
    return made


# -- events -----------------------------------------------------------------------------

#: Numbers routed calls for listeners; next() on a count is atomic under the GIL.
call_ids = itertools.count(1)


@functools.cache
def _events() -> ModuleType:
    from resilient_routing import events  # only an application with listeners loads them

    return events


def _emit(d: Decision, kind: type[RoutingEvent], i: int | None, **fields: Any) -> None:
    events = _events()
    events.notify(
        d.listeners,
        kind(
            call_id=d.call_id,
            function=d.route.name,
            provider=None if i is None else d.names[i],
            attempt=d.attempt if i is None or kind is events.CallFinished else d.number(i),
            time=d.route.clock(),
            **fields,
        ),
        d.logger,
    )


def call_started(d: Decision) -> None:
    """A call starts (only called when someone listens)."""
    _emit(d, _events().CallStarted, None, providers=d.names, strategy=d.route.strategy_name)


def call_finished(d: Decision, exc: BaseException | None) -> None:
    """A call ends: ``exc`` is what it raised, if anything (only called when someone listens)."""
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
    # A stream that failed after its first item was still that provider's.
    winner = getattr(d, "winner", None) if exc is None or d.route.stream else None
    _emit(
        d,
        _events().CallFinished,
        winner,
        outcome=outcome,
        duration=d.route.clock() - d.started,
        exception=exc,
    )


# -- outcomes: a log record and an event each --------------------------------------------
#
# Each message starts with the seed's words, then states the facts itself (Python's default
# formatter prints the message alone); the same facts go to ``extra`` for structured
# handlers. Error texts are cut: an exception may carry a whole response body.

#: Characters of an error's ``Type: message`` in a log record.
ERROR_TEXT_LIMIT = 500

#: A log line: its level and message. Its first argument is the provider's name; a failure's
#: ends with the error's type and text. docs/observability.md lists every one (a test checks).
Line = tuple[int, str]
#: A record's facts, for structured handlers (``extra``): built per record, then the record's.
Fields = dict[str, object]

_SKIPPING: Line = (_DEBUG, "skipping provider in cooldown: %r (%s s left)")
_TERMINUS_COOLING: Line = (_INFO, "attempting terminus provider despite cooldown: %r (%s s left)")
_ATTEMPTING: Line = (_DEBUG, "attempting provider: %r (attempt %d of %d)")
_PROBING: Line = (_INFO, "probing provider after its cooldown: %r")
_SLOW: Line = (_WARNING, "provider answered slowly: %r in %s s (slow_call=%s s)%s")
_COOLING: Line = (_WARNING, "provider entering cooldown: %r for %s s")
_FELL_BACK: Line = (_INFO, "succeeded on fallback provider: %r (attempt %d)")
_MID_STREAM: Line = (_WARNING, "provider failed mid-stream: %r: %s: %s")


def failure_line(caps: Capabilities) -> Line:
    """The line of a failed attempt under a strategy (a route builds it once)."""
    if caps.single_attempt:
        return (caps.failure_level, f"{caps.failure_message}: %r: %s: %s")
    return (caps.failure_level, f"{caps.failure_message}: %r (attempt %d of %d): %s: %s")


def seconds(value: float) -> str:
    """Return seconds for a log line: ``12.5``, ``30``, ``0.25``, ``300``."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _log(d: Decision, line: Line, i: int, args: tuple[object, ...], fields: Fields) -> None:
    """Log ``line`` of provider ``i`` with ``args`` after its name; ``fields``: its ``extra``."""
    level, message = line
    logger = d.logger
    if logger.isEnabledFor(level):
        fields["provider"] = d.names[i]
        fields["is_terminus"] = d.is_terminus(i)
        logger.log(level, message, d.names[i], *args, extra=fields)


def _log_failure(
    d: Decision, line: Line, i: int, args: tuple[object, ...], exc: Exception, fields: Fields
) -> None:
    """Log a failure by its type and text, cut: never its traceback, or the whole of a body."""
    error, kind = bounded(describe(exc), ERROR_TEXT_LIMIT), type(exc).__name__
    fields["error_type"] = kind
    fields["error"] = error
    _log(d, line, i, (*args, kind, error), fields)


def _of(d: Decision) -> int:
    """The most attempts the call can make: its providers, or fewer under ``max_attempts``."""
    cap = d.route.options.max_attempts
    n = len(d.names)
    return n if cap is None else min(n, cap)


def skipped(d: Decision, i: int, remaining: float) -> None:
    """A provider cooling down was skipped."""
    _log(d, _SKIPPING, i, (seconds(remaining),), {"cooldown_remaining": remaining})
    if d.listeners:
        _emit(d, _events().ProviderSkipped, i, cooldown_remaining=remaining)


def terminus_cooling(d: Decision, i: int, remaining: float) -> None:
    """The terminus is attempted although it is cooling down."""
    left = (seconds(remaining),)
    _log(d, _TERMINUS_COOLING, i, left, {"cooldown_remaining": remaining, "attempt": d.attempt + 1})


def attempting(d: Decision, i: int, cooling: bool) -> None:
    """An attempt of provider ``i`` starts (``d.attempt`` counts it already)."""
    _log(d, _ATTEMPTING, i, (d.number(i), _of(d)), {"attempt": d.number(i)})
    if d.listeners:
        events = _events()
        if len(d.names) > 1 and d.is_terminus(i):
            _emit(d, events.TerminusUsed, i, in_cooldown=cooling)
        _emit(d, events.AttemptStarted, i)


def failed(
    d: Decision,
    i: int,
    exc: Exception,
    classification: Literal["propagated", "fell_over", "counted"],
    latency: float,
    *,
    logged: bool = True,
) -> None:
    """An attempt failed: judged by ``exc``, with what the routing made of it."""
    route = d.route
    if logged:
        args = () if route.single else (d.number(i), _of(d))
        _log_failure(
            d, route.failure_line, i, args, exc, {"attempt": d.number(i), "latency": latency}
        )
    if d.listeners:
        events = _events()
        _emit(
            d,
            events.AttemptFailed,
            i,
            exception=exc,
            classification=classification,
            latency=latency,
        )
        if i in d.probes and classification != "counted":  # counted: reported once recorded
            _emit(d, events.ProbeFailed, i, exception=exc, latency=latency)


def probe_started(d: Decision, i: int) -> None:
    """The call claimed the half-open probe of provider ``i`` (only told when listening)."""
    _log(d, _PROBING, i, (), {})
    _emit(d, _events().ProbeStarted, i)


def probe_failed(d: Decision, i: int, exc: Exception) -> None:
    """The probe of provider ``i`` failed, its failure recorded (only told when listening)."""
    if i in d.probes:
        _emit(d, _events().ProbeFailed, i, exception=exc, latency=d.latency)


def slow_answer(d: Decision, i: int, error: SlowCallError, counted: bool) -> None:
    """Provider ``i`` answered, or ran unanswered, slower than ``slow_call``."""
    args = (seconds(error.latency), seconds(error.limit), "" if counted else ", not counted")
    _log(d, _SLOW, i, args, {"attempt": d.number(i), "latency": error.latency})
    if d.listeners:
        _emit(d, _events().SlowCall, i, latency=error.latency, limit=error.limit, counted=counted)


def cooldown_started(d: Decision, i: int, remaining: float) -> None:
    """The failure just recorded put provider ``i`` into cooldown."""
    left = (seconds(remaining),)
    _log(d, _COOLING, i, left, {"attempt": d.number(i), "cooldown_remaining": remaining})
    if d.listeners:
        _emit(d, _events().CooldownStarted, i, duration=remaining)


def succeeded(
    d: Decision, i: int, latency: float, slow: SlowCallError | None = None, counted: bool = False
) -> None:
    """Provider ``i`` answered; ``slow``: slower than ``slow_call`` (``counted``: a failure)."""
    if d.failures:
        _log(d, _FELL_BACK, i, (d.number(i),), {"attempt": d.number(i), "latency": latency})
    if d.listeners:
        _emit(d, _events().AttemptSucceeded, i, latency=latency)
    if slow is not None:
        slow_answer(d, i, slow, counted)
    if d.listeners and i in d.probes:
        if counted:  # a probe that answered too slowly failed: its next cooldown starts
            _emit(d, _events().ProbeFailed, i, exception=slow, latency=latency)
        else:
            _emit(d, _events().ProbeSucceeded, i, latency=latency)


def exhausted(d: Decision, error: AllProvidersFailedError) -> None:
    """Every attempt failed (only called when someone listens)."""
    _emit(
        d,
        _events().RoutingExhausted,
        None,
        failures=error.failures,
        retry_after=error.retry_after,
    )


# -- streams ----------------------------------------------------------------------------


def first_item(d: Decision) -> None:
    """A streaming call's first item arrived (only called when someone listens)."""
    _emit(d, _events().FirstItem, d.winner, latency=d.route.clock() - d.started)


def stream_broke(d: Decision, exc: Exception, classification: str) -> None:
    """The provider of a stream raised after its first item (judged by ``exc``)."""
    i = d.winner
    _log_failure(
        d, _MID_STREAM, i, (), exc, {"attempt": d.number(i), "classification": classification}
    )


def stream_ended(
    d: Decision,
    exc: BaseException | None,
    closed: bool,
    items: int,
    since: float,
) -> None:
    """A streaming call's stream ended (only called when someone listens)."""
    outcome: Literal["completed", "closed", "failed", "cancelled"]
    if exc is None:
        outcome = "closed" if closed else "completed"
    else:
        outcome = "failed" if isinstance(exc, Exception) else "cancelled"
    _emit(
        d,
        _events().StreamEnded,
        d.winner,
        outcome=outcome,
        items=items,
        duration=d.route.clock() - since,
        exception=exc,
    )
