"""The README's testing example runs as written, with the fixtures of the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("A complete example, testing a routed function")
    return text[start:].split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_testing_example_passes(pytester: pytest.Pytester) -> None:
    """Copied into a fresh project, the example's tests pass using only the plugin."""
    pytester.makepyfile(test_example=_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)


def test_quickstart_example_is_safe_to_copy() -> None:
    """The tour runs, logs through the routing logger only, and breaks no other library's log."""
    script = Path(__file__).parent.parent / "examples" / "quickstart.py"
    code = (
        "import logging, runpy, sys\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
        "logging.getLogger('httpx').warning('another library logs')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "Logging error" not in out.stderr
    assert "log WARNING provider failed: 'gemini' (attempt 1 of 3): ProviderDown:" in out.stdout
    assert "another library logs" in out.stderr  # Python's last resort, untouched
