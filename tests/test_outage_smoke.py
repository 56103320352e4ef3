"""The outage benchmark runs end to end (``--quick``); it asserts nothing about time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENDERS = ("resilient_routing", "litellm", "tenacity")


def test_outage_benchmark_quick(tmp_path: Path) -> None:
    """`python -m benchmarks.outage --quick` gives a table, JSON and a plot for every contender."""
    raw, picture = tmp_path / "outage.json", tmp_path / "outage.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.outage",
            "--quick",
            "--json",
            str(raw),
            "--plot",
            str(picture),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| scenario | contender |")
    data = json.loads(raw.read_text())
    assert set(data["contenders"]) == set(CONTENDERS)
    scenarios = set(data["scenarios"])
    assert scenarios
    for contender in CONTENDERS:
        runs = [r for r in data["runs"] if r["contender"] == contender]
        assert {r["scenario"] for r in runs} == scenarios, contender
        for run in runs:
            metrics = run["metrics"]
            assert metrics["calls"] > 0
            assert 0 <= metrics["success"] <= 1
            assert metrics["cpu_ms_per_call"] is not None
            assert any(f"| {run['scenario']} | {contender} |" in row for row in rows)
    assert picture.read_bytes().startswith(b"\x89PNG")
