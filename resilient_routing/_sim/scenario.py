"""Outage scenarios for the simulator: the TOML format, read and checked.

Every error names the file, the key and what was expected, so a typo never runs a
different experiment than the one you wrote.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from resilient_routing.strategies._registry import available_strategies, strategy_factory

from . import latency
from .latency import Latency, Lognormal
from .reader import Reader, ScenarioError

__all__ = [
    "COUNTED_KINDS",
    "ERROR_KINDS",
    "OUTAGE_KINDS",
    "ConfigSpec",
    "OutageSpec",
    "ProviderSpec",
    "Scenario",
    "ScenarioError",
    "default_scenario",
    "load_scenario",
    "parse_scenario",
]

#: What a provider's background errors (``error_kind``) may be.
ERROR_KINDS = ("5xx", "429", "timeout")
#: What an outage does: fail calls (``ERROR_KINDS``), answer late (``slow``), cut streams
#: after some items (``cut``) or stall them (``stall``).
OUTAGE_KINDS = (*ERROR_KINDS, "slow", "cut", "stall")
#: The failures ``cooldown_on`` chooses among: a ``slow`` answer is one past ``slow_call``; a
#: stall ends as a ``timeout`` (the provider's, or the route's ``idle_timeout``).
COUNTED_KINDS = (*ERROR_KINDS, "slow", "cut")


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A simulated provider: latency distribution, background errors, and its streams."""

    name: str
    latency: Latency = field(default_factory=lambda: Lognormal(1.0, 2.0))
    error_rate: float = 0.0
    error_kind: str = "5xx"
    timeout: float = 10.0
    retry_after: float = 30.0
    items: int = 20
    item_interval: float = 0.05


@dataclass(frozen=True, slots=True)
class OutageSpec:
    """A window during which a provider fails, slows or breaks (a share of) its calls."""

    provider: str
    start: float
    end: float
    kind: str = "5xx"
    failure_rate: float = 1.0
    retry_after: float = 30.0
    added_latency: float = 0.0
    after_items: int | None = None  # cut / stall: None, a random point of each stream


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
    half_open: bool = False
    probe_timeout: float = 30.0
    exempt: tuple[str, ...] = ()
    cooldown_on: tuple[str, ...] = COUNTED_KINDS
    attempt_timeout: float | None = None
    max_attempts: int | None = None
    slow_call: float | None = None
    stream: bool = False
    first_item_timeout: float | None = None
    idle_timeout: float | None = None


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


def _provider(source: str, table: dict[str, Any], i: int) -> ProviderSpec:
    r = Reader(source, table, f"providers[{i}].")
    spec = ProviderSpec(
        name=r.text("name"),
        latency=latency.read(r),
        error_rate=r.number("error_rate", 0.0, high=1.0),
        error_kind=r.text("error_kind", "5xx", ERROR_KINDS),
        timeout=r.seconds("timeout", 10.0),
        retry_after=r.seconds("retry_after", 30.0),
        items=r.count("items", 20),
        item_interval=r.seconds("item_interval", 0.05),
    )
    r.done()
    return spec


def _outage(
    source: str, table: dict[str, Any], i: int, providers: dict[str, ProviderSpec]
) -> OutageSpec:
    r = Reader(source, table, f"outages[{i}].")
    name = r.text("provider", choices=tuple(providers))
    kind = r.text("kind", "5xx", OUTAGE_KINDS)
    if kind == "slow":
        added = r.seconds("added_latency", positive=True)
    else:
        r.refuse("added_latency", f"only for kind = 'slow' (this outage is {kind!r})")
        added = 0.0
    after: int | None = None
    if kind in ("cut", "stall"):
        if r.has("after_items"):
            after = r.count("after_items")
            items = providers[name].items
            if after > items:
                raise r.fail(
                    "after_items", f"at most the items per stream of {name!r} ({items})", after
                )
    else:
        r.refuse("after_items", f"only for kind = 'cut' or 'stall' (this outage is {kind!r})")
    if kind in ERROR_KINDS:
        retry_after = r.seconds("retry_after", 30.0)
    else:
        r.refuse("retry_after", f"only for the error kinds (this outage is {kind!r})")
        retry_after = 30.0
    spec = OutageSpec(
        provider=name,
        start=r.seconds("start"),
        end=r.seconds("end"),
        kind=kind,
        failure_rate=r.number("failure_rate", 1.0, high=1.0),
        retry_after=retry_after,
        added_latency=added,
        after_items=after,
    )
    if spec.end <= spec.start:
        raise r.fail("end", f"a time after start ({spec.start:g} s)", table.get("end"))
    r.done()
    return spec


def _config(
    source: str, table: dict[str, Any], i: int, names: tuple[str, ...], stream: bool
) -> ConfigSpec:
    r = Reader(source, table, f"configs[{i}].")
    options = r.get("strategy_options", {})
    if not isinstance(options, dict):
        raise r.fail("strategy_options", "a table of the strategy's options", options)
    track = r.boolean("track_cooldown", True)
    half_open = r.boolean("half_open", False)
    if half_open and not track:
        raise r.fail("half_open", "false when track_cooldown = false (no tracker, no probes)", True)
    if not track:  # what only a tracker reads would change nothing: a mistake to say so
        keys = ("failure_threshold", "cooldown", "max_cooldown", "growth", "exempt", "cooldown_on")
        for key in keys:
            r.refuse(key, "only with a tracker (track_cooldown = true)")
    if half_open:
        probe_timeout = r.seconds("probe_timeout", 30.0, positive=True)
    else:
        r.refuse("probe_timeout", "only with half_open = true")
        probe_timeout = 30.0
    stream = r.boolean("stream", stream)
    if stream:
        r.refuse(
            "attempt_timeout",
            "not for a streaming config: its attempt ends at the first item; use "
            "first_item_timeout (and idle_timeout between items)",
        )
        first_item_timeout = r.optional_seconds("first_item_timeout")
        idle_timeout = r.optional_seconds("idle_timeout")
    else:
        for key in ("first_item_timeout", "idle_timeout"):
            r.refuse(key, "only for a streaming config (stream = true)")
        first_item_timeout = idle_timeout = None
    max_attempts = r.get("max_attempts", None)
    spec = ConfigSpec(
        name=r.text("name"),
        strategy=r.text("strategy", "fallback", tuple(available_strategies())),
        strategy_options=dict(options),
        providers=r.names("providers", (), names),
        track_cooldown=track,
        failure_threshold=r.count("failure_threshold", 3),
        cooldown=r.seconds("cooldown", 30.0, positive=True),
        max_cooldown=r.seconds("max_cooldown", 300.0, positive=True),
        growth=r.number("growth", 2.0, low=1.0),
        half_open=half_open,
        probe_timeout=probe_timeout,
        exempt=r.names("exempt", (), names),
        cooldown_on=r.names("cooldown_on", COUNTED_KINDS, COUNTED_KINDS),
        attempt_timeout=None if stream else r.optional_seconds("attempt_timeout"),
        max_attempts=None if max_attempts is None else r.count("max_attempts"),
        slow_call=r.optional_seconds("slow_call"),
        stream=stream,
        first_item_timeout=first_item_timeout,
        idle_timeout=idle_timeout,
    )
    try:
        strategy = strategy_factory(spec.strategy)(**spec.strategy_options)
        check = getattr(strategy, "check_providers", None)
        if callable(check):  # e.g. a weight naming no provider of the config's
            check(list(spec.providers or names))
    except Exception as exc:  # the strategy's own words: a wrong type, an unknown name...
        raise r.fail(
            "strategy_options", f"options that {spec.strategy!r} takes ({exc})", options
        ) from exc
    if len(set(spec.providers)) != len(spec.providers):
        raise r.fail("providers", "each provider once", list(spec.providers))
    if spec.max_cooldown < spec.cooldown:
        raise r.fail("max_cooldown", f"seconds >= cooldown ({spec.cooldown:g})", spec.max_cooldown)
    r.done()
    return spec


def _unique_names(source: str, configs: tuple[ConfigSpec, ...]) -> None:
    seen: set[str] = set()
    for i, config in enumerate(configs):
        if config.name in seen:
            raise ScenarioError(
                f"{source}: configs[{i}].name: expected a name no other config has, "
                f"got {config.name!r}"
            )
        seen.add(config.name)


def parse_scenario(text: str, source: str) -> Scenario:
    """Read a scenario from TOML text; ``source`` names it in errors.

    Raises:
        ScenarioError: invalid TOML, or a key missing, unknown or of the wrong kind.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from exc
    r = Reader(source, data, "")
    seed = r.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise r.fail("seed", "an integer", seed)
    provider_tables = r.tables("providers")
    providers = tuple(_provider(source, t, i) for i, t in enumerate(provider_tables))
    if not providers:
        raise ScenarioError(f"{source}: providers: expected at least one [[providers]] table")
    names = tuple(p.name for p in providers)
    if len(set(names)) != len(names):
        raise ScenarioError(f"{source}: providers: expected unique names, got {list(names)}")
    by_name = {p.name: p for p in providers}
    outages = tuple(_outage(source, t, i, by_name) for i, t in enumerate(r.tables("outages")))
    stream = r.boolean("stream", False)
    configs = tuple(_config(source, t, i, names, stream) for i, t in enumerate(r.tables("configs")))
    if not configs:
        configs = (ConfigSpec(name="stream" if stream else "fallback", stream=stream),)
    _unique_names(source, configs)
    if not any(c.stream for c in configs):
        # Stream settings where nothing streams: the experiment is not the one written.
        for i, table in enumerate(provider_tables):
            for key in ("items", "item_interval"):
                if key in table:
                    raise ScenarioError(
                        f"{source}: providers[{i}].{key}: only used by streaming configs, and "
                        "none streams (stream = true at the top or in a [[configs]])"
                    )
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
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start}): not a scenario") from exc
    return parse_scenario(text, str(path))


def default_scenario() -> Scenario:
    """Return the built-in scenario (``resilient_routing/scenarios/default.toml``)."""
    text = (
        resources.files("resilient_routing")
        .joinpath("scenarios/default.toml")
        .read_text(encoding="utf-8")
    )
    return parse_scenario(text, "<built-in default scenario>")
