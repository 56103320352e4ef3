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
        "provider failed: 'a' (attempt 1 of 2): Down: 503 from upstream",
        "provider entering cooldown: 'a' for 30 s",
        "succeeded on fallback provider: 'b' (attempt 2)",
    ]
    failed, cooling, ok = lines
    assert failed["provider"] == "a" and failed["attempt"] == 1 and failed["is_terminus"] is False
    assert failed["error_type"] == "Down" and failed["error"] == "503 from upstream"
    assert failed["latency"] >= 0  # the failed attempt's seconds
    assert failed["level"] == "warning"
    assert cooling["cooldown_remaining"] == 30
    assert ok["provider"] == "b" and ok["attempt"] == 2 and ok["latency"] >= 0


def test_default_formatter_prints_the_facts(clock: FakeClock) -> None:
    """With logging's default format, each line names the provider, the attempt and the error."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.plain.routing")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    tracker = InMemoryCooldownTracker(failure_threshold=1, cooldown=12.5, clock=clock)

    @routed(providers=["openai", "anthropic", "gemini"], cooldown=tracker, logger=logger)
    def call(provider: str) -> str:
        if provider == "openai":
            raise Down("quota exhausted")
        return provider

    call()
    call()
    assert stream.getvalue().splitlines() == [
        "attempting provider: 'openai' (attempt 1 of 3)",
        "provider failed: 'openai' (attempt 1 of 3): Down: quota exhausted",
        "provider entering cooldown: 'openai' for 12.5 s",
        "attempting provider: 'anthropic' (attempt 2 of 3)",
        "succeeded on fallback provider: 'anthropic' (attempt 2)",
        "skipping provider in cooldown: 'openai' (12.5 s left)",
        "attempting provider: 'anthropic' (attempt 1 of 3)",
    ]


def test_a_huge_error_message_makes_a_bounded_line(clock: FakeClock) -> None:
    """A 1 MB exception message is cut, in the line and in its structured field."""
    stream = io.StringIO()
    logger = logging.getLogger("test.bounded.routing")
    logger.addHandler(logging.StreamHandler(stream))
    logger.propagate = False
    seen: list[logging.LogRecord] = []
    logger.addFilter(lambda record: seen.append(record) or True)

    @routed(providers=["a", "b"], cooldown=None, logger=logger)
    def call(provider: str) -> str:
        if provider == "a":
            raise Down("x" * 1_000_000)
        return provider

    call()
    line = stream.getvalue().splitlines()[0]
    assert line.startswith("provider failed: 'a' (attempt 1 of 2): Down: xxx")
    assert len(line) < 600 and line.endswith("...")
    assert len(seen[0].error) <= 500  # type: ignore[attr-defined]
