"""The benchmark harness runs every case (it asserts nothing about time)."""

from __future__ import annotations

import json
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
