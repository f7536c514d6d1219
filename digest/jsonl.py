"""Papers from JSON lines, as `digest rank --papers J` reads them (DESIGN.md).

One object per line: "id", "title" and "abstract" (strings) are required, "authors" (a
list of strings) and "upvotes" (an integer) optional. A bad line is a usage error that
names the file and the line.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from digest.errors import UsageError
from digest.models import Paper


def read_papers_jsonl(path: Path) -> list[Paper]:
    """Papers from JSON lines of {"id", "title", "abstract"} (+ "authors", "upvotes")."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read papers: {exc}") from exc
    papers = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}, line {number}: not JSON: {exc.msg}") from exc
        papers.append(_paper_from_json(item, f"{path}, line {number}"))
    return papers


def _paper_from_json(item: object, where: str) -> Paper:
    if not isinstance(item, dict):
        raise UsageError(f"{where}: expected a JSON object")
    for key in ("id", "title", "abstract"):
        if not isinstance(item.get(key), str):
            raise UsageError(f"{where}: '{key}' must be a string")
    authors = item.get("authors", [])
    if not isinstance(authors, list) or not all(isinstance(a, str) for a in authors):
        raise UsageError(f"{where}: 'authors' must be a list of strings")
    upvotes = item.get("upvotes", 0)
    if isinstance(upvotes, bool) or not isinstance(upvotes, int):
        raise UsageError(f"{where}: 'upvotes' must be an integer")
    return Paper(
        id=item["id"],
        title=item["title"],
        abstract=item["abstract"],
        day=date.min,
        source="rank",
        url="",
        authors=tuple(authors),
        upvotes=upvotes,
    )
