"""A Griffe extension for the API reference: the package's docstrings as mkdocstrings reads them.

The docstrings are written for ``help()`` and editors (Google sections, reST inline markup).
Griffe renders Markdown, so at build time (the source is left alone) this extension:

- turns reST roles (``:class:`~a.B```, ``:func:`name```...) into optional cross-references:
  a link when the target is in the reference, plain code otherwise (private helpers);
- turns ``text::`` + an indented block into a fenced code block, and a reST simple table
  (``====  ====``) into a Markdown table;
- expands ``**options: Unpack[SomeTypedDict]`` into the keyword parameters the TypedDict
  declares, its bases' included (Griffe's own ``unpack_typeddict`` extension reads only the
  class itself, not ``class RoutingOptions(CommonOptions)``), so ``Args:`` entries naming
  them match the signature.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([^`]+)`")
_RULE = re.compile(r"^=+(?: +=+)+ *$")


def _reference(obj: griffe.Object, target: str, short: str) -> str:
    """Return an optional autorefs reference to ``target``, resolved from ``obj``'s scope."""
    path = target.lstrip(".")
    if "." not in path or target.startswith("."):
        head, _, rest = path.partition(".")
        try:
            path = obj.resolve(head) + (f".{rest}" if rest else "")
        except griffe.NameResolutionError:
            return f"`{short}`"
    return f'<autoref identifier="{path}" optional><code>{short}</code></autoref>'


def _roles(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        tilde, target = match.groups()
        short = target.rsplit(".", 1)[-1] if tilde else target.lstrip(".")
        return _reference(obj, target, short)

    return _ROLE.sub(replace, text)


def _is_python(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def _literal_blocks(lines: list[str]) -> Iterator[str]:
    """Yield ``lines`` with each reST literal block (``::`` + indented lines) fenced."""
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            yield line
            i += 1
            continue
        stripped = line.rstrip()[:-2].rstrip()
        if stripped:
            yield stripped + ":"
        indent = len(line) - len(line.lstrip())
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        block: list[str] = []
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
        ):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        if not block:
            i += 1
            continue
        cut = min(len(b) - len(b.lstrip()) for b in block if b.strip())
        code = [b[cut:] for b in block]
        language = "python" if _is_python("\n".join(code)) else "text"
        pad = " " * indent
        yield ""
        yield f"{pad}```{language}"
        yield from (f"{pad}{c}" if c else "" for c in code)
        yield f"{pad}```"
        yield ""
        i = j


def _simple_tables(lines: list[str]) -> Iterator[str]:
    """Yield ``lines`` with each reST simple table (three rules of ``=``) as a Markdown table."""
    i = 0
    while i < len(lines):
        if not _RULE.match(lines[i]):
            yield lines[i]
            i += 1
            continue
        starts = [m.start() for m in re.finditer(r"=+", lines[i])]
        rules = [i]
        j = i + 1
        while j < len(lines) and len(rules) < 3:
            if _RULE.match(lines[j]):
                rules.append(j)
            j += 1
        rows = [
            [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
            for line in lines[i + 1 : j - 1]
            if not _RULE.match(line)
        ]
        header_rows = rules[1] - rules[0] - 1
        for k, row in enumerate(rows):
            yield "| " + " | ".join(row) + " |"
            if k == header_rows - 1:
                yield "|" + " --- |" * len(row)
        i = j


def _markdown(obj: griffe.Object, text: str) -> str:
    lines = _roles(obj, text).split("\n")
    return "\n".join(_literal_blocks(list(_simple_tables(lines))))


def _typed_dict_fields(cls: griffe.Class, loader: griffe.GriffeLoader) -> list[griffe.Attribute]:
    """Return the annotated fields of a TypedDict class, its TypedDict bases' first."""
    fields: dict[str, griffe.Attribute] = {}
    for base in cls.bases:
        path = getattr(base, "canonical_path", str(base))
        if path in ("typing.TypedDict", "typing_extensions.TypedDict"):
            continue
        try:
            parent = loader.modules_collection[path]
        except KeyError:
            continue
        if isinstance(parent, griffe.Class):
            fields.update((a.name, a) for a in _typed_dict_fields(parent, loader))
    for member in cls.members.values():
        if isinstance(member, griffe.Attribute) and member.annotation is not None:
            fields[member.name] = member
    return list(fields.values())


def _unpack_kwargs(func: griffe.Function, loader: griffe.GriffeLoader) -> None:
    for parameter in func.parameters:
        annotation = parameter.annotation
        if (
            parameter.kind is griffe.ParameterKind.var_keyword
            and isinstance(annotation, griffe.ExprSubscript)
            and annotation.canonical_path in ("typing.Unpack", "typing_extensions.Unpack")
        ):
            break
    else:
        return
    try:
        typed_dict = loader.modules_collection[annotation.slice.canonical_path]  # type: ignore[union-attr]
    except KeyError:
        return
    if not isinstance(typed_dict, griffe.Class):
        return
    present = {p.name for p in func.parameters}
    del func.parameters[parameter.name]
    for attr in _typed_dict_fields(typed_dict, loader):
        if attr.name not in present:
            func.parameters[attr.name] = griffe.Parameter(
                attr.name,
                annotation=attr.annotation,
                kind=griffe.ParameterKind.keyword_only,
                default="...",
            )


class ReSTDocstrings(griffe.Extension):
    """Render the package's reST-flavoured docstrings as Markdown; expand Unpack kwargs."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite the object's docstring text before mkdocstrings parses it."""
        if obj.docstring is not None:
            obj.docstring.value = _markdown(obj, obj.docstring.value)

    def on_function(
        self, *, func: griffe.Function, loader: griffe.GriffeLoader, **kwargs: Any
    ) -> None:
        """Expand ``**options: Unpack[TypedDict]`` into keyword parameters."""
        _unpack_kwargs(func, loader)
