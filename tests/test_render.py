"""The digest email: its parts, its headers, and what hostile paper text can and cannot do."""

from __future__ import annotations

import binascii
import dataclasses
import datetime as dt
import email
import email.policy
import re
import textwrap
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import css_inline
import pytest
from helpers import LINKS, SENDER, SENT_AT, make_digest, send, subscriber
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import Config
from digest.errors import DigestError
from digest.models import Digest, Link, Paper
from digest.pipeline import run
from digest.preview import preview
from digest.render import (
    EncodedLines,
    Renderer,
    _check_headers,
    builtin_templates,
    message_id_for,
    quoted_printable,
    wrap,
)
from digest.sanitize import clean_header_text, summary

MAX_HTML = 102 * 1024


def parts(message: EmailMessage) -> tuple[str, str]:
    plain, html = (part for part in message.iter_parts())
    return str(plain.get_content()), str(html.get_content())


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def hrefs(self) -> list[str]:
        return [attrs["href"] for tag, attrs in self.tags if tag == "a" and "href" in attrs]


def squash(text: str) -> str:
    return " ".join(text.split())


def test_the_message_is_multipart_alternative_with_text_before_html_both_utf8(
    renderer: Renderer, papers: list[Paper]
) -> None:
    _, message = send(renderer, make_digest(papers[:3]))
    assert message.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in message.iter_parts()]
    assert types == ["text/plain", "text/html"]
    assert [part.get_content_charset() for part in message.iter_parts()] == ["utf-8", "utf-8"]
    assert message["MIME-Version"] == "1.0"
    assert message["From"] == SENDER
    assert message["Date"].datetime == SENT_AT


def test_the_message_id_is_stable_per_subscriber_and_digest_and_well_formed(
    renderer: Renderer, papers: list[Paper]
) -> None:
    first = message_id_for("ada@example.org", "2026-01-05", "example.org")
    assert first == message_id_for("ada@example.org", "2026-01-05", "example.org")
    assert re.fullmatch(r"<[^@<>\s]+@[^@<>\s]+>", first)
    assert first.startswith("<digest.2026-01-05.")
    assert first != message_id_for("bob@example.org", "2026-01-05", "example.org")
    assert first != message_id_for("ada@example.org", "2026-01-06", "example.org")
    _, message = send(renderer, make_digest(papers[:1]))
    assert message["Message-ID"] == first


def test_a_message_id_refuses_a_domain_that_is_not_one() -> None:
    with pytest.raises(DigestError, match="domain"):
        message_id_for("ada@example.org", "2026-01-05", "bad domain>")


def test_list_headers_offer_https_and_mailto_unsubscribe_with_one_click_post(
    renderer: Renderer, papers: list[Paper]
) -> None:
    _, message = send(renderer, make_digest(papers[:2]))
    unsubscribe = str(message["List-Unsubscribe"])
    assert re.findall(r"<([^>]+)>", unsubscribe) == [
        LINKS.unsubscribe_https,
        LINKS.unsubscribe_mailto,
    ]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "<digest.papers.example.org>"


def test_a_non_ascii_name_and_subject_travel_as_encoded_words_in_ascii_headers(
    renderer: Renderer, papers: list[Paper]
) -> None:
    who = subscriber(name="Zoë Ådá-Łukasz")
    digest = make_digest(papers[:2], reasons=("title: difusión",), who=who)
    raw, message = send(renderer, digest)
    head = raw.split(b"\r\n\r\n", 1)[0]
    head.decode("ascii")  # raises if any header byte is not ASCII
    assert b"=?utf-8?" in head
    assert message["To"].addresses[0].display_name == "Zoë Ådá-Łukasz"
    assert message["To"].addresses[0].addr_spec == "ada@example.org"
    assert message["Subject"] == "2 papers on difusión — Mon 5 Jan"
    raw.decode("ascii")  # the bodies are quoted-printable: the whole message is 7-bit


def test_a_hostile_title_cannot_add_a_header_nor_markup(
    renderer: Renderer, papers: list[Paper]
) -> None:
    hostile = "A\r\nBcc: evil@x.test <script>alert(1)</script>"
    paper = dataclasses.replace(papers[0], title=hostile)
    digest = make_digest([paper], reasons=(f"title: {hostile}",))
    raw, message = send(renderer, digest)
    assert not re.search(rb"(?im)^bcc:", raw)
    assert message["Bcc"] is None
    assert len(message.get_all("Subject") or []) == 1
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    text, html = parts(message)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "onerror" not in html
    assert "javascript:" not in html
    assert "A Bcc: evil@x.test <script>alert(1)</script>" in squash(text)


def test_hostile_abstracts_and_links_never_become_tags_handlers_or_script_urls(
    renderer: Renderer, papers: list[Paper]
) -> None:
    paper = dataclasses.replace(
        papers[0],
        url="javascript:alert(1)",
        ai_summary=None,
        abstract='<img src=x onerror="alert(1)"> <a href="javascript:alert(2)">x</a>. More.',
        links=(
            Link("Code", "javascript:alert(3)"),
            Link("Data", "data:text/html;base64,PHNjcmlwdD4="),
            Link("Relative", "/papers/1"),
            Link("Spaces", "https://example.org/a b"),
            Link("PDF", "https://arxiv.org/pdf/2512.24615"),
        ),
    )
    _, message = send(renderer, make_digest([paper]))
    text, html = parts(message)
    tags = Tags(html)
    assert not [tag for tag, _ in tags.tags if tag in {"script", "img", "iframe", "object"}]
    assert not [name for _, attrs in tags.tags for name in attrs if name.startswith("on")]
    hrefs = tags.hrefs()
    assert all(href.startswith(("https://", "http://")) for href in hrefs)
    assert "https://arxiv.org/pdf/2512.24615" in hrefs
    assert not any("javascript" in href or "data:" in href for href in hrefs)
    assert "javascript:alert(3)" not in text and "data:text" not in text
    assert "&lt;img src=x" in html


def test_bidi_overrides_and_control_characters_are_stripped_everywhere(
    renderer: Renderer, papers: list[Paper]
) -> None:
    sneaky = "Safe\u202etxt.exe\u2066 title\u2028with\x00controls\x1b"
    paper = dataclasses.replace(papers[0], title=sneaky, authors=("Eve\u202e", "Bob\u2069"))
    digest = make_digest([paper], reasons=(f"title: {sneaky}",))
    _, message = send(renderer, digest)
    text, html = parts(message)
    for part in (text, html, str(message["Subject"])):
        assert not re.search("[\u202a-\u202e\u2066-\u2069\u2028\x00\x1b]", part)
    assert "Safe txt.exe title with controls" in squash(text)


def test_a_one_megabyte_abstract_is_cut_and_keeps_the_message_small(
    renderer: Renderer, papers: list[Paper]
) -> None:
    huge = "This sentence is long enough to matter. " * 26_000
    assert len(huge) > 1_000_000
    paper = dataclasses.replace(papers[0], abstract=huge, ai_summary=None)
    raw, message = send(renderer, make_digest([paper]))
    _, html = parts(message)
    assert len(html.encode()) < MAX_HTML
    assert len(raw) < MAX_HTML
    assert summary(paper) in squash(html)
    assert len(summary(paper)) <= 400


def test_fifteen_papers_with_long_abstracts_stay_under_gmails_clipping_size(
    renderer: Renderer, papers: list[Paper]
) -> None:
    long = [
        dataclasses.replace(p, abstract=p.abstract * 20, ai_summary=None, title=p.title * 2)
        for p in (papers * 2)[:15]
    ]
    rendered = renderer.render(make_digest(long), LINKS)
    assert rendered.html.count('class="paper-cell"') == 15
    assert len(rendered.html.encode()) < MAX_HTML


def test_text_lines_fit_78_columns_except_urls(renderer: Renderer, papers: list[Paper]) -> None:
    wordy = dataclasses.replace(
        papers[1],
        title="Supercalifragilistic" * 6 + " and a title long enough to need several lines " * 3,
        links=(*papers[1].links, Link("Long", "https://example.org/" + "x" * 120)),
    )
    text = renderer.render(make_digest([wordy, *papers[:4]]), LINKS).text
    long_lines = [line for line in text.splitlines() if len(line) > 78]
    assert long_lines  # the 140-character URL
    assert all(line.strip().startswith(("https://", "http://")) for line in long_lines)
    for line in text.splitlines():
        if "://" in line:
            assert line.strip().startswith(("https://", "http://")), line  # URLs stand alone


def test_every_title_and_link_of_the_html_is_in_the_text_part(
    renderer: Renderer, papers: list[Paper]
) -> None:
    rendered = renderer.render(make_digest(papers[:6]), LINKS)
    tags = Tags(rendered.html)
    text_lines = {line.strip() for line in rendered.text.splitlines()}
    hrefs = [unescape(href) for href in tags.hrefs()]
    assert len(hrefs) > 6 * 3
    assert LINKS.unsubscribe_https in hrefs and LINKS.private_feed in hrefs
    assert LINKS.archive in hrefs
    for href in hrefs:
        assert href in text_lines
    html_text = squash(" ".join(tags.text))
    for paper in papers[:6]:
        assert squash(paper.title) in html_text
        assert squash(paper.title) in squash(rendered.text)


def test_the_summary_is_whole_sentences_from_the_start_of_the_abstract(
    papers: list[Paper],
) -> None:
    for paper in papers:
        plain = dataclasses.replace(paper, ai_summary=None)
        abstract = squash(paper.abstract)
        cut = summary(plain)
        assert abstract.startswith(cut)
        assert len(cut) <= 400
        if len(abstract) > 300:
            assert cut.endswith((".", "!", "?")), cut
            following = abstract[len(cut) :].strip()
            assert following[:1].isupper() or following[:1].isdigit()
            next_end = re.search(r"[.!?](?= |$)", following)
            assert next_end is None or len(cut) + 1 + next_end.end() > 300


def test_the_summary_does_not_stop_at_abbreviations() -> None:
    abstract = (
        "We evaluate methods, e.g. transformers and state space models, on long inputs. "
        "Results improve by a wide margin across every benchmark we tried in the study. "
    ) * 5
    paper = Paper("x1", "T", abstract, dt.date(2026, 1, 5), "feed", "https://example.org/x")
    cut = summary(paper)
    assert len(cut) > 200
    assert cut.endswith(("inputs.", "study."))


def test_the_summary_prefers_the_ai_summary_and_falls_back_to_the_abstract(
    papers: list[Paper],
) -> None:
    with_ai = next(p for p in papers if p.ai_summary)
    assert summary(with_ai) == squash(with_ai.ai_summary or "")
    assert summary(dataclasses.replace(with_ai, ai_summary="  ")).startswith(
        squash(with_ai.abstract)[:40]
    )


def test_a_first_sentence_far_too_long_is_cut_at_a_word_with_an_ellipsis() -> None:
    paper = Paper("x", "T", "word " * 500, dt.date(2026, 1, 5), "feed", "https://example.org")
    cut = summary(paper)
    assert cut.endswith("…") and len(cut) <= 300
    assert cut[:-1].endswith("word")


def test_css_is_inlined_when_the_renderer_is_built_and_never_per_message(
    monkeypatch: pytest.MonkeyPatch, papers: list[Paper]
) -> None:
    calls: list[str] = []
    real_inliner, real_fragment = css_inline.CSSInliner, css_inline.inline_fragment

    def counting_inliner(*args: Any, **kwargs: Any) -> Any:
        calls.append("document")
        return real_inliner(*args, **kwargs)

    def counting_fragment(*args: Any, **kwargs: Any) -> Any:
        calls.append("fragment")
        return real_fragment(*args, **kwargs)

    monkeypatch.setattr(css_inline, "CSSInliner", counting_inliner)
    monkeypatch.setattr(css_inline, "inline_fragment", counting_fragment)
    monkeypatch.setattr(css_inline, "inline", counting_fragment)
    renderer = Renderer(title="Trending papers")
    assert "document" in calls and "fragment" in calls  # email.html.j2 and _paper.html.j2
    calls.clear()
    first = renderer.render(make_digest(papers[:3]), LINKS).html
    renderer.render(make_digest(papers[3:6]), LINKS)
    assert calls == []
    cells = [attrs for tag, attrs in Tags(first).tags if attrs.get("class") == "paper-cell"]
    assert len(cells) == 3 and all("padding" in attrs.get("style", "") for attrs in cells)
    assert "<link" not in first


def test_the_html_is_one_600px_column_with_a_hidden_preheader_first_and_dark_mode(
    renderer: Renderer, papers: list[Paper]
) -> None:
    html = renderer.render(make_digest(papers[:2]), LINKS).html
    body = html[html.index("<body") :]
    first_element = Tags(body[body.index(">") + 1 :]).tags[0]
    assert first_element[0] == "div" and "display: none" in first_element[1]["style"]
    preheader = body[: body.index("</div>")]
    assert "2 papers on agent and diffusion" in preheader
    assert "max-width: 600px" in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert 'role="presentation"' in html
    assert html.index('<meta charset="utf-8">') < 1024


def test_the_header_and_footer_say_what_this_is_and_how_to_leave(
    renderer: Renderer, papers: list[Paper]
) -> None:
    who = subscriber(keywords=("state space model", "mamba", "linear attention", "moe"))
    rendered = renderer.render(make_digest(papers[:4], who=who), LINKS)
    html_text = squash(" ".join(Tags(rendered.html).text))
    for part in (squash(rendered.text), html_text):
        assert "Trending papers" in part
        assert "Monday 5 January 2026" in part
        assert "4 papers" in part
        assert "state space model, mamba, linear attention and more" in part
    assert "Unsubscribe" in html_text and "View in browser" in html_text
    assert "Why: title: agent; abstract: diffusion" in html_text


def test_authors_show_the_first_three_then_et_al(renderer: Renderer, papers: list[Paper]) -> None:
    many = dataclasses.replace(papers[0], authors=("A One", "B Two", "C Three", "D Four"))
    few = dataclasses.replace(papers[1], authors=("E Five", "F Six"))
    text = renderer.render(make_digest([many, few]), LINKS).text
    assert "A One, B Two, C Three et al." in text
    assert "D Four" not in text
    assert "E Five, F Six\n" in text


def test_an_empty_digest_says_nothing_matched(renderer: Renderer) -> None:
    digest = Digest(subscriber(), "2026-01-05", dt.date(2026, 1, 5), ())
    rendered = renderer.render(digest, LINKS)
    assert rendered.subject == "No new papers on agent and diffusion — Mon 5 Jan"
    assert "Nothing new matched" in rendered.text and "Nothing new matched" in rendered.html


def test_a_weekly_digest_is_dated_by_its_week(renderer: Renderer, papers: list[Paper]) -> None:
    digest = make_digest(papers[:2], key="2026-W02")
    rendered = renderer.render(digest, LINKS)
    assert rendered.subject.endswith("— week of 5 Jan")
    assert "Week of Monday 5 January 2026" in rendered.text


def test_clean_header_text_keeps_one_bounded_line() -> None:
    assert clean_header_text("a\r\nb\tc\u2028d\u202ee  f") == "a b c d e f"
    long = clean_header_text("word " * 100, limit=50)
    assert len(long) <= 50 and long.endswith("…")
    assert clean_header_text("x" * 200).endswith("…")


def test_message_refuses_a_naive_date_and_a_header_breaking_unsubscribe_url(
    renderer: Renderer, papers: list[Paper]
) -> None:
    digest = make_digest(papers[:1])
    rendered = renderer.render(digest, LINKS)
    kwargs: dict[str, Any] = {
        "sender": SENDER,
        "message_id": "<a@b>",
        "list_id": "digest.example.org",
    }
    with pytest.raises(DigestError, match="time zone"):
        renderer.message(digest, rendered, LINKS, date=dt.datetime(2026, 1, 5), **kwargs)
    bad = dataclasses.replace(LINKS, unsubscribe_https="https://x.test/u>\r\nBcc: y@z")
    with pytest.raises(DigestError, match="List-Unsubscribe"):
        renderer.message(digest, rendered, bad, date=SENT_AT, **kwargs)


def test_user_templates_come_first_and_can_include_the_builtins(
    tmp_path: Path, papers: list[Paper]
) -> None:
    (tmp_path / "email.txt.j2").write_text("CUSTOM {{ subject }}\n", "utf-8")
    (tmp_path / "_paper.html.j2").write_text(
        '<div class="mine">{% include "default:_paper.html.j2" %}</div>\n', "utf-8"
    )
    (tmp_path / "style.css").write_text(
        (builtin_templates() / "style.css").read_text("utf-8") + ".mine { color: #123456; }\n",
        "utf-8",
    )
    rendered = Renderer(title="T", templates=tmp_path).render(make_digest(papers[:2]), LINKS)
    assert rendered.text == "CUSTOM 2 papers on agent and diffusion — Mon 5 Jan\n"
    assert rendered.html.count('<div class="mine" style="color: #123456;">') == 2
    assert rendered.html.count('class="paper-cell"') == 2


def test_a_template_the_css_inliner_would_mangle_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "email.html.j2").write_text(
        '<html><body><p class="why" style="{{ subject }}">x</p></body></html>\n', "utf-8"
    )
    with pytest.raises(DigestError, match=r"email\.html\.j2"):
        Renderer(title="T", templates=tmp_path)


def test_a_missing_templates_folder_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(DigestError, match="does not exist"):
        Renderer(title="T", templates=tmp_path / "nope")


def test_a_template_error_names_the_template_and_line(tmp_path: Path, papers: list[Paper]) -> None:
    (tmp_path / "email.txt.j2").write_text("fine\n{% if %}\n", "utf-8")
    with pytest.raises(DigestError, match=r"email\.txt\.j2, line 2"):
        Renderer(title="T", templates=tmp_path)
    (tmp_path / "email.txt.j2").write_text("{{ no_such_value }}\n", "utf-8")
    renderer = Renderer(title="T", templates=tmp_path)
    with pytest.raises(DigestError, match="no_such_value"):
        renderer.render(make_digest(papers[:1]), LINKS)


def test_no_builtin_template_marks_anything_safe() -> None:
    paths = [path for path in builtin_templates().rglob("*") if path.is_file()]
    assert len(paths) >= 8  # the email's templates and the archive's
    for path in paths:
        assert "|safe" not in path.read_text("utf-8").replace(" ", ""), path.name


def test_emoji_and_non_latin_text_arrive_intact_in_both_parts_and_the_headers(
    renderer: Renderer, papers: list[Paper]
) -> None:
    title = "Ærøskøbing: 大规模模型 🚀 for Ελληνικά and العربية 👩\u200d🔬"
    authors = ("李雷", "Zoë Ådá", "Анна Каренина", "محمد")
    paper = dataclasses.replace(papers[0], title=title, authors=authors)
    who = subscriber(name="Łukasz 李", keywords=("模型",))
    raw, message = send(renderer, make_digest([paper], reasons=("title: 模型",), who=who))
    text, html = parts(message)
    for part in (squash(text), squash(unescape(" ".join(Tags(html).text)))):
        assert title in part
        assert "李雷, Zoë Ådá, Анна Каренина et al." in part
    assert message["Subject"] == "1 paper on 模型 — Mon 5 Jan"
    assert message["To"].addresses[0].display_name == "Łukasz 李"
    raw.decode("ascii")


def test_a_paper_without_a_title_shows_its_cleaned_id(
    renderer: Renderer, papers: list[Paper]
) -> None:
    paper = dataclasses.replace(papers[0], title=" \u202e ", id="feed:\r\nBcc: x@evil.test")
    _, message = send(renderer, make_digest([paper]))
    text, html = parts(message)
    assert "feed: Bcc: x@evil.test" in text and "feed: Bcc: x@evil.test" in html
    assert message["Bcc"] is None


def test_preview_writes_the_email_as_html_text_and_eml_that_agree(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config()
    run(config, today=dt.date(2026, 1, 5))
    written = preview(config, "vision", day=dt.date(2026, 1, 5), output=tmp_path / "out")
    assert sorted(path.suffix for path in written) == [".eml", ".html", ".txt"]
    files = {path.suffix: path.read_bytes() for path in written}
    message = email.message_from_bytes(files[".eml"], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"].addresses[0].addr_spec == "vision@example.org"
    text, html = (part.replace("\r\n", "\n").rstrip("\n") for part in parts(message))
    assert html == files[".html"].decode("utf-8").rstrip("\n")
    assert text == files[".txt"].decode("utf-8").rstrip("\n")
    count = html.count('class="paper-cell"')
    assert count >= 1
    assert message["Subject"].startswith(f"{count} paper")


def test_an_encoded_word_in_paper_text_cannot_smuggle_a_header_line(
    renderer: Renderer, papers: list[Paper]
) -> None:
    # The encoded word is "\r\nBcc: x@e.t": after cleaning it is plain ASCII, but the
    # header parser would decode it, and Python before 3.11.10 writes CR/LF out as is.
    smuggled = "=?utf-8?q?=0D=0ABcc:_x@e.t?="
    who = subscriber(name=f"Ada {smuggled}", keywords=(smuggled,))
    digest = make_digest(papers[:1], reasons=(f"title: {smuggled}",), who=who)
    raw, message = send(renderer, digest)
    assert not re.search(rb"(?im)^bcc:", raw)
    assert message["Bcc"] is None
    assert "\n" not in str(message["Subject"]) and "\n" not in str(message["To"])
    assert message["Subject"] == "1 paper on = ?utf-8?q?=0D=0ABcc:_x@e.t?= — Mon 5 Jan"
    assert message["To"].addresses[0].display_name == "Ada = ?utf-8?q?=0D=0ABcc:_x@e.t?="


def test_a_message_whose_headers_would_not_survive_serialising_is_refused() -> None:
    # The second line of defence, should text ever reach a header uncleaned.
    msg = EmailMessage()
    msg["To"] = Address("Ada =?utf-8?q?=0D=0ABcc:_x@e.t?=", "ada", "example.org")
    msg["Subject"] = "fine"
    with pytest.raises(DigestError, match="would not keep its headers"):
        _check_headers(msg, "2026-01-05")
    safe = EmailMessage()
    safe["To"] = Address("Zoë", "zoe", "example.org")
    safe["Subject"] = "2 papers on difusión — Mon 5 Jan"
    _check_headers(safe, "2026-01-05")


def test_a_name_that_needs_quoting_is_written_by_the_email_package_and_reads_back(
    renderer: Renderer, papers: list[Paper]
) -> None:
    for name in ('Lovelace, Ada (A.) "Countess"', "Zoë, Ådá", "Ada\\Byron"):
        _, message = send(renderer, make_digest(papers[:1], who=subscriber(name=name)))
        [address] = message["To"].addresses
        assert (address.display_name, address.addr_spec) == (name, "ada@example.org")
        assert list(message.keys())[:3] == ["From", "To", "Subject"]


def test_the_pipeline_sends_the_bytes_the_message_method_describes(
    renderer: Renderer, papers: list[Paper]
) -> None:
    digest = make_digest(papers[:3], who=subscriber(name="Łukasz 李"))
    rendered = renderer.render(digest, LINKS)
    kwargs: dict[str, Any] = {
        "sender": SENDER,
        "message_id": message_id_for("ada@example.org", digest.key, "example.org"),
        "list_id": "digest.papers.example.org",
        "date": SENT_AT,
    }
    data = renderer.message_bytes(digest, rendered, LINKS, **kwargs)
    assert data == renderer.message_bytes(digest, rendered, LINKS, **kwargs)  # deterministic
    assert data == renderer.message(digest, rendered, LINKS, **kwargs).as_bytes(
        policy=email.policy.SMTP
    )
    data.decode("ascii")
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert not parsed.defects
    text, html = parts(parsed)
    assert text.replace("\r\n", "\n") == rendered.text
    assert html.replace("\r\n", "\n").rstrip("\n") == rendered.html.rstrip("\n")
    assert parsed["List-Unsubscribe"] == (
        f"<{LINKS.unsubscribe_https}>, <{LINKS.unsubscribe_mailto}>"
    )


def test_a_message_id_that_is_not_one_is_refused(renderer: Renderer, papers: list[Paper]) -> None:
    digest = make_digest(papers[:1])
    rendered = renderer.render(digest, LINKS)
    with pytest.raises(DigestError, match="Message-ID"):
        renderer.message_bytes(
            digest,
            rendered,
            LINKS,
            sender=SENDER,
            message_id="<a@b>\r\nBcc: <x@e.t>",
            list_id="digest.example.org",
            date=SENT_AT,
        )


def test_a_paper_changed_under_the_same_id_is_shown_as_it_is_now(
    renderer: Renderer, papers: list[Paper]
) -> None:
    before = renderer.render(make_digest(papers[:1]), LINKS)
    changed = dataclasses.replace(papers[0], title="A Completely Retitled Paper")
    after = renderer.render(make_digest([changed]), LINKS)
    assert papers[0].title.split(":")[0] in before.text
    assert "A Completely Retitled Paper" in after.text and "Retitled" not in before.text


LINE_PIECES = st.sampled_from(
    ["a", "word", " ", "  ", "\t", "=", ".", "From ", "é", "—", "😀", "x" * 80, "\r", "\n", "\r\n"]
)
KNOWN_LINES = EncodedLines()  # shared by the examples, so that reused lines are exercised


@given(st.lists(LINE_PIECES, max_size=60).map("".join))
@settings(max_examples=300, deadline=None)
def test_quoted_printable_line_by_line_is_what_encoding_the_whole_part_gives(text: str) -> None:
    data = text.encode("utf-8")
    if b"\r" in data or not data.endswith(b"\n"):
        data = b"\n".join(data.splitlines()) + b"\n"
    whole = binascii.b2a_qp(data, quotetabs=False, istext=True).replace(b"\n", b"\r\n")
    assert quoted_printable(text, KNOWN_LINES) == whole
    assert quoted_printable(text) == whole


WORDS = st.sampled_from(
    ["a", "bb", "ccc-dd", "x" * 70, "y" * 90, "https://example.org/" + "u" * 90, "é", "3."]
)


@given(
    st.lists(st.tuples(WORDS, st.sampled_from([" ", "  ", "\t", "\n", "\u00a0"]))),
    st.sampled_from(["", "  ", "    "]),
    st.sampled_from([None, "", "1.  ", "12. "]),
)
@settings(max_examples=300, deadline=None)
def test_wrap_fills_lines_as_textwrap_does_and_never_breaks_a_url(
    words: list[tuple[str, str]], indent: str, first: str | None
) -> None:
    text = "".join(word + space for word, space in words)
    room = 78 - max(len(indent), len(first or ""))
    pieces = []  # what `wrap` promises beyond textwrap: long words cut, URLs whole
    for word in text.split():
        if len(word) > room and not word.startswith("https://"):
            pieces.extend(word[i : i + room] for i in range(0, len(word), room))
        else:
            pieces.append(word)
    expected = textwrap.fill(
        " ".join(pieces),
        width=78,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    assert wrap(text, indent, first) == expected
