"""The package keeps the shape its architecture promises (docs/architecture.md).

Modules stay small, one concept each, and the imports between them stay shallow: a module's
level is one more than the deepest module it imports at import time (typing-only and lazy
imports inside functions do not count).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import resilient_routing
from resilient_routing._routing.options import Options, RoutingOptions

PACKAGE = Path(resilient_routing.__file__).parent
MAX_LINES = 450
MAX_LEVELS = 9


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The package modules ``name`` imports when it is imported."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                for block in (node.body, node.orelse, getattr(node, "finalbody", [])):
                    visit(block)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    submodule = f"{module}.{alias.name}"
                    found.add(submodule if submodule in MODULES else module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)

    visit(ast.parse(path.read_text()).body)
    # A package's own ancestors are being imported already: they are not dependencies.
    return {m for m in found if m in MODULES and m != name and not name.startswith(m + ".")}


@functools.cache
def _level(name: str) -> int:
    return 1 + max((_level(d) for d in _imports(name)), default=0)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_450_lines(name: str) -> None:
    """Every module stays small enough to read whole."""
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


def test_imports_stay_shallow() -> None:
    """No chain of imports inside the package is deeper than nine modules."""
    deepest = max(MODULES, key=_level)
    chain = [deepest]
    while _imports(chain[-1]):
        chain.append(max(_imports(chain[-1]), key=_level))
    assert _level(deepest) <= MAX_LEVELS, " -> ".join(chain)


def test_routing_options_are_listed_once() -> None:
    """The keywords callers may pass and the options a route keeps are the same set."""
    kept = set(Options.__dataclass_fields__) - {"providers"}
    assert set(RoutingOptions.__annotations__) == kept
