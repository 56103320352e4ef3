"""A listener that keeps every routing event, for assertions in tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resilient_routing.events import RoutingEvent

__all__ = ["EventRecorder"]


class EventRecorder(list["RoutingEvent"]):
    """A routing listener that is the list of the events it received, in order.

    Pass it as ``listeners=[recorder]`` (or to ``configure(listeners=...)``); appending is
    thread-safe. Example::

        recorder = EventRecorder()
        generate = routed(providers=["a", "b"], listeners=[recorder])(call)
        generate("a cat")
        assert recorder.kinds()[:2] == [("call_started", None), ("attempt_started", "a")]
    """

    def on_event(self, event: RoutingEvent) -> None:
        """Keep ``event``."""
        self.append(event)

    def kinds(self) -> list[tuple[str, str | None]]:
        """Return ``(kind, provider)`` of each event, in order."""
        return [(event.kind, event.provider) for event in self]

    def of(self, kind: str) -> list[Any]:
        """Return the events of one kind (``"attempt_failed"``...), in order."""
        return [event for event in self if event.kind == kind]

    def last(self, kind: str) -> Any:
        """Return the last event of one kind.

        Raises:
            LookupError: there is none (the message lists the kinds received).
        """
        for event in reversed(self):
            if event.kind == kind:
                return event
        seen = sorted({event.kind for event in self})
        raise LookupError(f"no {kind!r} event among the {len(self)} received (kinds: {seen})")
