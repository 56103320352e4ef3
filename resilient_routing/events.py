"""Routing events, for listeners: ``configure(listeners=[...])`` or ``routed(listeners=[...])``.

Every event is a frozen, slotted dataclass with ``kind``, ``call_id`` (one routed call),
``function`` (the routed function's qualified name), ``provider`` (None for call-level
events), ``attempt`` and ``time`` (``time.monotonic()``). Listeners receive them in order,
in the thread or task of the routed call (for sync hedging: of the caller).

A listener is any object with ``on_event(event)``. Example::

    from resilient_routing import configure
    from resilient_routing.events import AttemptFailed, RoutingEvent

    class CountFailures:
        def __init__(self) -> None:
            self.failures = 0

        def on_event(self, event: RoutingEvent) -> None:
            if isinstance(event, AttemptFailed):
                self.failures += 1

    configure(listeners=[CountFailures()])
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

from ._exceptions import bounded, describe

__all__ = [
    "AttemptFailed",
    "AttemptStarted",
    "AttemptSucceeded",
    "CallFinished",
    "CallStarted",
    "CooldownStarted",
    "FirstItem",
    "Listener",
    "ProbeFailed",
    "ProbeStarted",
    "ProbeSucceeded",
    "ProviderSkipped",
    "RoutingEvent",
    "RoutingExhausted",
    "SlowCall",
    "StreamEnded",
    "TerminusUsed",
    "notify",
]


@runtime_checkable
class Listener(Protocol):
    """Receives routing events; register with ``configure(listeners=...)`` or ``routed``."""

    def on_event(self, event: RoutingEvent) -> None:
        """Handle one event. Exceptions are logged once and never break the routed call."""
        ...


@dataclass(frozen=True, slots=True)
class RoutingEvent:
    """Fields every event has.

    ``attempt`` is the number of ``provider``'s attempt in the call (1-based); for the call's
    own events (``CallStarted``, ``CallFinished``...), the attempts made so far.
    """

    kind: ClassVar[str] = "event"
    call_id: int
    function: str
    provider: str | None
    attempt: int
    time: float


@dataclass(frozen=True, slots=True)
class CallStarted(RoutingEvent):
    """A routed call starts (``provider`` is None)."""

    kind: ClassVar[str] = "call_started"
    providers: tuple[str, ...] = ()
    strategy: str = ""


@dataclass(frozen=True, slots=True)
class CallFinished(RoutingEvent):
    """A routed call ends, whatever the outcome (``provider``: the one that served, if any).

    A streaming call ends with its stream: ``"success"`` when it completed or the consumer
    closed it, ``"propagated"`` when its provider failed after the first item.

    ``outcome`` is ``"success"``, ``"exhausted"`` (AllProvidersFailedError), ``"timeout"``
    (RoutingTimeoutError), ``"propagated"`` (an exception outside ``fallback_on``, or a
    single-attempt strategy's failure) or ``"cancelled"`` (a BaseException such as
    ``asyncio.CancelledError``). ``exception`` is what the call raised, if anything.
    """

    kind: ClassVar[str] = "call_finished"
    outcome: Literal["success", "exhausted", "timeout", "propagated", "cancelled"] = "success"
    duration: float = 0.0
    exception: BaseException | None = None


@dataclass(frozen=True, slots=True)
class AttemptStarted(RoutingEvent):
    """A provider is called."""

    kind: ClassVar[str] = "attempt_started"


@dataclass(frozen=True, slots=True)
class AttemptSucceeded(RoutingEvent):
    """A provider answered."""

    kind: ClassVar[str] = "attempt_succeeded"
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class AttemptFailed(RoutingEvent):
    """A provider raised.

    ``classification`` is ``"propagated"`` (outside ``fallback_on``: re-raised at once),
    ``"fell_over"`` (the routing went on, the failure not counted toward a cooldown) or
    ``"counted"`` (it went on and the failure counted toward a cooldown).
    """

    kind: ClassVar[str] = "attempt_failed"
    exception: BaseException | None = None
    classification: Literal["propagated", "fell_over", "counted"] = "fell_over"
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class ProviderSkipped(RoutingEvent):
    """A provider was skipped because it is cooling down."""

    kind: ClassVar[str] = "provider_skipped"
    cooldown_remaining: float = 0.0


@dataclass(frozen=True, slots=True)
class CooldownStarted(RoutingEvent):
    """A failure put the provider into cooldown for ``duration`` seconds."""

    kind: ClassVar[str] = "cooldown_started"
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class TerminusUsed(RoutingEvent):
    """The terminus is called as the last resort (``in_cooldown``: despite its cooldown)."""

    kind: ClassVar[str] = "terminus_used"
    in_cooldown: bool = False


@dataclass(frozen=True, slots=True)
class RoutingExhausted(RoutingEvent):
    """Every attempted provider failed (``provider`` is None)."""

    kind: ClassVar[str] = "routing_exhausted"
    failures: tuple[tuple[str, Exception], ...] = ()
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class FirstItem(RoutingEvent):
    """A streaming call's first item arrived: the stream is ``provider``'s from now on.

    ``latency`` counts from the start of the call, failed attempts included: the time to first
    item (token) the consumer waited. The attempt's own is ``AttemptSucceeded.latency``.
    """

    kind: ClassVar[str] = "first_item"
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class StreamEnded(RoutingEvent):
    """A streaming call's stream ended (just before its ``CallFinished``).

    ``outcome``: ``"completed"`` (the provider's stream ran out), ``"closed"`` (the consumer
    stopped early: ``break``, ``close()``, ``aclose()``), ``"failed"`` (the provider raised
    ``exception`` after its first item, or stalled past ``idle_timeout``) or ``"cancelled"``.
    ``items``: the items handed to the consumer; ``duration``: seconds since the first item.
    """

    kind: ClassVar[str] = "stream_ended"
    outcome: Literal["completed", "closed", "failed", "cancelled"] = "completed"
    items: int = 0
    duration: float = 0.0
    exception: BaseException | None = None


@dataclass(frozen=True, slots=True)
class ProbeStarted(RoutingEvent):
    """The call claimed the half-open probe of ``provider``, whose cooldown is over.

    It tries the provider alone: the other callers wait for the outcome.
    """

    kind: ClassVar[str] = "probe_started"


@dataclass(frozen=True, slots=True)
class ProbeSucceeded(RoutingEvent):
    """The probe answered: the provider is closed (available to everyone) again."""

    kind: ClassVar[str] = "probe_succeeded"
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class ProbeFailed(RoutingEvent):
    """The probe failed: when counted, its next (grown) cooldown starts at once."""

    kind: ClassVar[str] = "probe_failed"
    exception: BaseException | None = None
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class SlowCall(RoutingEvent):
    """``provider`` answered (its response returned) slower than the route's ``slow_call``.

    ``counted``: recorded as a failure (``SlowCallError``); not when the provider is exempt,
    ``cooldown_on`` refuses it, or the call has no tracker.
    """

    kind: ClassVar[str] = "slow_call"
    latency: float = 0.0
    limit: float = 0.0
    counted: bool = True


_logger = logging.getLogger("resilient_routing")
#: The listeners whose failure was logged, by identity: id -> a weak reference that forgets
#: the id with its listener, so that a new listener reusing it is logged (one that takes no
#: weak reference is remembered for the process).
_broken: dict[int, Callable[[], object] | None] = {}
_broken_lock = threading.Lock()


def _first_failure(listener: Listener) -> bool:
    """Whether ``listener`` fails for the first time (its failure is then logged)."""
    key = id(listener)
    with _broken_lock:
        if key in _broken:
            ref = _broken[key]
            if ref is None or ref() is listener:
                return False
        try:
            _broken[key] = weakref.ref(listener, functools.partial(_forget, key))
        except TypeError:  # no weak reference
            _broken[key] = None
        return True


def _forget(key: int, _: object) -> None:
    _broken.pop(key, None)


def notify(
    listeners: tuple[Listener, ...], event: RoutingEvent, logger: logging.Logger = _logger
) -> None:
    """Deliver ``event`` to each listener.

    A listener that raises is logged once (to ``logger``, the call's), then muted in the log
    (it still receives later events); the routed call never sees its exception.
    """
    for listener in listeners:
        try:
            listener.on_event(event)
        except Exception as exc:
            if _first_failure(listener):
                error = bounded(describe(exc), 500)
                logger.error(
                    "routing listener failed: %s on %s: %s: %s (logged once per listener)",
                    type(listener).__name__,
                    event.kind,
                    type(exc).__name__,
                    error,
                    extra={
                        "listener": type(listener).__name__,
                        "error_type": type(exc).__name__,
                        "error": error,
                        "event": event.kind,
                    },
                )
