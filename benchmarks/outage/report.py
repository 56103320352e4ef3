"""The report: a markdown table, the JSON document, and the PNG timeline."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .scenarios import FAULT_KINDS, PROVIDERS, Settings


def _num(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _seconds(value: float | None, faulted: bool) -> str:
    if not faulted:
        return "-"
    return "never" if value is None else f"{value:.2f}"


def table(runs: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| scenario | contender | success | p50 ms | p95 ms | p99 ms | TTFT p50 / p95 ms "
        "| calls hitting the fault | divert s | back s | CPU ms/call |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        m = run["metrics"]
        lat, ttft = m["latency_ms"], m["ttft_ms"]
        fault = m["faults"][0] if m["faults"] else None
        first = f"{_num(ttft['p50'])} / {_num(ttft['p95'])}" if ttft else "-"
        success = "-" if m["success"] is None else f"{m['success'] * 100:.1f}%"
        lines.append(
            f"| {run['scenario']} | {run['contender']} | {success} "
            f"| {_num(lat['p50'])} | {_num(lat['p95'])} | {_num(lat['p99'])} | {first} "
            f"| {fault['hits'] if fault else '-'} "
            f"| {_seconds(fault and fault['divert_s'], fault is not None)} "
            f"| {_seconds(fault and fault['back_s'], fault is not None)} "
            f"| {_num(m['cpu_ms_per_call'], digits=2)} |"
        )
    return "\n".join(lines)


def preamble(settings: Settings, scenarios: dict[str, Any], machine: str) -> str:
    lines = [
        f"{len(PROVIDERS)} local OpenAI-compatible providers ({', '.join(PROVIDERS)}), "
        f"{settings.rate:g} calls/s for {settings.duration:g} s per run (open loop, at most "
        f"{settings.concurrency} in flight), {settings.processes} client process(es), "
        f"{settings.attempt_timeout:g} s timeout per provider call; {machine}.",
        "",
        "Scenarios:",
    ]
    lines += [f"- `{name}`: {s['description']}" for name, s in scenarios.items()]
    kinds = sorted({f["kind"] for s in scenarios.values() for f in s["faults"]})
    if kinds:
        lines += ["", "Faults:"]
        lines += [f"- `{kind}`: {FAULT_KINDS[kind]}" for kind in kinds]
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=1) + "\n")


_COLORS = {"primary": "tab:blue", "secondary": "tab:orange", "tertiary": "tab:green"}
# Wider lines under narrower ones: providers receiving the same rate stay visible.
_WIDTHS = {"primary": 3.2, "secondary": 1.8, "tertiary": 1.0}
_SHADES = {
    "down": "0.55",
    "500": "tab:red",
    "429": "tab:purple",
    "slow": "gold",
    "hang": "tab:brown",
    "cut": "tab:pink",
}


def plot(path: Path, runs: Sequence[dict[str, Any]]) -> None:
    """Requests per provider over time, one panel per scenario (rows) and contender (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(r["scenario"] for r in runs))
    contenders = list(dict.fromkeys(r["contender"] for r in runs))
    by_key = {(r["scenario"], r["contender"]): r for r in runs}
    top = max(
        (max(v) for r in runs for v in r["metrics"]["timeline"]["requests_per_s"].values() if v),
        default=1.0,
    )
    fig, axes = plt.subplots(
        len(scenarios),
        len(contenders),
        figsize=(5.2 * len(contenders), 2.1 * len(scenarios) + 0.8),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for row, scenario in enumerate(scenarios):
        for col, contender in enumerate(contenders):
            ax = axes[row][col]
            run = by_key.get((scenario, contender))
            if run is None:
                ax.set_visible(False)
                continue
            m = run["metrics"]
            timeline = m["timeline"]
            step = timeline["bin_s"]
            for fault in m["faults"]:
                ax.axvspan(
                    fault["start"],
                    fault["end"],
                    color=_SHADES.get(fault["kind"], "0.8"),
                    alpha=0.18,
                    lw=0,
                )
            for name, values in timeline["requests_per_s"].items():
                xs = [i * step for i in range(len(values))]
                ax.step(
                    xs,
                    values,
                    where="post",
                    color=_COLORS.get(name),
                    lw=_WIDTHS.get(name, 1.0),
                    alpha=0.85,
                    label=name,
                )
            failed = timeline["failed_calls_per_s"]
            ax.step(
                [i * step for i in range(len(failed))],
                failed,
                where="post",
                color="black",
                lw=1.0,
                ls="--",
                label="failed calls",
            )
            success = "-" if m["success"] is None else f"{m['success'] * 100:.1f}%"
            ax.set_title(f"{scenario} / {contender}: {success} ok", fontsize=9)
            ax.set_ylim(0, top * 1.1)
            ax.grid(alpha=0.25)
            if col == 0:
                ax.set_ylabel("requests/s")
            if row == len(scenarios) - 1:
                ax.set_xlabel("seconds")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
    fig.text(
        0.5,
        0.005,
        "requests each provider received (server side); shaded: the primary's fault window",
        ha="center",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.015, 1, 1 - 0.5 / fig.get_figheight()))
    fig.savefig(path, dpi=90)
    plt.close(fig)
