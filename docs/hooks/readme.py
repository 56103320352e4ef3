"""MkDocs hook: the README is the site's home page.

docs/index.md stands for it: this hook replaces that page's Markdown with the README's. On
GitHub the README links to the pages as ``docs/page.md`` and to ``CHANGELOG.md``; on the
site the same links are ``page.md`` and ``changelog.md``. They are rewritten here, so one
file serves both (and ``--strict`` still checks every link).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"\]\((?:docs/)?(?P<target>[^)#\s]+\.md)(?P<anchor>#[^)\s]*)?\)")


def _relink(match: re.Match[str]) -> str:
    target = "changelog.md" if match["target"] == "CHANGELOG.md" else match["target"]
    return f"]({target}{match['anchor'] or ''})"


def on_page_markdown(markdown: str, *, page: Any, config: Any, **kwargs: Any) -> str:
    """Give the home page the README's text, its links pointed at the site's pages."""
    if page.file.src_uri != "index.md":
        return markdown
    readme = Path(config.config_file_path).parent / "README.md"
    return _LINK.sub(_relink, readme.read_text(encoding="utf-8"))
