"""Log records keep their structured fields, for structlog and JSON formatters."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import unittest.mock
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from resilient_routing import InMemoryCooldownTracker, routed
from resilient_routing._routing import report
from resilient_routing.strategies import available_strategies, get_strategy
from resilient_routing.strategies._protocol import capabilities
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


class _Lines(logging.Handler):
    """Keeps each record's message."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _listening(logger: logging.Logger) -> _Lines:
    lines = _Lines()
    logger.addHandler(lines)
    logger.propagate = False
    return lines


def _sometimes_failing() -> tuple[Callable[..., str], Callable[..., Awaitable[str]], list[bool]]:
    """A provider function (sync and async) whose first provider fails while ``down[0]``."""
    down = [False]

    def call(provider: str) -> str:
        if provider == "a" and down[0]:
            raise Down("503")
        return provider

    async def acall(provider: str) -> str:
        return call(provider)

    return call, acall, down


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_level_set_between_calls_holds_from_the_next_call(mode: str) -> None:
    """Calls ask the logger afresh: setLevel, logging.disable and ``disabled`` act at once.

    (Calls read the verdicts a Logger caches; each of these changes must still be seen.)
    """
    logger = logging.getLogger(f"test.levels.{mode}")
    lines = _listening(logger)
    logger.setLevel(logging.WARNING)
    call, acall, down = _sometimes_failing()
    fn = routed(providers=["a", "b"], cooldown=None, logger=logger)(call)
    afn = routed(providers=["a", "b"], cooldown=None, logger=logger)(acall)

    def run(times: int = 3) -> list[str]:
        del lines.lines[:]
        for _ in range(times):
            assert (fn() if mode == "sync" else asyncio.run(afn())) == ("b" if down[0] else "a")
        return lines.lines[:]

    assert run() == []  # WARNING: a success logs nothing
    logger.setLevel(logging.DEBUG)
    assert run(1) == ["attempting provider: 'a' (attempt 1 of 2)"]
    logging.disable(logging.DEBUG)
    try:
        assert run() == []
    finally:
        logging.disable(logging.NOTSET)
    assert run(1) == ["attempting provider: 'a' (attempt 1 of 2)"]
    logger.setLevel(logging.WARNING)
    down[0] = True
    failed = "provider failed: 'a' (attempt 1 of 2): Down: 503"
    assert run(1) == [failed]
    logger.disabled = True
    try:
        assert run() == []
    finally:
        logger.disabled = False
    assert run(1)[0] == failed
    logger.setLevel(logging.ERROR)
    assert run() == []


class _Switched(logging.Logger):
    """A logger that decides by a switch of its own, not by its level (nor logging's cache)."""

    verbose = False

    def isEnabledFor(self, level: int) -> bool:
        return self.verbose or super().isEnabledFor(level)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_logger_deciding_by_its_own_rule_is_asked_at_every_call(mode: str) -> None:
    """A Logger subclass overriding isEnabledFor() is asked, not read from logging's cache."""
    logger = _Switched(f"test.switched.{mode}", logging.WARNING)
    lines = _listening(logger)
    call, acall, _ = _sometimes_failing()
    fn = routed(providers=["a", "b"], cooldown=None, logger=logger)(call)
    afn = routed(providers=["a", "b"], cooldown=None, logger=logger)(acall)

    def run() -> list[str]:
        del lines.lines[:]
        assert (fn() if mode == "sync" else asyncio.run(afn())) == "a"
        return lines.lines[:]

    assert run() == []
    logger.verbose = True  # no level changes: logging's caches still say WARNING
    assert run() == ["attempting provider: 'a' (attempt 1 of 2)"]
    logger.verbose = False
    assert run() == []


ATTEMPTING = ["attempting provider: 'a' (attempt 1 of 2)"]


@pytest.mark.parametrize("where", ["instance", "logging.Logger"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_isenabledfor_patched_before_the_calls_is_asked(mode: str, where: str) -> None:
    """A logger whose isEnabledFor() is replaced is asked, not read from logging's cache."""
    logger = logging.getLogger(f"test.patched.{where}.{mode}")
    lines = _listening(logger)
    logger.setLevel(logging.ERROR)
    logger.isEnabledFor(logging.DEBUG)  # logging's cache now says: not at DEBUG
    call, acall, _ = _sometimes_failing()
    target = logger if where == "instance" else logging.Logger
    with unittest.mock.patch.object(target, "isEnabledFor", return_value=True):
        fn = routed(providers=["a", "b"], cooldown=None, logger=logger)(call)
        afn = routed(providers=["a", "b"], cooldown=None, logger=logger)(acall)
        assert (fn() if mode == "sync" else asyncio.run(afn())) == "a"
    assert lines.lines == ATTEMPTING


class _Counting(logging.Logger):
    """A logger that notes each level it is asked about (and so is never read from a cache)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, logging.WARNING)
        self.asked: list[int] = []

    def isEnabledFor(self, level: int) -> bool:
        self.asked.append(level)
        return super().isEnabledFor(level)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_call_asks_its_logger_once_per_level(mode: str) -> None:
    """A route without a fast lane (providers from a callable) asks nothing for the lane."""
    logger = _Counting(f"test.counting.{mode}")

    def call(provider: str) -> str:
        return provider

    async def acall(provider: str) -> str:
        return provider

    options: dict[str, Any] = {"providers": lambda: ["a", "b"], "cooldown": None, "logger": logger}
    fn = routed(**options)(call)
    afn = routed(**options)(acall)
    assert (fn() if mode == "sync" else asyncio.run(afn())) == "a"
    # The decision asks about its loudest record (WARNING), then the DEBUG one it would write.
    assert logger.asked == [logging.WARNING, logging.DEBUG]


def test_the_documented_log_lines_are_the_code_s() -> None:
    """docs/observability.md lists each line a routed call logs with its level, and no other."""
    table = (Path(__file__).parent.parent / "docs" / "observability.md").read_text()
    rows = re.findall(r"^\| [^|]+ \| `([^`]+)` \| ([A-Z]+) \|$", table, re.MULTILINE)
    lines = {v for k, v in vars(report).items() if k.isupper() and isinstance(v, tuple)}
    assert len(lines) == 8
    for name in available_strategies():  # a failed attempt's line is its strategy's
        lines.add(report.failure_line(capabilities(get_strategy(name))))
    # A value stands for each placeholder: a text without a colon (an error is `Type: text`).
    placeholders = {"%r": "'[^']+'", "%d": "[0-9]+", "%s": "[^:]*"}
    patterns = {}
    for level, message in lines:
        pattern = re.escape(message)
        for placeholder, value in placeholders.items():
            pattern = pattern.replace(placeholder, value)
        patterns[pattern, logging.getLevelName(level)] = message
    for (pattern, level), message in patterns.items():
        assert [m for m, lvl in rows if lvl == level and re.fullmatch(pattern, m)], message
    for shown, level in rows:
        assert [p for p, lvl in patterns if lvl == level and re.fullmatch(p, shown)], shown
