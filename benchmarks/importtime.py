"""Import cost of resilient_routing in fresh interpreters, and what importing it pulls in."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from time import perf_counter_ns

from .harness import ROOT

TARGET = "import resilient_routing"
BASELINE = "import wrapt, tenacity"
EMPTY = "pass"

_MODULES = "import sys; {stmt}; print(__import__('json').dumps(sorted(sys.modules)))"
#: The import statement alone, timed inside an interpreter that already imported wrapt and
#: tenacity: what it costs on top of them, without interpreter start-up and tear-down noise.
_ON_TOP = (
    "import wrapt, tenacity; from time import perf_counter_ns as t; s = t(); "
    "import resilient_routing; print(t() - s)"
)


def _env() -> dict[str, str]:
    # The checkout under test comes first, as it does for the in-process benchmarks.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # An installed package has its bytecode compiled; with PYTHONDONTWRITEBYTECODE set (as in
    # some sandboxes and CI images) every run would compile the checkout from source instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def _wall_ns(statement: str) -> int:
    start = perf_counter_ns()
    _run("-c", statement)
    return perf_counter_ns() - start


def _modules(statement: str) -> set[str]:
    return set(json.loads(_run("-c", _MODULES.format(stmt=statement)).stdout))


def _own_import_us() -> dict[str, int]:
    """Return the self time (µs) of each resilient_routing module, from ``-X importtime``."""
    own: dict[str, int] = {}
    for line in _run("-X", "importtime", "-c", TARGET).stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        name = fields[2].strip()
        if name == "resilient_routing" or name.startswith("resilient_routing."):
            own[name] = int(fields[0])
    return own


@dataclass
class ImportCost:
    """Wall times (ns) of fresh interpreters running each statement, one sample per run."""

    wall: dict[str, list[int]] = field(default_factory=dict)
    own_us: list[dict[str, int]] = field(default_factory=list)  # per run, per module
    on_top_ns: list[int] = field(default_factory=list)  # the import statement alone, per run
    extra_modules: list[str] = field(default_factory=list)
    redis_imported: bool = False

    def median_ms(self, statement: str) -> float:
        return statistics.median(self.wall[statement]) / 1e6

    def own_ms(self) -> float:
        """The median over runs of the summed self time of resilient_routing's modules."""
        return statistics.median(sum(run.values()) for run in self.own_us) / 1000

    def slowest_own(self, count: int = 3) -> list[tuple[str, float]]:
        """Return the ``count`` own modules with the largest median self time (ms)."""
        names = {name for run in self.own_us for name in run}
        medians = {n: statistics.median(run.get(n, 0) for run in self.own_us) for n in names}
        ranked = sorted(medians.items(), key=lambda item: -item[1])[:count]
        return [(name, us / 1000) for name, us in ranked]

    @property
    def extra_ms(self) -> float:
        """Fresh-interpreter wall time of ``import resilient_routing`` beyond wrapt+tenacity.

        Start-up and tear-down (freeing every module at exit) are in both terms.
        """
        return self.median_ms(TARGET) - self.median_ms(BASELINE)

    @property
    def on_top_ms(self) -> float:
        """The median time of ``import resilient_routing`` once wrapt and tenacity are loaded."""
        return statistics.median(self.on_top_ns) / 1e6


def measure(runs: int) -> ImportCost:
    """Time each statement ``runs`` times, interleaved, after one unrecorded warm-up each."""
    statements = (EMPTY, BASELINE, TARGET)
    for statement in statements:
        _run("-c", statement)  # warm the bytecode cache and the page cache
    cost = ImportCost(wall={s: [] for s in statements})
    for _ in range(runs):
        for statement in statements:
            cost.wall[statement].append(_wall_ns(statement))
        cost.own_us.append(_own_import_us())
        cost.on_top_ns.append(int(_run("-c", _ON_TOP).stdout))
    loaded = _modules(TARGET)
    extra = loaded - _modules(BASELINE)
    cost.extra_modules = sorted(
        m for m in extra if m != "resilient_routing" and not m.startswith("resilient_routing.")
    )
    cost.redis_imported = any(m == "redis" or m.startswith("redis.") for m in loaded)
    return cost
