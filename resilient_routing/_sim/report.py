"""The simulator's output: a comparison table and JSON (the plot is in :mod:`.plot`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .collect import ConfigResult
from .scenario import OutageSpec, Scenario

__all__ = ["as_json", "table"]


def _outage(o: OutageSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "provider": o.provider,
        "start_s": o.start,
        "end_s": o.end,
        "kind": o.kind,
        "failure_rate": o.failure_rate,
    }
    if o.kind == "slow":
        out["added_latency_s"] = o.added_latency
    if o.kind in ("cut", "stall"):
        out["after_items"] = o.after_items
    return out


def as_json(scenario: Scenario, results: Sequence[ConfigResult]) -> dict[str, Any]:
    """Return the machine-readable report (what ``--json`` prints)."""
    names = tuple(p.name for p in scenario.providers)
    return {
        "scenario": scenario.name,
        "source": scenario.source,
        "seed": scenario.seed,
        "duration_s": scenario.duration,
        "rate_per_s": scenario.rate,
        "providers": list(names),
        "outages": [_outage(o) for o in scenario.outages],
        "configs": [r.summary(names) for r in results],
    }


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "never"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}{unit}" if unit else f"{value:.3g}"
    return f"{value}{unit}"


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    # The first column (names) reads left-aligned, the figures right-aligned.
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def _render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [_line(header, widths), "  ".join("-" * w for w in widths)]
    lines.extend(_line(row, widths) for row in rows)
    return "\n".join(lines)


def _main(configs: list[dict[str, Any]]) -> list[str]:
    probes = any(c["probes"]["started"] for c in configs)
    slow = any(c["slow_calls"]["seen"] for c in configs)
    header = ["config", "success", "failed", "p50", "p95", "p99", "attempts/call", "wasted"]
    header += ["probes"] * probes + ["slow calls"] * slow
    rows = []
    for c in configs:
        row = [
            c["name"],
            f"{c['success_rate'] * 100:.2f}%" if c["success_rate"] is not None else "-",
            str(c["failed_calls"]),
            _fmt(c["latency_p50"], "s"),
            _fmt(c["latency_p95"], "s"),
            _fmt(c["latency_p99"], "s"),
            _fmt(c["attempts_per_call"]),
            str(c["wasted_attempts"]),
        ]
        row += [str(c["probes"]["started"])] * probes + [str(c["slow_calls"]["seen"])] * slow
        rows.append(row)
    out = [_render(header, rows)]
    if any(c["stream"] for c in configs):
        out.append(
            "(latency: of every call, to its answer or its failure; for a streaming config, to "
            "the end of its stream; wasted: attempts that failed)"
        )
    return out


def _share(report: dict[str, Any], configs: list[dict[str, Any]]) -> list[str]:
    names = report["providers"]

    def cell(c: dict[str, Any], p: str) -> str:
        share = f"{c['provider_share'][p] * 100:.1f}%"
        lat = c["provider_latency"][p]
        if lat["p50"] is None:
            return share
        return f"{share} {_fmt(lat['p50'])}/{_fmt(lat['p95'], 's')}"

    return [
        "",
        "share of calls served per provider, and the p50/p95 latency of its answers",
        "(of its first items for a stream; the last provider is the terminus):",
        _render(["config", *names], [[c["name"], *(cell(c, p) for p in names)] for c in configs]),
    ]


def _streams(configs: list[dict[str, Any]]) -> list[str]:
    streaming = [c for c in configs if c["stream"]]
    if not streaming:
        return []
    return [
        "",
        "streams: time to first item (from the call's start), and how the streams ended",
        _render(
            ["config", "ttfi p50", "p95", "p99", "completed", "failed mid-stream", "no first item"],
            [
                [
                    c["name"],
                    _fmt(c["ttfi_p50"], "s"),
                    _fmt(c["ttfi_p95"], "s"),
                    _fmt(c["ttfi_p99"], "s"),
                    str(c["streams"]["completed"]),
                    str(c["streams"]["failed_mid_stream"]),
                    str(c["streams"]["failed_before_first_item"]),
                ]
                for c in streaming
            ],
        ),
    ]


def _outages(configs: list[dict[str, Any]]) -> list[str]:
    # A configuration may route over a subset of the providers: the union of its outages.
    keys = list(dict.fromkeys(k for c in configs for k in c["route_around_s"]))

    def timing(c: dict[str, Any], key: str) -> str:
        if key not in c["route_around_s"]:
            return "-"  # this configuration does not route over that provider
        return _fmt(c["route_around_s"][key], "s") + " / " + _fmt(c["come_back_s"][key], "s")

    def during(c: dict[str, Any], key: str) -> str:
        figures = c["during_outages"].get(key)
        if figures is None:
            return "-"
        return f"{figures['attempts']} / {figures['recoveries']} / {figures['largest_recovery']}"

    return [
        "",
        "outages: time to route around (first cooldown) / to come back (first success after)",
        _render(["config", *keys], [[c["name"], *(timing(c, k) for k in keys)] for c in configs]),
        "",
        "during each outage: attempts sent to its provider / recoveries (a cooldown ended, calls",
        "went back) / the most attempts of one recovery (half_open keeps it at 1: one probe)",
        _render(["config", *keys], [[c["name"], *(during(c, k) for k in keys)] for c in configs]),
    ]


def table(scenario: Scenario, results: Sequence[ConfigResult]) -> str:
    """Return the human-readable comparison of the configurations."""
    report = as_json(scenario, results)
    configs = report["configs"]
    out = [
        f"scenario: {scenario.name} ({scenario.source}), seed {scenario.seed}, "
        f"{scenario.duration / 60:g} min at {scenario.rate:g} req/s",
        "",
        *_main(configs),
        *_share(report, configs),
        *_streams(configs),
    ]
    if scenario.outages:
        out += _outages(configs)
    return "\n".join(out)
