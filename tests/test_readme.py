"""The README's testing example runs as written, with the fixtures of the pytest plugin."""

from __future__ import annotations

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
