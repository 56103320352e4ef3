"""MkDocs hook: the README is the site's home page (docs/index.md includes it).

On GitHub the README links to the pages as ``docs/page.md`` and to ``CHANGELOG.md``; on the
site the same links are ``page.md`` and ``changelog.md``. Rewritten here, on the home page
only, so one file serves both (and ``--strict`` still checks every link).
"""

from __future__ import annotations

import re
from typing import Any

_LINK = re.compile(r"\]\((?:docs/)?(?P<target>[^)#\s]+\.md)(?P<anchor>#[^)\s]*)?\)")


def on_page_markdown(markdown: str, *, page: Any, **kwargs: Any) -> str:
    """Point the README's links at the site's pages."""
    if page.file.src_uri != "index.md":
        return markdown

    def relink(match: re.Match[str]) -> str:
        target = match["target"]
        if target == "CHANGELOG.md":
            target = "changelog.md"
        return f"]({target}{match['anchor'] or ''})"

    return _LINK.sub(relink, markdown)
