"""Log records keep their structured fields, for structlog and JSON formatters."""

from __future__ import annotations

import io
import json
import logging

import structlog

from resilient_routing import InMemoryCooldownTracker, routed
from resilient_routing.testing import FakeClock


class Down(Exception):
    pass


def test_structlog_renders_fields_as_keys(clock: FakeClock) -> None:
    """With structlog's ProcessorFormatter and ExtraAdder, every field becomes a JSON key."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    logger = logging.getLogger("test.structlog.routing")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=30, clock=clock)

    @routed(providers=["a", "b"], cooldown=tracker, logger=logger)
    def call(provider: str) -> str:
        if provider == "a":
            raise Down("503 from upstream")
        return provider

    call()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        "provider failed",
        "provider entering cooldown",
        "succeeded on fallback provider",
    ]
    failed, cooling, ok = lines
    assert failed["provider"] == "a" and failed["attempt"] == 1 and failed["is_terminus"] is False
    assert failed["error_type"] == "Down" and failed["error"] == "503 from upstream"
    assert failed["level"] == "warning"
    assert cooling["cooldown_remaining"] == 30
    assert ok["provider"] == "b" and ok["attempt"] == 2 and ok["latency"] >= 0
