"""The static web archive in `output_dir`: a page per day and an index of the days.

`archive/<YYYY-MM-DD>.html` shows every paper the sources listed that day; it is the page
an email's "View in browser" link opens, so it is built from papers alone and holds
nothing about any subscriber. `archive/index.html` lists the days, newest first, and
`index.html` at the top of `output_dir` leads to it; every page announces the public feeds
for autodiscovery. Like the feeds, the pages are a pure function of the papers (no clock),
links between pages are relative (the folder can be browsed from disk or served anywhere),
and files are replaced atomically and only when their bytes change.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from digest.feeds import write_atomic_many
from digest.models import Paper
from digest.render import PaperView, paper_view, template_error, template_loader
from digest.sanitize import clean_text, plural, truncate
from digest.subject import long_day

log = logging.getLogger(__name__)

ARCHIVE = "archive"
INDEX_PATH = f"{ARCHIVE}/index.html"  # the list of days (a weekly digest links to it)


@dataclass(frozen=True)
class DayEntry:
    """One line of the index."""

    href: str
    date_long: str
    count_label: str
    top: str  # the day's most upvoted title


def day_path(day: dt.date) -> str:
    """Where a day's page lives, relative to `output_dir` (the pipeline links to it)."""
    return f"{ARCHIVE}/{day.isoformat()}.html"


def _by_day(papers: Iterable[Paper]) -> dict[dt.date, list[Paper]]:
    """Papers grouped by their day, each paper once, most upvoted first."""
    days: dict[dt.date, dict[str, Paper]] = defaultdict(dict)
    for paper in papers:
        days[paper.day].setdefault(paper.id, paper)
    return {
        day: sorted(found.values(), key=lambda p: (-p.upvotes, p.id)) for day, found in days.items()
    }


def _environment(templates: Path | None) -> jinja2.Environment:
    return jinja2.Environment(
        loader=template_loader(templates),
        autoescape=True,  # every value is paper text: escaped, never marked safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def archive_pages(
    papers: Sequence[Paper],
    *,
    title: str,
    base_url: str,
    days: Iterable[dt.date] = (),
    templates: Path | None = None,
) -> dict[str, bytes]:
    """Every page of the archive: path relative to `output_dir` → bytes.

    A page is written for each day that has papers and for each day in `days` (the run's
    own date, so that an email's link never leads nowhere, even on a day with no papers).
    """
    base = base_url.rstrip("/")
    site_title = truncate(clean_text(title), 100) or "digest"
    feeds = {"atom": f"{base}/feeds/papers.atom", "rss": f"{base}/feeds/papers.rss"}
    grouped = _by_day(papers)
    for day in days:
        grouped.setdefault(day, [])
    env = _environment(templates)
    pages: dict[str, bytes] = {}
    common: dict[str, Any] = {"title": site_title, "feeds": feeds}
    try:
        day_template = env.get_template(f"{ARCHIVE}/day.html.j2")
        for day, listed in sorted(grouped.items()):
            views: list[PaperView] = [paper_view(n, p, ()) for n, p in enumerate(listed, 1)]
            html = day_template.render(
                common,
                page_title=f"{site_title} — {long_day(day)}",
                date_long=long_day(day),
                count_label=plural(len(views), "paper") if views else "no papers",
                papers=views,
            )
            pages[day_path(day)] = html.encode("utf-8")
        index = [
            DayEntry(
                href=f"{day.isoformat()}.html",
                date_long=long_day(day),
                count_label=plural(len(listed), "paper"),
                top=truncate(clean_text(listed[0].title), 160),
            )
            for day, listed in sorted(grouped.items(), reverse=True)
            if listed
        ]
        html = env.get_template(f"{ARCHIVE}/index.html.j2").render(
            common, page_title=site_title, days=index
        )
        pages[INDEX_PATH] = html.encode("utf-8")
        root = env.get_template(f"{ARCHIVE}/root.html.j2").render(common)
        pages["index.html"] = root.encode("utf-8")
    except jinja2.TemplateError as error:
        raise template_error(error) from error
    return pages


def write_archive(
    output_dir: Path,
    papers: Sequence[Paper],
    *,
    title: str,
    base_url: str,
    days: Iterable[dt.date] = (),
    templates: Path | None = None,
) -> list[Path]:
    """Write the archive into `output_dir`; returns the files whose bytes changed."""
    pages = archive_pages(papers, title=title, base_url=base_url, days=days, templates=templates)
    changed = write_atomic_many((output_dir / path, data) for path, data in pages.items())
    if changed:
        log.info("archive: %d of %d pages changed", len(changed), len(pages))
    return changed
