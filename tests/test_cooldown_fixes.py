"""Regression tests of the Redis listener's internals that no end-to-end test can time."""

from __future__ import annotations

import logging
import time

from resilient_routing.cooldown._breaker import Breaker
from resilient_routing.cooldown._redis.client import UNREACHABLE, ServerClock
from resilient_routing.cooldown._redis.listener import ListenerBase, _Health
from resilient_routing.cooldown._redis.scripts import Keys
from resilient_routing.cooldown._redis.view import View


def _listener(breaker: Breaker) -> ListenerBase:
    return ListenerBase(None, None, View(), breaker, Keys("p"), ServerClock(None), 5.0)


def test_an_event_before_the_pong_leaves_the_ping_to_close_the_breaker() -> None:
    """Pub/sub replies come in order: an event published before the PING may precede its pong."""
    breaker = Breaker(0.0, logging.getLogger("test"), "t", UNREACHABLE)
    listener = _listener(breaker)
    breaker.failed(ConnectionError("lost"))
    health = _Health(5.0)
    assert health.due(time.monotonic(), breaker) == "ping"
    event = {"type": "message", "data": b"C|1|1000|a"}
    assert listener.heard(event, health, time.monotonic()) is False
    assert breaker.down
    listener.heard({"type": "pong", "data": b""}, health, time.monotonic())
    assert not breaker.down
