"""The health check of a listener's subscription: when to ping, and what a pong proves."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from resilient_routing.cooldown._breaker import Breaker

__all__ = ["Health"]


class Health:
    """Pings an idle subscription so that a hung server is noticed, not waited on forever."""

    __slots__ = ("heard", "interval", "ping_sent")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.heard = time.monotonic()
        self.ping_sent: float | None = None

    def heard_from_server(self, now: float, pong: bool) -> float | None:
        """Record that the server spoke; on a ``pong``, return when its ping was sent, if known.

        Only the pong answers the ping: an event that came first must not use it up, or the
        pong could no longer close the breaker.
        """
        self.heard = now
        if not pong:
            return None
        sent, self.ping_sent = self.ping_sent, None
        return sent

    def due(self, now: float, breaker: Breaker) -> Literal["ping", "probe"] | None:
        """Return what to send now: a PING, a probe script, or nothing.

        While the breaker is open the listener probes, once per interval: with a PING when
        the server could not be reached, with a script that writes when it refused requests
        (only that proves it takes them again).

        Raises:
            redis.exceptions.TimeoutError: the last PING got no answer in time.
        """
        if self.ping_sent is not None:
            if now - self.ping_sent > self.interval:
                raise RedisTimeoutError(f"no reply to PING within {self.interval:g} s")
            return None
        if breaker.down and breaker.allow():
            if breaker.needs_write:
                return "probe"
        elif now - self.heard < self.interval:
            return None
        self.ping_sent = now
        return "ping"
