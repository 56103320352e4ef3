"""Outage scenarios for the simulator: the TOML format, read and checked.

Every error names the file, the key and what was expected, so a typo never runs a
different experiment than the one you wrote.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from resilient_routing.strategies._registry import available_strategies, strategy_factory

__all__ = [
    "ConfigSpec",
    "OutageSpec",
    "ProviderSpec",
    "Scenario",
    "ScenarioError",
    "default_scenario",
    "load_scenario",
]

ERROR_KINDS = ("5xx", "429", "timeout")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ScenarioError(ValueError):
    """A scenario file is not what the simulator expects."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A simulated provider: latency distribution and background errors."""

    name: str
    latency_median: float
    latency_p95: float
    error_rate: float = 0.0
    error_kind: str = "5xx"
    timeout: float = 10.0
    retry_after: float = 30.0


@dataclass(frozen=True, slots=True)
class OutageSpec:
    """A window during which a provider fails (a share of) its calls with one kind of error."""

    provider: str
    start: float
    end: float
    kind: str = "5xx"
    failure_rate: float = 1.0
    retry_after: float = 30.0


@dataclass(frozen=True, slots=True)
class ConfigSpec:
    """One routing configuration to compare."""

    name: str
    strategy: str = "fallback"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    providers: tuple[str, ...] = ()
    track_cooldown: bool = True
    failure_threshold: int = 3
    cooldown: float = 30.0
    max_cooldown: float = 300.0
    growth: float = 2.0
    exempt: tuple[str, ...] = ()
    cooldown_on: tuple[str, ...] = ERROR_KINDS
    attempt_timeout: float | None = None
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """Providers, outages, traffic and the configurations to compare."""

    name: str
    seed: int
    duration: float
    rate: float
    providers: tuple[ProviderSpec, ...]
    outages: tuple[OutageSpec, ...]
    configs: tuple[ConfigSpec, ...]
    source: str = "<built-in>"


class _Reader:
    """Reads typed values out of a TOML table, naming the file and key in every error."""

    def __init__(self, source: str, table: dict[str, Any], where: str) -> None:
        self.source = source
        self.table = table
        self.where = where
        self.used: set[str] = set()

    def fail(self, key: str, expected: str, value: object) -> ScenarioError:
        return ScenarioError(
            f"{self.source}: {self.where}{key}: expected {expected}, got {value!r}"
        )

    def get(self, key: str, default: object = ...) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise ScenarioError(f"{self.source}: {self.where}{key}: missing (required)")
            return default
        return self.table[key]

    def number(
        self,
        key: str,
        default: object = ...,
        *,
        low: float = 0.0,
        high: float = math.inf,
        open_low: bool = False,
    ) -> float:
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

    def text(self, key: str, default: object = ..., choices: tuple[str, ...] = ()) -> str:
        value = self.get(key, default)
        if isinstance(value, str) and value and (not choices or value in choices):
            return value
        expected = "one of " + ", ".join(repr(c) for c in choices) if choices else "a string"
        raise self.fail(key, expected, value)

    def names(
        self, key: str, default: object = ..., choices: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        value = self.get(key, default)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            bad = [v for v in value if choices and v not in choices]
            if not bad:
                return tuple(value)
            raise self.fail(key, "names among " + ", ".join(repr(c) for c in choices), bad[0])
        raise self.fail(key, "a list of names", value)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ScenarioError(
                f"{self.source}: {self.where}{unknown[0]}: unknown key (expected one of "
                + ", ".join(sorted(self.used))
                + ")"
            )


def _tables(reader: _Reader, key: str) -> list[dict[str, Any]]:
    value = reader.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise reader.fail(key, f"an array of tables ([[{key}]])", value)
    return value


def _provider(source: str, table: dict[str, Any], i: int) -> ProviderSpec:
    r = _Reader(source, table, f"providers[{i}].")
    median = r.number("latency_median", open_low=True)
    spec = ProviderSpec(
        name=r.text("name"),
        latency_median=median,
        latency_p95=r.number("latency_p95", median * 2, low=median),
        error_rate=r.number("error_rate", 0.0, high=1.0),
        error_kind=r.text("error_kind", "5xx", ERROR_KINDS),
        timeout=r.seconds("timeout", 10.0),
        retry_after=r.seconds("retry_after", 30.0),
    )
    r.done()
    return spec


def _outage(source: str, table: dict[str, Any], i: int, names: tuple[str, ...]) -> OutageSpec:
    r = _Reader(source, table, f"outages[{i}].")
    spec = OutageSpec(
        provider=r.text("provider", choices=names),
        start=r.seconds("start"),
        end=r.seconds("end"),
        kind=r.text("kind", "5xx", ERROR_KINDS),
        failure_rate=r.number("failure_rate", 1.0, high=1.0),
        retry_after=r.seconds("retry_after", 30.0),
    )
    if spec.end <= spec.start:
        raise r.fail("end", f"a time after start ({spec.start:g} s)", table.get("end"))
    r.done()
    return spec


def _config(source: str, table: dict[str, Any], i: int, names: tuple[str, ...]) -> ConfigSpec:
    r = _Reader(source, table, f"configs[{i}].")
    options = r.get("strategy_options", {})
    if not isinstance(options, dict):
        raise r.fail("strategy_options", "a table of the strategy's options", options)
    threshold = _count(r, "failure_threshold", 3)
    attempt_timeout = r.get("attempt_timeout", None)
    max_attempts = r.get("max_attempts", None)
    spec = ConfigSpec(
        name=r.text("name"),
        strategy=r.text("strategy", "fallback", tuple(available_strategies())),
        strategy_options=dict(options),
        providers=r.names("providers", (), names),
        track_cooldown=_boolean(r, "track_cooldown", True),
        failure_threshold=threshold,
        cooldown=r.seconds("cooldown", 30.0, positive=True),
        max_cooldown=r.seconds("max_cooldown", 300.0, positive=True),
        growth=r.number("growth", 2.0, low=1.0),
        exempt=r.names("exempt", (), names),
        cooldown_on=r.names("cooldown_on", ERROR_KINDS, ERROR_KINDS),
        attempt_timeout=None
        if attempt_timeout is None
        else r.seconds("attempt_timeout", positive=True),
        max_attempts=None if max_attempts is None else _count(r, "max_attempts"),
    )
    try:
        strategy_factory(spec.strategy)(**spec.strategy_options)
    except (TypeError, ValueError) as exc:
        raise r.fail(
            "strategy_options", f"options that {spec.strategy!r} takes ({exc})", options
        ) from exc
    if len(set(spec.providers)) != len(spec.providers):
        raise r.fail("providers", "each provider once", list(spec.providers))
    if spec.max_cooldown < spec.cooldown:
        raise r.fail("max_cooldown", f"seconds >= cooldown ({spec.cooldown:g})", spec.max_cooldown)
    r.done()
    return spec


def _count(r: _Reader, key: str, default: object = ...) -> int:
    value = r.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise r.fail(key, "an integer >= 1", value)


def _boolean(r: _Reader, key: str, default: bool) -> bool:
    value = r.get(key, default)
    if isinstance(value, bool):
        return value
    raise r.fail(key, "true or false", value)


def parse_scenario(text: str, source: str) -> Scenario:
    """Read a scenario from TOML text; ``source`` names it in errors.

    Raises:
        ScenarioError: invalid TOML, or a key missing, unknown or of the wrong kind.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from exc
    r = _Reader(source, data, "")
    seed = r.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise r.fail("seed", "an integer", seed)
    providers = tuple(_provider(source, t, i) for i, t in enumerate(_tables(r, "providers")))
    if not providers:
        raise ScenarioError(f"{source}: providers: expected at least one [[providers]] table")
    names = tuple(p.name for p in providers)
    if len(set(names)) != len(names):
        raise ScenarioError(f"{source}: providers: expected unique names, got {list(names)}")
    outages = tuple(_outage(source, t, i, names) for i, t in enumerate(_tables(r, "outages")))
    configs = tuple(_config(source, t, i, names) for i, t in enumerate(_tables(r, "configs")))
    if not configs:
        configs = (ConfigSpec(name="fallback"),)
    seen: set[str] = set()
    for i, config in enumerate(configs):
        if config.name in seen:
            raise ScenarioError(
                f"{source}: configs[{i}].name: expected a name no other config has, "
                f"got {config.name!r}"
            )
        seen.add(config.name)
    scenario = Scenario(
        name=r.text("name", Path(source).stem),
        seed=seed,
        duration=r.seconds("duration", 3600.0, positive=True),
        rate=r.number("rate", 1.0, open_low=True),
        providers=providers,
        outages=outages,
        configs=configs,
        source=source,
    )
    for i, outage in enumerate(outages):
        if outage.start >= scenario.duration:
            raise ScenarioError(
                f"{source}: outages[{i}].start: expected a time before the end of the scenario "
                f"({scenario.duration:g} s), got {outage.start:g} s"
            )
    r.done()
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file.

    Raises:
        ScenarioError: the file cannot be read or is invalid.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario: {exc.strerror}") from exc
    return parse_scenario(text, str(path))


def default_scenario() -> Scenario:
    """Return the built-in scenario: three providers, one outage, one 429 burst, one hour."""
    text = (
        resources.files("resilient_routing")
        .joinpath("scenarios/default.toml")
        .read_text(encoding="utf-8")
    )
    return parse_scenario(text, "<built-in default scenario>")
