"""The static web archive: a page per day, an index with feed autodiscovery, nothing private,
and the same bytes every time the same papers are written."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from helpers import month_papers

from digest.archive import archive_pages, day_path, write_archive
from digest.config import Config
from digest.errors import DigestError
from digest.models import Paper
from digest.pipeline import private_feed_path, run
from digest.tokens import load_secret, token

BASE = "https://papers.example.org"


@pytest.fixture(scope="module")
def week() -> list[Paper]:
    return month_papers("2026-01-05") + month_papers("2026-01-06")


def soup(data: bytes) -> BeautifulSoup:
    return BeautifulSoup(data.decode("utf-8"), "html.parser")


def feed_links(page: BeautifulSoup) -> dict[str, str]:
    found = page.find_all("link", rel="alternate")
    return {str(link["type"]): str(link["href"]) for link in found}


def test_each_day_gets_a_page_listing_its_papers_most_upvoted_first(week: list[Paper]) -> None:
    pages = archive_pages(week, title="Trending papers", base_url=BASE)
    assert sorted(pages) == [
        "archive/2026-01-05.html",
        "archive/2026-01-06.html",
        "archive/index.html",
        "index.html",
    ]
    monday = [p for p in week if p.day == dt.date(2026, 1, 5)]
    page = soup(pages["archive/2026-01-05.html"])
    titles = [h2.get_text(" ", strip=True) for h2 in page.find_all("h2")]
    expected = sorted(monday, key=lambda p: (-p.upvotes, p.id))
    assert titles == [" ".join(p.title.split()) for p in expected]
    assert [a["href"] for a in page.select("h2 a")] == [p.url for p in expected]
    assert f"Monday 5 January 2026 · {len(monday)} papers" in page.get_text(" ", strip=True)
    assert (
        page.title is not None
        and page.title.get_text() == "Trending papers — Monday 5 January 2026"
    )


def test_every_page_announces_the_public_feeds_for_autodiscovery(week: list[Paper]) -> None:
    for path, data in archive_pages(week, title="T", base_url=BASE + "/").items():
        assert feed_links(soup(data)) == {
            "application/atom+xml": f"{BASE}/feeds/papers.atom",
            "application/rss+xml": f"{BASE}/feeds/papers.rss",
        }, path


def test_the_index_lists_the_days_newest_first_with_relative_links(week: list[Paper]) -> None:
    pages = archive_pages(week, title="T", base_url=BASE)
    index = soup(pages["archive/index.html"])
    days = index.select("li.day")
    assert [li.a["href"] for li in days] == ["2026-01-06.html", "2026-01-05.html"]
    first = days[0].get_text(" ", strip=True)
    tuesday = [p for p in week if p.day == dt.date(2026, 1, 6)]
    top = max(tuesday, key=lambda p: (p.upvotes, [-ord(c) for c in p.id]))
    assert first.startswith(f"Tuesday 6 January 2026 · {len(tuesday)} papers")
    assert " ".join(top.title.split()) in first
    root = soup(pages["index.html"])
    assert root.find("meta", attrs={"http-equiv": "refresh"})["content"] == (
        "0; url=archive/index.html"
    )
    day_page = soup(pages["archive/2026-01-05.html"])
    assert "index.html" in [a["href"] for a in day_page.find_all("a")]


def test_the_runs_own_day_gets_a_page_even_without_papers(week: list[Paper]) -> None:
    sunday = dt.date(2026, 1, 11)
    pages = archive_pages(week, title="T", base_url=BASE, days=[sunday])
    page = soup(pages[day_path(sunday)])
    assert "No papers were listed on this day." in page.get_text()
    assert "Sunday 11 January 2026 · no papers" in page.get_text(" ", strip=True)
    # The index lists the days that have papers.
    hrefs = [li.a["href"] for li in soup(pages["archive/index.html"]).select("li.day")]
    assert "2026-01-11.html" not in hrefs


def test_hostile_paper_text_is_escaped_on_the_page(week: list[Paper]) -> None:
    hostile = dataclasses.replace(
        week[0],
        title='<script>alert(1)</script> <img src=x onerror="alert(2)">\u202eevil',
        abstract='<a href="javascript:alert(3)">x</a> ' * 30_000,
        ai_summary=None,
        authors=("Eve\r\nBcc: x@evil.test", "李雷", "Zoë 👩\u200d🔬"),
        url="javascript:alert(4)",
        upvotes=10_000,
    )
    data = archive_pages([hostile], title="T<b>", base_url=BASE)[day_path(hostile.day)]
    page = soup(data)
    assert page.find_all("script") == [] and page.find_all("img") == []
    for tag in page.find_all(True):
        assert not [name for name in tag.attrs if name.lower().startswith("on")], tag.name
    hrefs = [str(a["href"]) for a in page.find_all("a")]
    assert not [href for href in hrefs if "javascript" in href]
    text = page.get_text(" ", strip=True)
    assert "<script>alert(1)</script>" in text and "\u202e" not in text
    assert "Eve Bcc: x@evil.test, 李雷, Zoë 👩\u200d🔬" in text
    assert "T<b>" in text
    assert len(data) < 20_000  # a 1 MB abstract is cut to its opening


def test_a_bad_archive_template_is_a_readable_error(tmp_path: Path, week: list[Paper]) -> None:
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "day.html.j2").write_text("{{ no_such_value }}\n", "utf-8")
    with pytest.raises(DigestError, match="no_such_value"):
        archive_pages(week, title="T", base_url=BASE, templates=tmp_path)


def test_write_archive_writes_only_what_changed(tmp_path: Path, week: list[Paper]) -> None:
    first = write_archive(tmp_path, week, title="T", base_url=BASE)
    assert len(first) == 4
    assert write_archive(tmp_path, list(reversed(week)), title="T", base_url=BASE) == []
    more = dataclasses.replace(week[0], upvotes=week[0].upvotes + 1)
    changed = write_archive(tmp_path, [more, *week[1:]], title="T", base_url=BASE)
    assert changed == [tmp_path / day_path(week[0].day)]


def test_pages_left_unchanged_keep_their_mtime_and_no_temp_files_remain(
    tmp_path: Path, week: list[Paper]
) -> None:
    pages = write_archive(tmp_path, week, title="T", base_url=BASE)
    for page in pages:
        os.utime(page, ns=(1_000_000_000, 1_000_000_000))
    more = dataclasses.replace(week[0], upvotes=week[0].upvotes + 1)
    changed = write_archive(tmp_path, [more, *week[1:]], title="T", base_url=BASE)
    for page in pages:
        assert (page.stat().st_mtime_ns == 1_000_000_000) is (page not in changed)
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert sorted(files) == sorted(pages)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_run_writes_the_archive_beside_the_feeds_and_nothing_private(
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    run(config, today=dt.date(2026, 1, 6))
    files = snapshot(config.output_dir)
    assert {"index.html", "archive/index.html", "archive/2026-01-06.html"} <= set(files)
    secret = load_secret(config.data_dir)
    public = {path: data for path, data in files.items() if not path.startswith("feeds/private")}
    assert "feeds/papers.atom" in public
    secrets: list[str] = []
    for subscriber in config.subscribers:
        secrets += [subscriber.email, token(secret, subscriber.email, "unsubscribe")]
        secrets += [private_feed_path(secret, subscriber.email).rsplit("/", 1)[1]]
        secrets += [subscriber.name] if subscriber.name else []
    for path, data in public.items():
        text = data.decode("utf-8")
        leaked = [value for value in secrets if value in text]
        assert leaked == [], path
    # The emails' "View in browser" link leads to a page that exists.
    assert config.delivery.maildir is not None
    message = next((config.delivery.maildir / "new").iterdir()).read_text("ascii")
    assert f"{config.base_url}/archive/2026-01-06.html" in message.replace("=\n", "")


def test_rerunning_a_day_writes_byte_identical_feeds_and_archive_pages(
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    run(config, today=dt.date(2026, 1, 5))
    run(config, today=dt.date(2026, 1, 6))
    first = snapshot(config.output_dir)
    assert len([path for path in first if path.startswith("archive/")]) == 3
    assert len([path for path in first if path.startswith("feeds/private/")]) == 3
    stamps = {path: (config.output_dir / path).stat().st_mtime_ns for path in first}
    run(config, today=dt.date(2026, 1, 6))  # the same day again: nothing changes
    assert snapshot(config.output_dir) == first
    assert {path: (config.output_dir / path).stat().st_mtime_ns for path in first} == stamps
    shutil.rmtree(config.output_dir)  # and written from scratch, the same bytes
    run(config, today=dt.date(2026, 1, 6))
    assert snapshot(config.output_dir) == first


def test_a_user_templates_folder_restyles_the_archive_over_the_builtins(
    tmp_path: Path, week: list[Paper]
) -> None:
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "archive.css").write_text(".day a { color: #123456; }\n", "utf-8")
    pages: dict[str, Any] = archive_pages(week, title="T", base_url=BASE, templates=tmp_path)
    assert b"#123456" in pages["archive/index.html"]
    assert b".paper-title" in pages["archive/index.html"]  # the built-in style.css too
