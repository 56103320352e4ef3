"""Reading typed values out of a scenario's TOML tables, naming the file and key in every error.

A typo must never run a different experiment than the one written: unknown keys, keys that
the rest of their table makes meaningless, and values of the wrong kind all stop the run.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

__all__ = ["Reader", "ScenarioError"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ScenarioError(ValueError):
    """A scenario file is not what the simulator expects."""


class Reader:
    """Reads one TOML table; every error names the file, the key and what was expected.

    Args:
        source: the file, as errors name it.
        table: the table's keys and values.
        where: the table's path with a trailing dot (``"providers[0]."``), or ``""``.
    """

    def __init__(self, source: str, table: dict[str, Any], where: str) -> None:
        self.source = source
        self.table = table
        self.where = where
        self.used: set[str] = set()

    def fail(self, key: str, expected: str, value: object) -> ScenarioError:
        """Return the error of ``key``: what was expected, what was found."""
        return ScenarioError(
            f"{self.source}: {self.where}{key}: expected {expected}, got {value!r}"
        )

    def has(self, key: str) -> bool:
        """Whether the table gives ``key``."""
        return key in self.table

    def get(self, key: str, default: object = ...) -> Any:
        """Return the raw value of ``key`` (``default`` when absent; none: required)."""
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                # A misspelt required key is missing and unknown: say both at once.
                close = difflib.get_close_matches(key, set(self.table) - self.used, 1, 0.75)
                hint = f"; the table has {close[0]!r}, a typo?" if close else ""
                raise ScenarioError(f"{self.source}: {self.where}{key}: missing (required){hint}")
            return default
        return self.table[key]

    def refuse(self, key: str, why: str) -> None:
        """Fail if the table gives ``key``, which ``why`` says the rest of it does not use."""
        self.used.add(key)
        if key in self.table:
            raise ScenarioError(f"{self.source}: {self.where}{key}: {why}")

    def number(
        self,
        key: str,
        default: object = ...,
        *,
        low: float = 0.0,
        high: float = math.inf,
        open_low: bool = False,
    ) -> float:
        """Return the finite number ``key``, within the bounds."""
        value = self.get(key, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (
            ok
            and math.isfinite(value)
            and (value > low if open_low else value >= low)
            and value <= high
        ):
            return float(value)
        bound = f"> {low:g}" if open_low else f">= {low:g}"
        upper = "" if high == math.inf else f" and <= {high:g}"
        raise self.fail(key, f"a number {bound}{upper}", value)

    def seconds(self, key: str, default: object = ..., *, positive: bool = False) -> float:
        """Return the duration ``key``: a number of seconds or ``"90s"``, ``"10m"``, ``"1h"``."""
        value = self.get(key, default)
        seconds: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            match = _DURATION.match(value)
            if match:
                seconds = float(match.group(1)) * _UNITS[match.group(2)]
        if (
            seconds is not None
            and math.isfinite(seconds)
            and seconds >= 0
            and (seconds > 0 or not positive)
        ):
            return seconds
        bound = "> 0" if positive else ">= 0"
        raise self.fail(
            key, f'seconds: a finite number {bound} or a string such as "90s", "10m", "1h"', value
        )

    def optional_seconds(self, key: str) -> float | None:
        """Return the duration ``key`` (> 0), or None when the table does not give it."""
        if not self.has(key):
            self.used.add(key)
            return None
        return self.seconds(key, positive=True)

    def text(self, key: str, default: object = ..., choices: tuple[str, ...] = ()) -> str:
        """Return the non-empty string ``key``, one of ``choices`` when given."""
        value = self.get(key, default)
        if isinstance(value, str) and value and (not choices or value in choices):
            return value
        expected = "one of " + ", ".join(repr(c) for c in choices) if choices else "a string"
        raise self.fail(key, expected, value)

    def names(
        self, key: str, default: object = ..., choices: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        """Return the list of strings ``key``, each among ``choices`` when given."""
        value = self.get(key, default)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            bad = [v for v in value if choices and v not in choices]
            if not bad:
                return tuple(value)
            raise self.fail(key, "names among " + ", ".join(repr(c) for c in choices), bad[0])
        raise self.fail(key, "a list of names", value)

    def count(self, key: str, default: object = ..., *, low: int = 1) -> int:
        """Return the integer ``key``, at least ``low``."""
        value = self.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value >= low:
            return value
        raise self.fail(key, f"an integer >= {low}", value)

    def boolean(self, key: str, default: bool) -> bool:
        """Return the boolean ``key``."""
        value = self.get(key, default)
        if isinstance(value, bool):
            return value
        raise self.fail(key, "true or false", value)

    def tables(self, key: str) -> list[dict[str, Any]]:
        """Return the array of tables ``key`` (``[[key]]``), empty when absent."""
        value = self.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, f"an array of tables ([[{key}]])", value)
        return value

    def done(self) -> None:
        """Fail on the first key of the table that nothing read: a typo, or an unknown key."""
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ScenarioError(
                f"{self.source}: {self.where}{unknown[0]}: unknown key (expected one of "
                + ", ".join(sorted(self.used))
                + ")"
            )
