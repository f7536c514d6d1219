"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import json
import re
import socket
from collections.abc import Iterator, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from digest.analysis import CorpusStats, PaperText
from digest.models import Digest, Interests, Link, Match, Paper, Subscriber
from digest.postings import PaperIndex
from digest.profile import Compiler, Profile
from digest.profile_rows import RowCompiler
from digest.render import DigestLinks, Renderer, message_id_for
from digest.sources.huggingface import parse_api
from digest.text import Token
from digest.weights import WEIGHTS

FIXTURES = Path(__file__).parent / "fixtures"
MONTH = FIXTURES / "hf" / "api-month"
PAPER_URL = re.compile(r"https://huggingface\.co/papers/(\d{4}\.\d{4,5})")


def free_port() -> int:
    """A port nothing listens on (aiosmtpd cannot bind port 0; a refused connection needs one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _delivery_order(file: Path) -> tuple[int, int, str]:
    """Maildir names start "<seconds>.M<microseconds>P<pid>…" with no zero padding, so
    they sort by name wrongly within a second; sort by the time they encode."""
    seconds, _, rest = file.name.partition(".")
    micro = re.match(r"M(\d+)", rest)
    return int(seconds), int(micro.group(1)) if micro else 0, file.name


def maildir_messages(path: Path) -> list[email.message.EmailMessage]:
    """The messages of a Maildir in the order they were delivered."""
    messages = []
    for file in sorted((path / "new").iterdir(), key=_delivery_order):
        message = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        messages.append(message)
    return messages


def month_papers(day: str) -> list[Paper]:
    """The papers of one captured January 2026 day, as the Hugging Face source reads them."""
    return parse_api((MONTH / f"{day}.json").read_bytes(), day=dt.date.fromisoformat(day))


def paper_ids(message: email.message.EmailMessage) -> list[str]:
    text = message.get_body(("plain",))
    assert text is not None
    return list(dict.fromkeys(PAPER_URL.findall(text.get_content())))


def digests_by_key(maildir: Path | None) -> dict[str, dict[str, list[str]]]:
    """Per recipient, the paper ids of each digest, by the digest key in its Message-ID."""
    assert maildir is not None
    found: dict[str, dict[str, list[str]]] = {}
    for message in maildir_messages(maildir):
        key = message["Message-ID"].split(".")[1]
        found.setdefault(message["To"].addresses[0].addr_spec, {})[key] = paper_ids(message)
    return found


def subscriber_for(
    slug: str = "ada",
    *,
    keywords: Sequence[str] = (),
    description: str = "",
    exclude: Sequence[str] = (),
    authors: Sequence[str] = (),
    liked: Sequence[str] = (),
    max_papers: int = 15,
    min_upvotes: int = 0,
) -> Subscriber:
    """A subscriber as a file would give it, for matching tests: `{slug}@example.org`."""
    return Subscriber(
        slug=slug,
        email=f"{slug}@example.org",
        interests=Interests(
            description=description,
            keywords=tuple(keywords),
            exclude=tuple(exclude),
            authors=tuple(authors),
            liked=tuple(liked),
        ),
        max_papers=max_papers,
        min_upvotes=min_upvotes,
    )


def corpus_papers(day: dt.date = dt.date(2026, 1, 5)) -> list[Paper]:
    """The papers of the Hugging Face API captures and the relevance corpus, once each."""
    papers: dict[str, Paper] = {}
    for path in sorted(FIXTURES.glob("hf/api/*.json")):
        for paper in parse_api(path.read_bytes(), day=day):
            papers.setdefault(paper.id, paper)
    with (FIXTURES / "corpus" / "seed_entries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            papers.setdefault(
                item["id"], Paper(item["id"], item["title"], item["abstract"], day, "corpus", "")
            )
    return list(papers.values())


def long_phrase(texts: list[PaperText]) -> str:
    """Five words in a row of a title, as written: longer than the index holds."""
    title = next(t.fields["title"] for t in texts if len(t.fields["title"].tokens) >= 6)
    return title.text[title.tokens[0].start : title.tokens[4].end]


def compiler_for(texts: list[PaperText], stats: CorpusStats) -> tuple[PaperIndex, RowCompiler]:
    """The papers indexed, and a compiler of profile rows over them (the default weights)."""
    index = PaperIndex(texts, Profile({}, abstract_length=stats.abstract_length).evidence)
    return index, RowCompiler(index, stats, WEIGHTS, Compiler(stats, WEIGHTS))


def phrases(toks: Sequence[Token], max_len: int) -> Iterator[tuple[str, int, int]]:
    """Every run of 1..`max_len` consecutive tokens within one clause, as (term, first,
    last), the plain way: the reference `digest.analysis.grams` is held to."""
    for i, first in enumerate(toks):
        words = [first.stem]
        yield first.stem, i, i
        for j in range(i + 1, min(i + max_len, len(toks))):
            if toks[j].clause != first.clause:
                break
            words.append(toks[j].stem)
            yield " ".join(words), i, j


# The email of a digest: a day of real papers, its links and the message around it.

DAY_FILE = MONTH / "2026-01-05.json"
LINKS = DigestLinks(
    unsubscribe_https="https://papers.example.org/unsubscribe/tok123",
    unsubscribe_mailto="mailto:digest@example.org?subject=unsubscribe",
    private_feed="https://papers.example.org/feeds/private/abc.atom",
    archive="https://papers.example.org/archive/2026-01-05.html",
)
SENDER = "Paper digest <digest@example.org>"
SENT_AT = dt.datetime(2026, 1, 5, 7, 30, tzinfo=dt.UTC)


def paper_from_item(item: dict[str, Any]) -> Paper:
    """The few fields of a Hugging Face API item the email shows, mapped by hand."""
    raw = item["paper"]
    pid = raw["id"]
    links = [
        Link("arXiv", f"https://arxiv.org/abs/{pid}"),
        Link("PDF", f"https://arxiv.org/pdf/{pid}"),
    ]
    if raw.get("githubRepo"):
        links.append(Link("Code", raw["githubRepo"]))
    if raw.get("projectPage"):
        links.append(Link("Project page", raw["projectPage"]))
    return Paper(
        id=pid,
        title=raw["title"],
        abstract=raw["summary"],
        day=dt.date.fromisoformat(raw["submittedOnDailyAt"][:10]),
        source="huggingface",
        url=f"https://huggingface.co/papers/{pid}",
        authors=tuple(author["name"] for author in raw["authors"]),
        upvotes=raw["upvotes"],
        comments=item["numComments"],
        ai_summary=raw.get("ai_summary"),
        links=tuple(links),
    )


def subscriber(name: str = "Ada", keywords: tuple[str, ...] = ("agent", "diffusion")) -> Subscriber:
    """The reader of the email tests: Ada, asking for `keywords`."""
    return Subscriber(
        slug="ada", email="ada@example.org", name=name, interests=Interests(keywords=keywords)
    )


def make_digest(
    papers: list[Paper],
    reasons: tuple[str, ...] = ("title: agent", "abstract: diffusion"),
    who: Subscriber | None = None,
    key: str = "2026-01-05",
) -> Digest:
    """Each paper chosen for the same `reasons`."""
    matches = tuple(Match(paper, 1.0, reasons) for paper in papers)
    return Digest(who or subscriber(), key, dt.date(2026, 1, 5), matches)


def send(renderer: Renderer, digest: Digest) -> tuple[bytes, EmailMessage]:
    """The digest's message as it goes out (bytes) and as a mail reader parses them."""
    rendered = renderer.render(digest, LINKS)
    message = renderer.message(
        digest,
        rendered,
        LINKS,
        sender=SENDER,
        message_id=message_id_for(digest.subscriber.email, digest.key, "example.org"),
        list_id="digest.papers.example.org",
        date=SENT_AT,
    )
    raw = message.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return raw, parsed
