"""Property tests: whatever a source puts in a title, an author list or an abstract, the
email keeps exactly the headers we set, no HTML we write can run script, and every feed
still parses and validates."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import feedparser
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from digest.archive import archive_pages, day_path
from digest.feeds import public_feeds, subscriber_feed
from digest.models import Digest, Interests, Link, Match, Paper, Subscriber
from digest.render import DigestLinks, Renderer, message_id_for

BASE = "https://papers.example.org"
LINKS = DigestLinks(
    unsubscribe_https=f"{BASE}/unsubscribe/tok123",
    unsubscribe_mailto="mailto:digest@example.org?subject=unsubscribe",
    private_feed=f"{BASE}/feeds/private/abc.atom",
    archive=f"{BASE}/archive/2026-01-05.html",
)
HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
]
SCHEMA = etree.RelaxNG(etree.parse(str(Path(__file__).parent / "fixtures/schemas/atom.rng")))
RENDERER = Renderer(title="Trending papers")

# What hostile or merely unusual paper text looks like, glued together at random.
FRAGMENTS = [
    "<script>alert(1)</script>",
    "</title><script>",
    '<img src=x onerror="alert(1)">',
    "<a href='javascript:alert(1)'>x</a>",
    'onload="x()"',
    "javascript:alert(1)",
    "\r\nBcc: victim@evil.test",
    "\nSubject: hi",
    "\r\n\r\n<html>",
    "=?utf-8?b?QmNjOiB4QGV2aWwudGVzdA==?=",
    "=?utf-8?b?DQpCY2M6IHhAZXZpbC50ZXN0DQo=?=",  # "\r\nBcc: x@evil.test\r\n", encoded
    "=?utf-8?q?=0D=0ABcc:_x@evil.test?=",
    "\u202etxt.exe",
    "\u2066\u2069\u200f",
    "\x00\x08\x1b\x7f\x85",
    "\ud800",
    "\ufeff\ufffe",
    "]]>",
    "&amp;&lt;&#0;",
    "{{ 7*7 }}{% raw %}",
    "👩\u200d🔬🚀",
    "李雷",
    "Ærøskøbing",
    "محمد",
    "e.g. ",
    ". ",
    " ",
]
hostile_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=12
).map("".join)


@st.composite
def papers(draw: st.DrawFn) -> Paper:
    return Paper(
        id=draw(st.sampled_from(["2601.00001", "feed:x\r\nBcc: y", "\u202e"])),
        title=draw(hostile_text),
        abstract=draw(hostile_text),
        day=dt.date(2026, 1, 5),
        source="huggingface",
        url=draw(st.sampled_from(["https://huggingface.co/papers/1", "javascript:x", "/rel"])),
        authors=tuple(draw(st.lists(hostile_text, max_size=5))),
        upvotes=draw(st.integers(0, 10_000)),
        comments=draw(st.integers(0, 100)),
        ai_summary=draw(st.one_of(st.none(), hostile_text)),
        links=(Link(draw(hostile_text), draw(st.sampled_from(["https://x.org/a", "data:x"]))),),
    )


def digest_of(items: list[Paper], reasons: str) -> Digest:
    who = Subscriber(
        slug="ada", email="ada@example.org", name="Ada", interests=Interests(keywords=("x",))
    )
    matches = tuple(Match(paper, 1.0, (f"title: {reasons}",)) for paper in items)
    return Digest(who, "2026-01-05", dt.date(2026, 1, 5), matches)


def assert_inert(html: str, *, relative_links: bool = False) -> None:
    """No element or attribute of the page can run script; links are absolute http(s)
    (or, on archive pages, relative links between them)."""
    page = BeautifulSoup(html, "lxml")
    assert page.find_all(["script", "iframe", "object", "embed", "img", "form"]) == []
    for tag in page.find_all(True):
        for name, value in tag.attrs.items():
            assert not name.lower().startswith("on"), (tag.name, name)
            if name.lower() in {"href", "src", "action", "formaction"}:
                link = str(value)
                relative = relative_links and ":" not in link and not link.startswith("/")
                assert link.startswith(("https://", "http://")) or relative, link


fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
quick = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(st.lists(papers(), min_size=1, max_size=3), hostile_text)
def test_the_message_has_exactly_our_headers_and_inert_html(
    items: list[Paper], reasons: str
) -> None:
    digest = digest_of(items, reasons)
    rendered = RENDERER.render(digest, LINKS)
    message = RENDERER.message(
        digest,
        rendered,
        LINKS,
        sender="Paper digest <digest@example.org>",
        message_id=message_id_for("ada@example.org", digest.key, "example.org"),
        list_id="digest.papers.example.org",
        date=dt.datetime(2026, 1, 5, 7, tzinfo=dt.UTC),
    )
    raw = message.as_bytes(policy=email.policy.SMTP)
    raw.decode("ascii")  # 7-bit clean: nothing to re-encode, nothing smuggled
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert list(parsed.keys()) == HEADERS
    assert not parsed.defects
    subject = str(parsed["Subject"])
    assert subject == rendered.subject and "\n" not in subject and "\r" not in subject
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    html_part = parsed.get_body(("html",))
    assert html_part is not None
    assert_inert(html_part.get_content())


@fast
@given(st.lists(papers(), min_size=1, max_size=3), hostile_text)
def test_every_feed_still_parses_and_validates(items: list[Paper], reasons: str) -> None:
    atom, rss = public_feeds(items, title="Trending papers", base_url=BASE)
    private = subscriber_feed(
        [digest_of(items, reasons)], title="T", base_url=BASE, feed_path="feeds/private/t.atom"
    )
    for data in (atom, rss, private):
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert len(parsed.entries) >= 1
    for data in (atom, private):
        assert SCHEMA.validate(etree.fromstring(data)), SCHEMA.error_log.last_error
    for item in etree.fromstring(rss).iter("description"):
        assert_inert(item.text or "")


@quick
@given(st.lists(papers(), min_size=1, max_size=3))
def test_archive_pages_stay_inert(items: list[Paper]) -> None:
    pages = archive_pages(items, title="T", base_url=BASE)
    for path in (day_path(dt.date(2026, 1, 5)), "archive/index.html", "index.html"):
        assert_inert(pages[path].decode("utf-8"), relative_links=True)
