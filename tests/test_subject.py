"""The subject line (digest.subject): what a digest is about, in one header line."""

from __future__ import annotations

import dataclasses
import datetime as dt

from helpers import LINKS, make_digest, send, subscriber

from digest.models import Digest, Interests, Match, Paper, Subscriber
from digest.render import Renderer


def test_without_a_keyword_match_the_subject_names_the_commonest_matched_terms(
    renderer: Renderer, papers: list[Paper]
) -> None:
    matches = (
        Match(papers[0], 3.0, ("title: quantization", "abstract: robots")),
        Match(papers[1], 2.0, ("abstract: robots; title: llm",)),
        Match(papers[2], 1.0, ("abstract: quantization, robots",)),
    )
    digest = Digest(subscriber(), "2026-01-05", dt.date(2026, 1, 5), matches)
    assert (
        renderer.render(digest, LINKS).subject == "3 papers on robots and quantization — Mon 5 Jan"
    )
    one = dataclasses.replace(digest, matches=matches[:1])
    assert renderer.render(one, LINKS).subject == "1 paper on quantization and robots — Mon 5 Jan"


def test_the_subject_falls_back_to_the_subscribers_keywords(
    renderer: Renderer, papers: list[Paper]
) -> None:
    digest = make_digest(papers[:2], reasons=(), who=subscriber(keywords=("mamba", "ssm", "x")))
    assert renderer.render(digest, LINKS).subject == "2 papers on mamba and ssm — Mon 5 Jan"


def digest_with(who: Subscriber, papers: list[Paper], *reasons: tuple[str, ...]) -> Digest:
    matches = tuple(Match(paper, 1.0, why) for paper, why in zip(papers, reasons, strict=False))
    return Digest(who, "2026-01-06", dt.date(2026, 1, 6), matches)


def test_the_subject_names_the_subscribers_keywords_that_the_papers_matched(
    renderer: Renderer, papers: list[Paper]
) -> None:
    who = subscriber(keywords=("robot", "video generation", "Diffusion"))
    digest = digest_with(
        who,
        papers,
        ("title: Video Generation", "abstract: modeling, diffusion"),
        ("abstract: Diffusion, modeling, language",),
        ("keywords: diffusion models", "abstract: modeling"),
        ("abstract: video generation, language",),
    )
    # "diffusion" accounts for three papers; "video generation" for the fourth; the
    # description's "modeling" and "language" never make the subject.
    expected = "4 papers on Diffusion and video generation — Tue 6 Jan"
    assert renderer.render(digest, LINKS).subject == expected


def test_a_word_of_a_keyword_names_a_paper_that_matched_only_that_word(
    renderer: Renderer, papers: list[Paper]
) -> None:
    who = subscriber(keywords=("world model", "robotic manipulation"))
    digest = digest_with(
        who,
        papers,
        ("title: World Model", "abstract: world model"),
        ("abstract: Vision, agentic, manipulation",),
    )
    subject = renderer.render(digest, LINKS).subject
    assert subject == "2 papers on world model and manipulation — Tue 6 Jan"
    only_part = digest_with(who, papers, ("abstract: manipulation",))
    assert renderer.render(only_part, LINKS).subject == "1 paper on manipulation — Tue 6 Jan"


def test_a_followed_author_can_be_the_topic(renderer: Renderer, papers: list[Paper]) -> None:
    who = dataclasses.replace(
        subscriber(keywords=("mamba",)), interests=Interests(authors=("Albert Gu",))
    )
    digest = digest_with(who, papers, ("author: A. Gu",), ("author: Albert Gu", "title: SSM"))
    assert renderer.render(digest, LINKS).subject == "2 papers on Albert Gu — Tue 6 Jan"


def test_topics_never_say_the_same_thing_twice(renderer: Renderer, papers: list[Paper]) -> None:
    who = subscriber(keywords=("diffusion", "diffusion transformer", "stylization"))
    digest = digest_with(
        who,
        papers,
        ("title: Diffusion Transformer",),
        ("abstract: diffusion transformer",),
        ("title: Stylization", "abstract: diffusion"),
    )
    subject = renderer.render(digest, LINKS).subject
    assert subject == "3 papers on diffusion and stylization — Tue 6 Jan"


def header_lines(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(i for i, line in enumerate(head) if line.startswith(name + b":"))
    lines = [head[start]]
    for line in head[start + 1 :]:
        if not line.startswith((b" ", b"\t")):
            break
        lines.append(line)
    return lines


def test_the_subject_keeps_to_one_header_line_dropping_topics_that_do_not_fit(
    renderer: Renderer, papers: list[Paper]
) -> None:
    # Python folds a long Subject before an encoded word and leaves a space on both
    # lines, which readers show as two spaces: a subject that fits is never folded.
    who = subscriber(keywords=("mixture-of-experts", "small language models"))
    digest = digest_with(
        who, papers, ("title: Mixture-of-Experts",), ("abstract: small language models",)
    )
    raw, message = send(renderer, digest)
    assert header_lines(raw, b"Subject") == [
        b"Subject: 2 papers on mixture-of-experts =?utf-8?b?4oCU?= Tue 6 Jan"
    ]
    assert message["Subject"] == "2 papers on mixture-of-experts — Tue 6 Jan"
    short = subscriber(keywords=("moe", "slm"))
    digest = digest_with(short, papers, ("title: MoE",), ("abstract: SLM",))
    assert renderer.render(digest, LINKS).subject == "2 papers on moe and slm — Tue 6 Jan"
