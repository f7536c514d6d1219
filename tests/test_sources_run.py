"""Sources inside a whole run: late additions, upvote updates, failures, 304s."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from feedgen.feed import FeedGenerator
from helpers import FIXTURES, MONTH, maildir_messages
from httpserver import LoopbackServer, Reply, arxiv_api_answer, serve_hf_api

from digest.config import Config, load_config
from digest.errors import SourceError
from digest.fetch import Fetcher
from digest.models import Link
from digest.pipeline import run
from digest.sources.arxiv import parse_listing
from digest.store import Store

AUG1, AUG2 = dt.date(2024, 8, 1), dt.date(2024, 8, 2)
API_AUG1 = FIXTURES / "hf" / "api" / "daily_papers_date_2024-08-01.json"
HTML_AUG1 = FIXTURES / "hf" / "html" / "daily_2024-08-01.html"
JSON = "application/json"

THREE_D = """\
email = "threed@example.org"
max_papers = 20

[interests]
description = "3D representations: NeRF, Gaussian splatting, 3D-aware features."
keywords = ["masked autoencoders", "3D-aware fine-tuning", "Gaussian avatar"]
"""


def ids_in(config: Config) -> list[list[str]]:
    assert config.delivery.maildir is not None
    found = []
    for message in maildir_messages(config.delivery.maildir):
        text = message.get_body(("plain",))
        assert text is not None
        found.append(
            [
                line.rsplit("/", 1)[1]
                for line in text.get_content().split()
                if line.startswith("https://huggingface.co/papers/")
            ]
        )
    return found


def by_recipient(config: Config) -> dict[str, list[list[str]]]:
    assert config.delivery.maildir is not None
    found: dict[str, list[list[str]]] = {}
    for message, ids in zip(maildir_messages(config.delivery.maildir), ids_in(config), strict=True):
        found.setdefault(message["To"].addresses[0].addr_spec, []).append(ids)
    return found


def no_wait() -> Fetcher:
    return Fetcher(attempts=2, sleep=lambda seconds: None)


def test_papers_added_to_a_day_after_the_run_go_out_next_run_with_fresh_upvotes(
    make_config: Callable[..., Config],
) -> None:
    # The real 2024-08-01 day: 11 papers in the afternoon API capture, 13 in the page
    # captured later, with more upvotes on every shared paper.
    with LoopbackServer() as server:
        server.serve_file("/api/daily_papers", API_AUG1, content_type=JSON)
        config = make_config(server=server.url, subscribers={"threed": THREE_D})
        run(config, today=AUG1, fetcher=no_wait())
        first = ids_in(config)
        assert len(first) == 1 and "2404.01300" not in first[0]

        # Next morning the API for the 1st fails; its page (the later capture) answers.
        server.route("/api/daily_papers", lambda request: Reply(503), query={"date": "2024-08-01"})
        server.route(
            "/api/daily_papers", lambda request: Reply(200, b"[]"), query={"date": "2024-08-02"}
        )
        server.serve_file("/papers/date/2024-08-01", HTML_AUG1, content_type="text/html")
        run(config, today=AUG2, fetcher=no_wait())

    second = ids_in(config)[1]
    assert {"2407.20229", "2404.01300"} <= set(second), "the late papers reach the reader"
    assert not set(second) & set(first[0]), "nothing is sent twice"
    store = Store(config.database)
    assert store.papers_by_id(["2407.21783"])["2407.21783"].upvotes == 94  # was 49
    assert store.papers_by_id(["2404.01300"])["2404.01300"].day == AUG1
    store.close()


def test_a_failing_source_does_not_stop_the_others_and_is_caught_up(
    make_config: Callable[..., Config],
) -> None:
    with LoopbackServer() as good, LoopbackServer() as bad:
        serve_hf_api(good, MONTH)
        bad.route("/api/daily_papers", lambda request: Reply(500))
        bad.route("/papers/date/2026-01-05", lambda request: Reply(200, b"<html>moved</html>"))
        config = make_config(server=good.url)
        mirror = f'[[sources]]\nkind = "huggingface"\nname = "mirror"\nbase_url = "{bad.url}"\n'
        text = config.path.read_text().replace("[delivery]", mirror + "\n[delivery]")
        config.path.write_text(text)
        config = load_config(config.path)
        with pytest.raises(SourceError) as failure:
            run(config, today=dt.date(2026, 1, 5), fetcher=no_wait())
        assert str(failure.value).startswith(f"source mirror: {bad.url}/api/daily_papers")
        assert "no DailyPapers data on the page" in str(failure.value)
        delivered = ids_in(config)
        assert delivered, "the healthy source's papers went out"

        store = Store(config.database)
        assert store.last_fetched_day("huggingface", dt.date(2026, 1, 6)) == dt.date(2026, 1, 5)
        assert store.last_fetched_day("mirror", dt.date(2026, 1, 6)) is None
        store.close()

        # Next day the mirror is back: it is asked for the day it missed, too.
        serve_hf_api(bad, MONTH)
        run(config, today=dt.date(2026, 1, 6), fetcher=no_wait())
        asked = [r.query.get("date") for r in bad.requests if r.path == "/api/daily_papers"]
        assert asked[-2:] == ["2026-01-05", "2026-01-06"]
    for address, messages in by_recipient(config).items():
        ids = [pid for message in messages for pid in message]
        assert len(ids) == len(set(ids)), f"{address} got a paper twice"


def test_rerunning_a_day_against_an_unchanged_source_costs_only_304s(
    make_config: Callable[..., Config],
) -> None:
    with LoopbackServer() as server:
        serve_hf_api(server, MONTH, etag=True)
        config = make_config(server=server.url)
        run(config, today=dt.date(2026, 1, 5))
        before = len(server.requests)
        run(config, today=dt.date(2026, 1, 5))
        again = server.requests[before:]
    assert again, "the rerun polls the source"
    assert all("if-none-match" in request.headers for request in again)


AUG20 = dt.date(2025, 8, 20)
LISTING = FIXTURES / "arxiv" / "rss" / "atom_cs.AI_2025-08-20_truncated.xml"


def repaired_listing() -> bytes:
    """The real cs.AI listing of 2025-08-20, cut back to its last complete entry."""
    raw = LISTING.read_bytes()
    return raw[: raw.rindex(b"</entry>") + len(b"</entry>")] + b"</feed>"


def hf_day_listing(arxiv_id: str, title: str, abstract: str) -> bytes:
    """A Hugging Face API day listing one arXiv paper, in the real item shape."""
    item = json.loads((MONTH / "2026-01-05.json").read_bytes())[0]
    item["title"] = title
    item["paper"].update(
        id=arxiv_id, title=title, summary=abstract, submittedOnDailyAt="2025-08-20T00:00:00.000Z"
    )
    return json.dumps([item]).encode()


def lab_feed(server_url: str) -> bytes:
    feed = FeedGenerator()
    feed.id(f"{server_url}/lab.atom")
    feed.title("A lab's papers")
    feed.link(href=f"{server_url}/lab", rel="alternate")
    entry = feed.add_entry()
    entry.id("https://arxiv.org/abs/2508.13171v1")
    entry.title("Cognitive Workspace: our new paper on memory for LLMs")
    entry.link(href="https://lab.example.org/posts/cognitive-workspace")
    entry.summary("We study active memory management for LLMs.")
    entry.updated(dt.datetime(2025, 8, 20, 9, 0, tzinfo=dt.UTC))
    feed.updated(dt.datetime(2025, 8, 20, 9, 0, tzinfo=dt.UTC))
    return bytes(feed.atom_str())


def test_one_paper_from_several_sources_appears_once_with_links_from_each(
    make_config: Callable[..., Config],
) -> None:
    papers = {p.id: p for p in parse_listing(repaired_listing(), day=AUG20)}
    shared = papers["2508.13167"]
    subscriber = """\
email = "agents@example.org"
max_papers = 30

[interests]
keywords = ["agent foundation models", "memory management"]
"""
    with LoopbackServer() as server:
        server.serve_bytes(
            "/api/daily_papers",
            hf_day_listing(shared.id, shared.title, shared.abstract),
            headers={"Content-Type": JSON},
        )
        server.serve_bytes("/atom/cs.AI", repaired_listing())
        server.serve_bytes("/lab.atom", lab_feed(server.url))
        config = make_config(server=server.url, subscribers={"agents": subscriber})
        more = (
            f'[[sources]]\nkind = "arxiv"\ncategories = ["cs.AI"]\nbase_url = "{server.url}"\n\n'
            f'[[sources]]\nkind = "feed"\nname = "lab"\nurl = "{server.url}/lab.atom"\n\n'
        )
        config.path.write_text(config.path.read_text().replace("[delivery]", more + "[delivery]"))
        config = load_config(config.path)
        result = run(config, today=AUG20, fetcher=no_wait())

    assert [(s.name, s.error) for s in result.sources] == [
        ("huggingface", None),
        ("arxiv cs.AI", None),
        ("lab", None),
    ]
    assert config.delivery.maildir is not None
    [message] = maildir_messages(config.delivery.maildir)
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert text.count(shared.title.split(":")[0]) == 1, "the shared paper is listed once"
    assert text.count("https://huggingface.co/papers/2508.13167") == 1
    assert "https://arxiv.org/abs/2508.13171" in text
    store = Store(config.database)
    merged = store.papers_by_id(["2508.13167", "2508.13171"])
    store.close()
    assert merged["2508.13167"].source == "huggingface"
    assert {link.url for link in merged["2508.13167"].links} >= {
        "https://arxiv.org/abs/2508.13167",
        "https://arxiv.org/pdf/2508.13167",
    }
    assert merged["2508.13167"].url == "https://huggingface.co/papers/2508.13167"
    lab = [link for link in merged["2508.13171"].links if "lab.example.org" in link.url]
    assert lab == [Link("lab.example.org", "https://lab.example.org/posts/cognitive-workspace")]
    assert merged["2508.13171"].title.startswith("Cognitive Workspace: Active Memory Management")


def recent_cs_ai(day: dt.date, ids: list[str]) -> bytes:
    """A recent listing of cs.AI (the 2024+ layout, as `list_astro-ph_recent_*` shows it)
    whose only day is `day`, holding `ids`."""
    label = f"{day:%a}, {day.day} {day:%b %Y}"
    items = "".join(
        f"""<dt><a href="/abs/{i}" title="Abstract" id="{i}">arXiv:{i}</a></dt>
<dd><div class='list-title mathjax'><span class='descriptor'>Title:</span> Listed {i}</div>
<div class='list-authors'><a href='/a/x'>Ana Pérez</a></div></dd>"""
        for i in ids
    )
    return f"""<html><body><h1>Artificial Intelligence</h1><ul>
<li><a href="/list/cs.AI/recent?skip=0&amp;show=2000">{label}</a></li></ul>
<dl id='articles'><h3>{label} (showing {len(ids)} of {len(ids)} entries )</h3>{items}</dl>
</body></html>""".encode()


def test_arxiv_days_missed_in_an_outage_are_caught_up_when_it_is_over(
    make_config: Callable[..., Config],
) -> None:
    monday, tuesday, wednesday = (dt.date(2025, 8, d) for d in (18, 19, 20))
    missed = ["2508.90001", "2508.90002", "2508.90003"]
    with LoopbackServer() as server:
        server.serve_bytes("/api/daily_papers", b"[]", headers={"Content-Type": JSON})
        on_monday = repaired_listing().replace(b"2025-08-20T", b"2025-08-18T")
        server.serve_bytes("/atom/cs.AI", on_monday)
        config = make_config(server=server.url)
        arxiv = f'[[sources]]\nkind = "arxiv"\ncategories = ["cs.AI"]\nbase_url = "{server.url}"\n'
        config.path.write_text(
            config.path.read_text().replace("[delivery]", arxiv + "\n[delivery]")
        )
        config = load_config(config.path)
        run(config, today=monday, fetcher=no_wait())

        server.route("/atom/cs.AI", lambda request: Reply(503))  # Tuesday: arXiv is down
        with pytest.raises(SourceError):
            run(config, today=tuesday, fetcher=no_wait())

        server.serve_bytes("/atom/cs.AI", repaired_listing())  # Wednesday's announcement
        server.serve_bytes("/list/cs.AI/recent", recent_cs_ai(tuesday, missed))
        server.route("/api/query", arxiv_api_answer)
        run(config, today=wednesday, fetcher=no_wait())

    store = Store(config.database)
    caught = store.papers_between(tuesday, tuesday)
    complete = store.days_with_papers("arxiv cs.AI", monday, wednesday)
    store.close()
    assert sorted(p.id for p in caught) == missed
    assert {p.abstract for p in caught} == {f"Abstract of {i}." for i in missed}
    assert complete == {monday, tuesday, wednesday}
