"""Every Python example of the documentation runs: the ```python blocks of docs/ and README.md.

The convention, in the Markdown itself. A marker is an HTML comment on the lines right before
a fence (blank lines and other one-line comments such as ``<!-- fmt: off -->`` may come in
between); GitHub and the site hide it.

- **No marker**: the block is a complete program. It runs alone, as ``python example.py`` in
  a fresh interpreter and an empty directory, and must exit 0.
- ``<!-- docs-test: continue -->``: the block goes on from the page's previous block; the two
  (or more) run as one program.
- ``<!-- docs-test: setup`` ... ``-->``: the comment holds Python that runs before the next
  block, in the same program: a local stand-in for something the reader has (their clients,
  say). Keep it short and rare; prefer a self-contained example.
- ``<!-- docs-test: pytest -->``: the block is a test module. It is copied into a fresh
  project and run with pytest (the package's plugin gives the fixtures); every test in it
  must pass.
- ``<!-- docs-test: redis -->``: the block needs the Redis server at ``REDIS_URL`` (passed to
  it in the environment; the tests' database, 15, by default). Skipped when Redis is
  unreachable, failed instead when ``CI=true``.
- ``<!-- docs-test: skip: REASON -->``: the block is not run, for the stated reason (required,
  and shown to whoever reads the Markdown). Keep these rare.
- Markers combine with commas: ``<!-- docs-test: continue, redis -->``.
- A ```` ```text title="Output" ```` block right after a Python block is what the program
  prints, exactly (for a continued block: how its program's output ends).
- A block that includes files with pymdownx snippets (``--8<-- "examples/x.py"``) runs
  nothing here: each included file must be one that a test runs (``_files_run_by_tests``).

Shell commands (```bash), output (```text) and other languages are not Python blocks.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TESTS = ROOT / "tests"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>.*)$")
_MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<body>.*?)\s*(?P<end>-->)?$")
_COMMENT = re.compile(r"^<!--.*-->$")
_SNIPPET = re.compile(r'^--8<--\s+"(?P<path>[^"]+)"$')
_FLAGS = frozenset({"continue", "pytest", "redis"})


@dataclass
class Block:
    """One fenced ```python block of a Markdown file, with its markers."""

    path: Path
    line: int  # 1-based, the opening fence
    code: str
    flags: set[str] = field(default_factory=set)
    setup: str = ""
    skip: str | None = None
    output: str | None = None
    program: str = ""  # what runs: setups and code, with the continued blocks before

    @property
    def id(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"

    @property
    def snippets(self) -> list[str]:
        """The files the block includes (``--8<-- "path"``), or [] for a block of code."""
        lines = [line.strip() for line in self.code.splitlines() if line.strip()]
        found = [m["path"] for m in map(_SNIPPET.match, lines) if m]
        if found and len(found) != len(lines):
            raise ValueError(f"{self.id}: a block either includes files or holds code, not both")
        return found


class ConventionError(ValueError):
    """The Markdown breaks the docs-test convention (see the module docstring)."""


def _marker(path: Path, lineno: int, body: str) -> tuple[set[str], str | None]:
    """Parse the words of a one-line marker: (flags, skip reason or None)."""
    if body.startswith("skip"):
        reason = body.removeprefix("skip").lstrip(":").strip()
        if len(reason) < 10:
            raise ConventionError(f"{path}:{lineno}: docs-test: skip needs a reason: {body!r}")
        return set(), reason
    flags = {word.strip() for word in body.split(",")}
    if not flags <= _FLAGS:
        raise ConventionError(
            f"{path}:{lineno}: unknown docs-test marker {sorted(flags - _FLAGS)}; "
            f"known: {sorted(_FLAGS)}, setup, skip: REASON"
        )
    return flags, None


def parse(path: Path) -> list[Block]:
    """Return the ```python blocks of a Markdown file, with their markers applied."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    flags: set[str] = set()
    setup: list[str] = []
    skip: str | None = None
    pending_at: int | None = None  # the line of a marker still waiting for its block
    last_python: Block | None = None  # a block whose Output block may follow
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        fence = _FENCE.match(line)
        if fence:
            indent, mark, info = fence["indent"], fence["fence"], fence["info"].strip()
            body: list[str] = []
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(mark):
                body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
                j += 1
            code = "\n".join(body) + "\n"
            language = info.split()[0] if info else ""
            if language == "python":
                block = Block(path, i + 1, code, flags, "\n".join(setup), skip)
                blocks.append(block)
                last_python = block
            elif last_python is not None and 'title="Output"' in info:
                last_python.output = code
                last_python = None
            else:
                if pending_at is not None:
                    raise ConventionError(
                        f"{path}:{pending_at}: a docs-test marker before a {language or 'plain'}"
                        " block: markers go before ```python blocks"
                    )
                last_python = None
            flags, setup, skip, pending_at = set(), [], None, None
            i = j + 1
            continue
        marker = _MARKER.match(stripped)
        if marker:
            if marker["body"].startswith("setup"):
                if marker["end"]:
                    raise ConventionError(f"{path}:{i + 1}: an empty docs-test: setup")
                j = i + 1
                while j < len(lines) and lines[j].strip() != "-->":
                    j += 1
                setup.append(textwrap.dedent("\n".join(lines[i + 1 : j])))
                i = j
            else:
                if not marker["end"]:
                    raise ConventionError(f"{path}:{i + 1}: a docs-test marker fits on one line")
                more, reason = _marker(path, i + 1, marker["body"])
                flags |= more
                skip = reason or skip
            pending_at = pending_at or i + 1
        elif stripped and not _COMMENT.match(stripped):
            if pending_at is not None:
                raise ConventionError(
                    f"{path}:{pending_at}: a docs-test marker must come right before its "
                    "```python block"
                )
            last_python = None
        i += 1
    if pending_at is not None:
        raise ConventionError(f"{path}:{pending_at}: a docs-test marker with no block after it")
    _chain(blocks)
    return blocks


def _chain(blocks: list[Block]) -> None:
    """Set each block's program: its setups and code, after the blocks it continues."""
    previous = ""
    for block in blocks:
        if "continue" in block.flags and not previous:
            raise ConventionError(f"{block.id}: docs-test: continue, but nothing to continue")
        own = "\n".join(part for part in (block.setup, block.code) if part)
        block.program = f"{previous}\n{own}" if "continue" in block.flags else own
        if block.skip is None and not block.snippets:
            previous = block.program


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def all_blocks() -> tuple[list[Block], str | None]:
    """Every ```python block of the pages, or none and what breaks the convention."""
    try:
        return [block for path in markdown_files() for block in parse(path)], None
    except (ConventionError, ValueError) as exc:
        return [], str(exc)


BLOCKS, BROKEN = all_blocks()
RUNNABLE = [block for block in BLOCKS if not block.snippets and block.skip is None]


def _env() -> dict[str, str]:
    """The environment of an example: this worktree's package first; the tests' Redis."""
    from .redis_support import REDIS_URL

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["REDIS_URL"] = REDIS_URL
    env.pop("PYTHONSTARTUP", None)
    return env


def _prefixes(code: str) -> set[str]:
    return set(re.findall(r"""prefix=["']([^"']+)["']""", code))


def _clean_redis(prefixes: set[str]) -> None:
    from .redis_support import REDIS_URL, sync_client

    client = sync_client(REDIS_URL)
    try:
        for prefix in prefixes:
            keys = list(client.scan_iter(match=f"{{{prefix}}}:*"))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


@pytest.mark.parametrize(
    "block", [b for b in RUNNABLE if "pytest" not in b.flags], ids=lambda b: b.id
)
def test_example_runs(block: Block, tmp_path: Path) -> None:
    """The example runs as a program of its own (and prints its Output block, if it has one)."""
    if "redis" in block.flags:
        from .redis_support import require_redis

        require_redis()
        _clean_redis(_prefixes(block.program))
    script = tmp_path / "example.py"
    script.write_text(block.program, encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        if "redis" in block.flags:
            _clean_redis(_prefixes(block.program))
    assert done.returncode == 0, f"{block.id} failed:\n{done.stderr}"
    if block.output is not None:
        got, expected = done.stdout.rstrip("\n"), block.output.rstrip("\n")
        if "continue" in block.flags:
            assert got.endswith(expected), f"{block.id} printed:\n{got}"
        else:
            assert got == expected, f"{block.id} printed:\n{got}"


def _test_count(code: str) -> int:
    tree = ast.parse(code)
    return sum(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
        for node in tree.body
    )


@pytest.mark.parametrize("block", [b for b in RUNNABLE if "pytest" in b.flags], ids=lambda b: b.id)
def test_example_test_module_passes(
    block: Block, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copied into a fresh project, the example's tests pass using only the pytest plugin."""
    tests = _test_count(block.program)
    assert tests, f"{block.id} is marked pytest but defines no test"
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])  # this checkout's package
    pytester.makepyfile(test_example=block.program)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=tests)


def _files_run_by_tests() -> dict[str, str]:
    """The example files that some test runs, by path: the only files the docs may include."""
    from .test_sdk_examples import CASES

    run = {f"examples/sdks/{case.sdk}_fallback.py": "tests/test_sdk_examples.py" for case in CASES}
    run["examples/sdks/openai_streaming.py"] = "tests/test_streams_sdk.py"
    run["examples/quickstart.py"] = "tests/test_docs.py"
    return run


def test_included_files_are_run_by_tests() -> None:
    """Each file a page includes (pymdownx snippets) is run by a test, which names it."""
    run = _files_run_by_tests()
    for path, test_module in run.items():
        assert (ROOT / path).is_file(), path
        assert Path(path).name in (ROOT / test_module).read_text(encoding="utf-8") or (
            path.endswith("_fallback.py") and test_module == "tests/test_sdk_examples.py"
        ), f"{test_module} does not run {path}"
    included = {path for block in BLOCKS for path in block.snippets}
    assert included, "no page includes an example file"
    assert sorted(included - run.keys()) == []


def test_quickstart_example_is_safe_to_copy() -> None:
    """The tour runs, logs through the routing logger only, and breaks no other library's log."""
    script = ROOT / "examples" / "quickstart.py"
    code = (
        "import logging, runpy, sys\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
        "logging.getLogger('httpx').warning('another library logs')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=_env(),
    )
    assert "Logging error" not in out.stderr
    assert "log WARNING provider failed: 'gemini' (attempt 1 of 3): ProviderDown:" in out.stdout
    assert "another library logs" in out.stderr  # Python's last resort, untouched


def _toml_blocks(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(r"^```toml\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_scenarios_shown_are_valid() -> None:
    """Every TOML scenario of the command-line page loads, as the simulator would load it."""
    from resilient_routing._sim.scenario import parse_scenario

    shown = _toml_blocks(DOCS / "cli.md")
    assert shown
    for text in shown:
        scenario = parse_scenario(text, "docs/cli.md")
        assert scenario.providers and scenario.configs


#: The public modules, each with its page of the API reference.
REFERENCE = {
    "resilient_routing": "resilient_routing.md",
    "resilient_routing.strategies": "strategies.md",
    "resilient_routing.cooldown": "cooldown.md",
    "resilient_routing.events": "events.md",
    "resilient_routing.testing": "testing.md",
    "resilient_routing.pytest_plugin": "testing.md",
    "resilient_routing.contrib.otel": "contrib.md",
    "resilient_routing.contrib.prometheus": "contrib.md",
}
_DIRECTIVE = re.compile(r"^::: (?P<path>[\w.]+)\n(?P<options>(?:    .*\n)*)", re.MULTILINE)


def _documented(page: str, module: str) -> set[str]:
    """The names of ``module`` that a reference page renders or links to."""
    names: set[str] = set()
    for match in _DIRECTIVE.finditer(page):
        path, options = match["path"], match["options"]
        if path.startswith(f"{module}."):
            names.add(path.removeprefix(f"{module}."))
        elif path == module and "members:" not in options:
            names.add("*")  # the whole module
        elif path == module and "members: false" not in options:
            names.update(re.findall(r"^\s+- (\w+)$", options, flags=re.MULTILINE))
    names.update(re.findall(rf"\]\[{re.escape(module)}\.(\w+)\]", page))
    return names


@pytest.mark.parametrize("module", REFERENCE)
def test_reference_covers_every_public_name(module: str) -> None:
    """Each name of a public module's __all__ is rendered in the API reference, or linked."""
    import importlib

    page = (DOCS / "reference" / REFERENCE[module]).read_text(encoding="utf-8")
    documented = _documented(page, module)
    if "*" in documented:
        return
    # A name re-exported from another public module may be documented there.
    for other, other_page in REFERENCE.items():
        if other != module:
            text = (DOCS / "reference" / other_page).read_text(encoding="utf-8")
            documented |= _documented(text, other) & set(importlib.import_module(module).__all__)
    missing = sorted(set(importlib.import_module(module).__all__) - documented)
    assert missing == [], f"add them to docs/reference/{REFERENCE[module]}"


def test_site_builds_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict` passes: no broken link, anchor, reference or docstring."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=_env() | {"NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "reference" / "resilient_routing" / "index.html").is_file()


def test_every_page_has_examples_and_skips_are_rare() -> None:
    """The pages follow the convention and hold many examples; nearly all of them run."""
    assert BROKEN is None, BROKEN
    assert len(RUNNABLE) >= 30
    skipped = [block.id for block in BLOCKS if block.skip is not None]
    assert len(skipped) <= 3, skipped


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<!-- docs-test: skip -->\n```python\nx\n```\n", "needs a reason"),
        ("<!-- docs-test: contiue -->\n```python\nx\n```\n", "unknown docs-test marker"),
        ("<!-- docs-test: redis -->\nSome text.\n```python\nx\n```\n", "right before"),
        ("<!-- docs-test: redis -->\n```bash\nls\n```\n", "before a bash block"),
        ("<!-- docs-test: continue -->\n```python\nx\n```\n", "nothing to continue"),
        ("```python\nx\n```\n<!-- docs-test: redis -->\n", "no block after it"),
    ],
)
def test_the_convention_is_enforced(text: str, error: str, tmp_path: Path) -> None:
    """A marker that would silently skip or mislead is an error, not a block left out."""
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    with pytest.raises(ConventionError, match=error):
        parse(page)


def test_markers_setups_and_outputs_apply_to_their_block(tmp_path: Path) -> None:
    """A setup runs before its block, a continued block after the one it continues."""
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: setup\nCLIENT = 1\n-->\n\n<!-- fmt: off -->\n```python\nprint(CLIENT)\n"
        '```\n\n```text title="Output"\n1\n```\n\n<!-- docs-test: continue -->\n'
        "```python\nprint(2)\n```\n\n<!-- docs-test: skip: needs a real account -->\n"
        '```python\nimport nothing\n```\n\n```python\n--8<-- "examples/quickstart.py"\n```\n',
        encoding="utf-8",
    )
    first, second, skipped, included = parse(page)
    assert first.program == "CLIENT = 1\nprint(CLIENT)\n" and first.output == "1\n"
    assert second.program == "CLIENT = 1\nprint(CLIENT)\n\nprint(2)\n"
    assert skipped.skip == "needs a real account"
    assert included.snippets == ["examples/quickstart.py"]
