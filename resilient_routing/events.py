"""Routing events, for listeners: ``configure(listeners=[...])`` or ``routed(listeners=[...])``.

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

from ._events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    CallFinished,
    CallStarted,
    CooldownStarted,
    Listener,
    ProviderSkipped,
    RoutingEvent,
    RoutingExhausted,
    TerminusUsed,
)

__all__ = [
    "AttemptFailed",
    "AttemptStarted",
    "AttemptSucceeded",
    "CallFinished",
    "CallStarted",
    "CooldownStarted",
    "Listener",
    "ProviderSkipped",
    "RoutingEvent",
    "RoutingExhausted",
    "TerminusUsed",
]
