"""The benchmark harness runs every case (it asserts nothing about time)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmarks_smoke(tmp_path: Path) -> None:
    """`python -m benchmarks.run --smoke` checks and times each case a few times, error-free."""
    raw = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--json", str(raw)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    data = json.loads(raw.read_text())
    assert data["failures"] == []
    assert data["cases"]["routed fallback"]["status"] == "ok"
    assert data["import"]["redis_imported"] is False


def test_stampede_benchmark_smoke(tmp_path: Path) -> None:
    """`python -m benchmarks.stampede --quick` runs a fleet in both modes (no time asserted)."""
    from .redis_support import REDIS_URL, require_redis

    require_redis()
    raw = tmp_path / "stampede.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.stampede",
            "--quick",
            "--redis",
            REDIS_URL,
            "--json",
            str(raw),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    rows = json.loads(raw.read_text())
    assert [r["mode"] for r in rows] == ["plain", "half_open"]
    assert all(r["calls"] > 0 and r["dead_calls"] > 0 for r in rows)


def test_fleet_benchmark_quick(tmp_path: Path) -> None:
    """`python -m benchmarks.fleet --quick` routes through a fleet on a server of its own."""
    from .redis_support import unavailable

    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (the fleet benchmark starts its own)")
    raw = tmp_path / "fleet.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.fleet",
            "--quick",
            "--json",
            str(raw),
            "--tracker-option",
            "cooldown=0.25",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    data = json.loads(raw.read_text())
    assert data["tracker_options"]["cooldown"] == 0.25
    [row] = data["rows"]
    assert (row["deployment"], row["processes"], row["all_synced"]) == ("server", 2, True)
    assert row["routed_calls"] > 0
    assert "| server | 2 |" in done.stdout
