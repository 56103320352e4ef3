"""The simulator's output: a comparison table, JSON, and a PNG timeline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .run import ConfigResult
from .scenario import Scenario

__all__ = ["as_json", "plot", "table"]


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
        "outages": [
            {
                "provider": o.provider,
                "start_s": o.start,
                "end_s": o.end,
                "kind": o.kind,
                "failure_rate": o.failure_rate,
            }
            for o in scenario.outages
        ],
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


def _outage_cell(config: dict[str, Any], key: str) -> str:
    if key not in config["route_around_s"]:
        return "-"  # this configuration does not route over that provider
    return _fmt(config["route_around_s"][key], "s") + " / " + _fmt(config["come_back_s"][key], "s")


def _render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [_line(header, widths), "  ".join("-" * w for w in widths)]
    lines.extend(_line(row, widths) for row in rows)
    return "\n".join(lines)


def table(scenario: Scenario, results: Sequence[ConfigResult]) -> str:
    """Return the human-readable comparison of the configurations."""
    report = as_json(scenario, results)
    configs = report["configs"]
    out = [
        f"scenario: {scenario.name} ({scenario.source}), seed {scenario.seed}, "
        f"{scenario.duration / 60:g} min at {scenario.rate:g} req/s",
        "",
        _render(
            ["config", "success", "failed", "p50", "p95", "p99", "attempts/call", "wasted"],
            [
                [
                    c["name"],
                    f"{c['success_rate'] * 100:.2f}%" if c["success_rate"] is not None else "-",
                    str(c["failed_calls"]),
                    _fmt(c["latency_p50"], "s"),
                    _fmt(c["latency_p95"], "s"),
                    _fmt(c["latency_p99"], "s"),
                    _fmt(c["attempts_per_call"]),
                    str(c["wasted_attempts"]),
                ]
                for c in configs
            ],
        ),
        "",
        "share of calls served, per provider (the last one is the terminus):",
        _render(
            ["config", *report["providers"]],
            [
                [c["name"], *(f"{c['provider_share'][p] * 100:.1f}%" for p in report["providers"])]
                for c in configs
            ],
        ),
    ]
    if scenario.outages:
        # A configuration may route over a subset of the providers: the union of its outages.
        keys = list(dict.fromkeys(k for c in configs for k in c["route_around_s"]))
        out += [
            "",
            "outages: time to route around (first cooldown) / to come back (first success after)",
            _render(
                ["config", *keys],
                [
                    [
                        c["name"],
                        *(_outage_cell(c, k) for k in keys),
                    ]
                    for c in configs
                ],
            ),
        ]
    return "\n".join(out)


def plot(scenario: Scenario, results: Sequence[ConfigResult], path: str | Path) -> None:
    """Draw, per configuration, success rate and provider share over time, outages shaded.

    Raises:
        ImportError: matplotlib is not installed (the ``[cli]`` extra brings it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(results), 1, figsize=(11, 2.6 * len(results)), sharex=True, squeeze=False
    )
    for ax, result in zip(axes[:, 0], results, strict=True):
        series = result.timeline
        minutes = series["minute"]
        shares = [k for k in series if k.startswith("share:")]
        ax.stackplot(
            minutes,
            *[[0.0 if math.isnan(v) else v for v in series[k]] for k in shares],
            labels=[k.removeprefix("share:") for k in shares],
            alpha=0.45,
        )
        ax.plot(minutes, series["success_rate"], color="black", linewidth=1.4, label="success rate")
        for outage in scenario.outages:
            ax.axvspan(outage.start / 60, outage.end / 60, color="red", alpha=0.12)
            ax.text(outage.start / 60, 1.02, f"{outage.provider} {outage.kind}", fontsize=7)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("share")
        ax.set_title(f"{result.name} ({result.strategy})", fontsize=10, loc="left")
    axes[-1, 0].set_xlabel("minutes")
    axes[0, 0].legend(loc="lower left", fontsize=7, ncol=len(scenario.providers) + 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
