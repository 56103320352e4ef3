"""Benchmark resilient_routing against its floors and its peers, in one run.

Usage, from the repository root::

    python -m benchmarks.run                      # full run, markdown report on stdout
    python -m benchmarks.run --json bench.json    # also write the raw numbers
    python -m benchmarks.run --smoke              # every case a few times: CI, a few seconds

The report is informative only: the exit status is non-zero only when a case raises (or
measures something other than what it claims), never because of a time or a target.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cases as c
from . import contention, importtime, streams
from .harness import Load, Result, header, machine, measure, silenced


@dataclass(frozen=True)
class Settings:
    rounds: int
    batch_ms: float
    fixed_batch: int | None
    contention_rounds: int
    contention_ms: float
    import_runs: int


FULL = Settings(
    rounds=101,
    batch_ms=5,
    fixed_batch=None,
    contention_rounds=10,
    contention_ms=150,
    import_runs=15,
)
SMOKE = Settings(
    rounds=2, batch_ms=0, fixed_batch=3, contention_rounds=1, contention_ms=5, import_runs=1
)


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _ratio(r: float) -> str:
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


def _ns(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


class Report:
    """Reads ratios out of the results of the timed cases."""

    def __init__(self, results: dict[str, Result]) -> None:
        self.results = results

    def ratio(self, name: str, other: str) -> float | None:
        a, b = self.results.get(name), self.results.get(other)
        if a is None or b is None or not a.ok or not b.ok:
            return None
        return a.versus(b)

    def floors(self, kind: str) -> tuple[str, str]:
        return (c.ABARE, c.AWRAPT) if kind == "async" else (c.BARE, c.WRAPT)

    def notes(self, result: Result) -> str:
        case = result.case
        if case.skip is not None:
            return case.skip
        if result.error is not None:
            return f"RAISED {result.error}"
        parts = [case.note] if case.note else []
        for label, other in case.versus:
            r = self.ratio(case.name, other)
            if r is None:
                continue
            if case.section.startswith("peers"):
                faster = f"{r:.1f}x faster" if r >= 1 else f"{1 / r:.2f}x slower"
                parts.append(f"{label} {faster}")
            else:
                parts.append(f"{_ratio(r)} {label}")
        return "; ".join(parts)

    def table(self) -> list[str]:
        lines = [
            "| case | ns/call | x bare | x wrapt | notes |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        section = None
        for result in self.results.values():
            case = result.case
            if case.section != section:
                section = case.section
                lines.append(f"| **{section}** | | | | |")
            notes = self.notes(result).replace("|", "\\|")
            if not result.ok:
                shown = "—" if case.skip is not None else "error"
                lines.append(f"| {case.name} | {shown} | | | {notes} |")
                continue
            bare, wrapt_floor = self.floors(case.kind)
            x_bare, x_wrapt = self.ratio(case.name, bare), self.ratio(case.name, wrapt_floor)
            lines.append(
                f"| {case.name} | {_ns(result.median)} | "
                f"{_ratio(x_bare) if x_bare is not None else ''} | "
                f"{_ratio(x_wrapt) if x_wrapt is not None else ''} | {notes} |"
            )
        return lines


@dataclass(frozen=True)
class Target:
    label: str
    measured: str
    passed: bool | None  # None: not measured


def _target(label: str, value: float | None, ok: Callable[[float], bool], shown: str) -> Target:
    if value is None:
        return Target(label, "not measured", None)
    return Target(label, shown.format(value), ok(value))


def targets(report: Report, imports: importtime.ImportCost | None) -> list[Target]:
    r = report.ratio
    return [
        _target(
            "fallback happy path <= 1.0x wrapt pass-through",
            r(c.FALLBACK, c.WRAPT),
            lambda v: v <= 1.0,
            "{:.2f}x wrapt",
        ),
        _target(
            "fallback happy path >= 30x faster than tenacity.retry",
            r(c.TENACITY, c.FALLBACK),
            lambda v: v >= 30,
            "{:.1f}x faster",
        ),
        _target(
            "fallback path <= 3x the hand-written loop",
            r(c.FALLBACK_PATH, c.HANDWRITTEN_PATH),
            lambda v: v <= 3,
            "{:.2f}x the loop",
        ),
        _target(
            "fallback path >= 20x faster than tenacity recovering the same failure",
            r(c.TENACITY_PATH, c.FALLBACK_PATH),
            lambda v: v >= 20,
            "{:.1f}x faster",
        ),
        _target(
            "async happy path <= async wrapt pass-through",
            r(c.AFALLBACK, c.AWRAPT),
            lambda v: v <= 1.0,
            "{:.2f}x async wrapt",
        ),
        _target(
            "bound method <= 1.5x plain routed function",
            r(c.METHOD, c.FALLBACK),
            lambda v: v <= 1.5,
            "{:.2f}x plain",
        ),
        _target(
            "100 healthy providers within 1.2x of 3",
            r(c.scale_name(100, cooling=False), c.FALLBACK),
            lambda v: v <= 1.2,
            "{:.2f}x of 3",
        ),
        _target(
            "routed stream <= 1.5x the bare generator per item (sync)",
            r(streams.ROUTED_ITEMS, streams.BARE_ITEMS),
            lambda v: v <= 1.5,
            "{:.2f}x; decoding JSON chunks "
            + _shown(r(streams.ROUTED_CHUNKS, streams.BARE_CHUNKS)),
        ),
        _target(
            "routed stream <= 1.5x the bare generator per item (async)",
            r(streams.AROUTED_ITEMS, streams.ABARE_ITEMS),
            lambda v: v <= 1.5,
            "{:.2f}x; decoding JSON chunks "
            + _shown(r(streams.AROUTED_CHUNKS, streams.ABARE_CHUNKS)),
        ),
        _target(
            "import within 10 ms of wrapt+tenacity",
            imports.on_top_ms if imports is not None else None,
            lambda v: v <= 10,
            "{:+.1f} ms, the import statement once wrapt and tenacity are loaded; "
            + (
                f"fresh-interpreter wall time {imports.extra_ms:+.1f} ms"
                if imports is not None
                else ""
            ),
        ),
    ]


def _shown(ratio: float | None) -> str:
    return "not measured" if ratio is None else f"{ratio:.2f}x"


def contention_lines(result: contention.Contention, usable_cores: int) -> list[str]:
    rounds = len(result.samples[contention.BARE][1])
    lines = [
        f"Provider call: sha256 of 64 KiB, {result.work_ns / 1000:.1f} µs single-threaded "
        f"(hashlib releases the GIL); {usable_cores} usable cores. Calls/s summed over the "
        f"threads, best of {rounds} interleaved rounds (other processes only ever lower "
        "throughput); 'scaling' is over the same variant's 1-thread throughput.",
        "",
        "| threads | bare calls/s | routed calls/s | routed / bare | bare scaling "
        "| routed scaling | one-lock control scaling |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in contention.THREADS:
        bare, routed = result.best(contention.BARE, t), result.best(contention.ROUTED, t)
        scale = {v: result.scaling(v, t) for v in contention.VARIANTS}
        lines.append(
            f"| {t} | {bare:,.0f} | {routed:,.0f} | {routed / bare:.2f} | "
            f"{scale[contention.BARE]:.2f}x | {scale[contention.ROUTED]:.2f}x | "
            f"{scale[contention.LOCKED]:.2f}x |"
        )
    bare2, routed2, locked2 = (result.scaling(v, 2) for v in contention.VARIANTS)
    lines.append("")
    if bare2 < 1.5:
        lines.append(
            f"Caveat: the bare function itself scaled only {bare2:.2f}x with 2 threads (the "
            "machine was busy, or has one usable core), so this run cannot tell a lock held "
            "across the provider call from a busy machine; rerun on an idle machine."
        )
        return lines
    gained = (routed2 - 1) / (bare2 - 1)  # share of the bare function's parallel gain
    if gained >= 0.6:
        verdict = "provider calls overlap (no lock is held across them)"
    elif gained <= 0.25:
        verdict = "calls are serialised, like the one-lock control"
    else:
        verdict = "calls are partly serialised"
    lines.append(
        f"With 2 threads: bare {bare2:.2f}x, routed {routed2:.2f}x, one-lock control "
        f"{locked2:.2f}x: routed keeps {gained:.0%} of the bare function's gain; {verdict}."
    )
    return lines


def import_lines(cost: importtime.ImportCost) -> list[str]:
    extra = ", ".join(cost.extra_modules) or "none"
    slowest = ", ".join(f"{name} {ms:.1f} ms" for name, ms in cost.slowest_own())
    return [
        f"Fresh interpreter, wall time, median of {len(cost.wall[importtime.TARGET])} "
        "interleaved runs:",
        "",
        f"- `python -c 'pass'`: {cost.median_ms(importtime.EMPTY):.1f} ms",
        f"- `python -c '{importtime.BASELINE}'`: {cost.median_ms(importtime.BASELINE):.1f} ms",
        f"- `python -c '{importtime.TARGET}'`: {cost.median_ms(importtime.TARGET):.1f} ms "
        f"({cost.extra_ms:+.1f} ms over wrapt+tenacity, start-up and exit included)",
        f"- `import resilient_routing` alone, in an interpreter that imported wrapt and "
        f"tenacity: **{cost.on_top_ms:.1f} ms** (median)",
        f"- resilient_routing's own modules (`-X importtime` self time): {cost.own_ms():.1f} ms; "
        f"largest: {slowest}",
        f"- modules it imports beyond wrapt+tenacity: {extra}",
        f"- imports redis: {'YES' if cost.redis_imported else 'no'}",
    ]


def to_json(
    facts: dict[str, Any],
    settings: Settings,
    report: Report,
    cont: contention.Contention | None,
    imports: importtime.ImportCost | None,
    goals: list[Target],
) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, result in report.results.items():
        case = result.case
        bare, wrapt_floor = report.floors(case.kind)
        rows[name] = {
            "section": case.section,
            "kind": case.kind,
            "status": "skipped" if case.skip else "error" if result.error else "ok",
            "error": result.error or case.skip,
            "ns_per_call": result.median if result.ok else None,
            "x_bare": report.ratio(name, bare),
            "x_wrapt": report.ratio(name, wrapt_floor),
            "relative_iqr": result.spread() if result.ok else None,
            "batch": result.batch_size,
            "samples_ns_per_call": result.samples,
            "notes": report.notes(result),
        }
    return {
        "machine": facts,
        "settings": settings.__dict__,
        "cases": rows,
        "contention": None
        if cont is None
        else {
            "work_ns": cont.work_ns,
            "calls_per_second": {
                variant: {str(t): samples for t, samples in by_threads.items()}
                for variant, by_threads in cont.samples.items()
            },
        },
        "import": None
        if imports is None
        else {
            "wall_ns": imports.wall,
            "extra_ms": imports.extra_ms,
            "on_top_ns": imports.on_top_ns,
            "on_top_ms": imports.on_top_ms,
            "own_modules_us": imports.own_us,
            "extra_modules": imports.extra_modules,
            "redis_imported": imports.redis_imported,
        },
        "targets": [t.__dict__ for t in goals],
    }


def _load_line(busy: dict[str, float | None]) -> str:
    others, steal = busy["other_processes_cores"], busy["steal_cores"]
    line = f"Run took {busy['wall_s']:.0f} s"
    if others is None or steal is None:
        return line + "."
    line += (
        f"; meanwhile other processes used {others:.2f} cores on average and the hypervisor "
        f"stole {steal:.2f}."
    )
    if others + steal > 0.2:
        line += " The machine was busy: expect noisier numbers than on an idle one."
    return line


@dataclass
class Run:
    """Everything one run measured."""

    facts: dict[str, Any]
    report: Report
    contention: contention.Contention | None
    imports: importtime.ImportCost | None
    failures: list[str]


class _Skipped(Exception):
    """A part of the run left out on purpose."""


def measure_all(settings: Settings, seed: int, only: list[str] | None = None) -> Run:
    """Time the cases, then contention, then import; a part that raises is recorded.

    ``only``: time just the floors and the cases whose name contains one of these, and skip
    contention and import time (for quick comparisons while working on one path).
    """
    load = Load.start()
    facts = machine()
    failures: list[str] = []
    cont: contention.Contention | None = None
    imports: importtime.ImportCost | None = None
    loop = asyncio.new_event_loop()
    try:
        with silenced("resilient_routing"):
            cases = c.all_cases()
            if only:
                cases = [
                    case
                    for case in cases
                    if case.section == "floors" or any(part in case.name for part in only)
                ]
            results = measure(
                cases,
                loop,
                rounds=settings.rounds,
                batch_ns=int(settings.batch_ms * 1e6),
                fixed_batch=settings.fixed_batch,
                seed=seed,
                progress=_progress,
            )
            _progress("contention")
            try:
                if only:
                    raise _Skipped("not measured with --cases")
                cont = contention.measure(
                    rounds=settings.contention_rounds,
                    duration_ns=int(settings.contention_ms * 1e6),
                    seed=seed,
                )
            except _Skipped:
                pass
            except Exception as exc:
                failures.append(f"contention: {type(exc).__name__}: {exc}")
    finally:
        loop.close()
    _progress("import time")
    try:
        if only:
            raise _Skipped("not measured with --cases")
        imports = importtime.measure(settings.import_runs)
    except _Skipped:
        pass
    except Exception as exc:
        failures.append(f"import time: {type(exc).__name__}: {exc}")
    facts["load"] = load.summary()
    failures[:0] = [f"{name}: {r.error}" for name, r in results.items() if r.error is not None]
    return Run(facts, Report(results), cont, imports, failures)


def render(run: Run, settings: Settings, smoke: bool) -> str:
    """Return the markdown report."""
    out = [header(run.facts), _load_line(run.facts["load"]), ""]
    if smoke:
        out += ["SMOKE RUN: a few calls per case; the numbers below mean nothing.", ""]
    out += [
        f"Median ns per call over {settings.rounds} interleaved rounds (shuffled order, GC "
        "enabled, resilient_routing logger silenced). 'x bare', 'x wrapt' and the ratios in the "
        "notes are medians of per-round ratios; 'x bare' / 'x wrapt' use the sync or async "
        "floor of the row's kind.",
        "",
        *run.report.table(),
    ]
    spreads = [(r.spread(), name) for name, r in run.report.results.items() if r.ok]
    if spreads and not smoke:
        worst, worst_name = max(spreads)
        out += ["", f"Largest relative interquartile range: {worst:.1%} ({worst_name})."]
    out += ["", "## Contention", ""]
    if run.contention is None:
        out.append("not measured")
    else:
        out += contention_lines(run.contention, run.facts["usable_cores"])
    out += ["", "## Import", ""]
    out += import_lines(run.imports) if run.imports is not None else ["not measured"]
    out += ["", "## Targets (reported, never enforced)", ""]
    for goal in targets(run.report, run.imports):
        verdict = {True: "PASS", False: "FAIL", None: "N/A"}[goal.passed]
        out.append(f"- {verdict}: {goal.label} (measured: {goal.measured})")
    if run.failures:
        out += ["", "## Failures (exit status 1)", "", *(f"- {f}" for f in run.failures)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true", help="run every case a few times only")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the raw numbers here")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds (default {FULL.rounds})")
    parser.add_argument("--batch-ms", type=float, help=f"ms per batch (default {FULL.batch_ms})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the round order")
    parser.add_argument(
        "--cases",
        nargs="+",
        metavar="TEXT",
        help="time only the floors and the cases whose name contains TEXT (no contention, "
        "no import time)",
    )
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else FULL
    settings = dataclasses.replace(
        settings,
        rounds=args.rounds or settings.rounds,
        batch_ms=args.batch_ms or settings.batch_ms,
    )

    run = measure_all(settings, args.seed, args.cases)
    print(render(run, settings, args.smoke))
    if args.json is not None:
        goals = targets(run.report, run.imports)
        data = to_json(run.facts, settings, run.report, run.contention, run.imports, goals)
        data["failures"] = run.failures
        args.json.write_text(json.dumps(data, indent=2) + "\n")
        _progress(f"raw numbers written to {args.json}")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
