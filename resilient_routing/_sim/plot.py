"""The simulator's timelines: per configuration, who served and how fast, outages hatched."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .collect import ConfigResult
from .scenario import OutageSpec, Scenario

__all__ = ["hatches", "label_lanes", "plot", "provider_colours"]

#: Provider colours: tab10 and then tab20's light shades, without their greys, which are the
#: outages' (a provider's band must never look like an outage).
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#dbdb8d", "#9edae5",
)  # fmt: skip
#: Outages are hatched in this neutral grey, over whatever is drawn below.
OUTAGE_GREY = "#4d4d4d"
_HATCHES = ("//", "\\\\", "xx", "..", "++", "||", "--", "oo", "**", "OO")
#: Outages whose labels start closer than this share of the timeline go to separate lanes.
_LABEL_GAP = 0.06


def provider_colours(names: Sequence[str]) -> dict[str, str]:
    """Return a distinct colour per provider (repeating only past 18 providers)."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def hatches(count: int) -> list[str]:
    """Return a hatch pattern per outage; past the ten patterns, denser versions of them."""
    return [_HATCHES[i % len(_HATCHES)] * (1 + i // len(_HATCHES)) for i in range(count)]


def label_lanes(outages: Sequence[OutageSpec], duration: float) -> list[int]:
    """Return the lane of each outage's label, so that no two labels overlap.

    Labels sit at their outage's start; one starting within ``_LABEL_GAP`` of the timeline
    after the last label of a lane goes to the next lane with room.
    """
    lanes = [0] * len(outages)
    ends: list[float] = []  # per lane, where its last label ends
    for i in sorted(range(len(outages)), key=lambda k: (outages[k].start, k)):
        start = outages[i].start
        lane = next((n for n, end in enumerate(ends) if start >= end), len(ends))
        if lane == len(ends):
            ends.append(0.0)
        ends[lane] = start + _LABEL_GAP * duration
        lanes[i] = lane
    return lanes


def _outage_label(n: int, outage: OutageSpec) -> str:
    text = f"{n}  {outage.provider} {outage.kind}, {outage.start / 60:g}-{outage.end / 60:g} min"
    if outage.kind == "slow":
        text += f" (+{outage.added_latency:g} s)"
    if outage.failure_rate < 1:
        text += f", {outage.failure_rate:.0%} of calls"
    return text


def _shade(ax: Any, scenario: Scenario, patterns: list[str], lanes: list[int] | None) -> None:
    for n, (outage, hatch) in enumerate(zip(scenario.outages, patterns, strict=True), 1):
        ax.axvspan(
            outage.start / 60,
            outage.end / 60,
            facecolor="none",
            edgecolor=OUTAGE_GREY,
            hatch=hatch,
            linewidth=0.0,
            zorder=3,
        )
        if lanes is not None:
            ax.text(
                outage.start / 60,
                0.97 - 0.16 * lanes[n - 1],
                f" {n} ",
                transform=ax.get_xaxis_transform(),
                fontsize=7,
                va="top",
                zorder=4,
                bbox={"facecolor": "white", "edgecolor": OUTAGE_GREY, "pad": 1.0},
            )


def plot(scenario: Scenario, results: Sequence[ConfigResult], path: str | Path) -> None:
    """Draw per configuration: provider share and success rate, and latency per minute.

    The left panel stacks the share of calls each provider served (one colour per provider)
    under the success rate; the right one draws the p50 and p95 latency per minute (time to
    first item for a streaming configuration) on a log scale. Outages are hatched in grey and
    numbered, their legend above.

    Raises:
        ImportError: matplotlib is not installed (the ``[plot]`` extra brings it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    names = [p.name for p in scenario.providers]
    colours = provider_colours(names)
    patterns = hatches(len(scenario.outages))
    lanes = label_lanes(scenario.outages, scenario.duration)
    rows = len(results)
    legend_space = 0.45 + 0.17 * math.ceil(max(len(names) + 1, len(scenario.outages)) / 3)
    height = 2.4 * rows + legend_space
    fig, axes = plt.subplots(
        rows,
        2,
        figsize=(13, height),
        sharex=True,
        squeeze=False,
        gridspec_kw={"width_ratios": (3, 2)},
    )
    for (share_ax, latency_ax), result in zip(axes, results, strict=True):
        series = result.timeline
        minutes = series["minute"]
        shares = [k.removeprefix("share:") for k in series if k.startswith("share:")]
        share_ax.stackplot(
            minutes,
            *[[0.0 if math.isnan(v) else v for v in series[f"share:{p}"]] for p in shares],
            colors=[colours[p] for p in shares],
            alpha=0.55,
        )
        share_ax.plot(minutes, series["success_rate"], color="black", linewidth=1.3)
        _shade(share_ax, scenario, patterns, lanes)
        share_ax.set_ylim(0, 1.05)
        share_ax.set_ylabel("share")
        share_ax.set_title(f"{result.name} ({result.strategy})", fontsize=10, loc="left")

        latency_ax.plot(minutes, series["latency_p50"], color="black", linewidth=1.1)
        latency_ax.plot(minutes, series["latency_p95"], color="black", linestyle="--", lw=1.0)
        _shade(latency_ax, scenario, patterns, None)
        latency_ax.set_ylabel("seconds")
        what = "time to first item" if result.stream else "latency"
        latency_ax.set_title(f"{what} per minute: p50, p95", fontsize=9, loc="left")
    # One latency scale for every configuration, so that the panels compare at a glance.
    seen = [
        v
        for r in results
        for k in ("latency_p50", "latency_p95")
        for v in r.timeline[k]
        if not math.isnan(v) and v > 0
    ]
    if seen:
        for latency_ax in axes[:, 1]:
            latency_ax.set_yscale("log")
            latency_ax.set_ylim(min(seen) / 1.3, max(seen) * 1.3)
            latency_ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            latency_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            latency_ax.yaxis.set_minor_formatter(NullFormatter())
    axes[-1, 0].set_xlabel("minutes")
    axes[-1, 1].set_xlabel("minutes")

    served = [Patch(facecolor=colours[p], alpha=0.55, label=p) for p in names]
    lines = [
        Line2D([], [], color="black", lw=1.3, label="success rate"),
        Line2D([], [], color="black", lw=1.1, label="p50"),
        Line2D([], [], color="black", ls="--", lw=1.0, label="p95"),
    ]
    top = 1 - legend_space / height
    fig.legend(
        handles=served + lines,
        loc="lower left",
        bbox_to_anchor=(0.01, top),
        ncol=3,
        fontsize=8,
        frameon=False,
        title="providers (share served)",
        title_fontsize=8,
    )
    if scenario.outages:
        fig.legend(
            handles=[
                Patch(facecolor="white", edgecolor=OUTAGE_GREY, hatch=h, label=_outage_label(n, o))
                for n, (o, h) in enumerate(zip(scenario.outages, patterns, strict=True), 1)
            ],
            loc="lower right",
            bbox_to_anchor=(0.99, top),
            ncol=math.ceil(len(scenario.outages) / 3),
            fontsize=8,
            frameon=False,
            title="outages",
            title_fontsize=8,
        )
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=100)
    plt.close(fig)
