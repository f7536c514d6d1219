"""One run, start to finish: fetch → store → select → match → render → queue → feeds → send.

`run()` is what `digest run`, `digest demo` and the scheduler call. It is safe to repeat:
the catch-up window, the ledger and the outbox make a second run for the same date send
nothing, and a run after a failure pick up what the failed one missed.

A run of more than one batch of digests sends while it renders: a forked courier
(`deliver.Courier`) drains each batch as soon as it is queued.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from digest.analysis import analyse_all, collector_paused, count_terms, recount
from digest.archive import INDEX_PATH, day_path, write_archive
from digest.config import Config
from digest.deliver import Courier, DeliveryReport, drain_outbox, open_transport
from digest.errors import SourceError
from digest.feeds import (
    EntryText,
    public_feeds,
    remove_stale_temporaries,
    subscriber_feed,
    write_atomic_many,
)
from digest.fetch import Fetcher
from digest.index import Request, select_many
from digest.lock import run_lock
from digest.match import CorpusStats, analyse
from digest.models import Digest, Match, Paper, Subscriber
from digest.render import DigestLinks, Renderer, message_id_for
from digest.sources import fetch_papers
from digest.store import DeliveryItem, DigestRecord, OutboxEntry, Store
from digest.tokens import load_secret, token

log = logging.getLogger(__name__)

MAX_CATCH_UP_DAYS = 14
PUBLIC_FEED_DAYS = 30
PRIVATE_FEED_DIGESTS = 30
# Digests queued per transaction, and private feeds rebuilt per store query: one commit or
# query per subscriber dominates a run of thousands; batches keep memory flat.
BATCH = 500
FIRST_BATCH = 50  # what a courier is given first, so that sending starts at once
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SourceOutcome:
    name: str
    days: tuple[dt.date, ...]
    papers: int
    error: SourceError | None = None


@dataclass(frozen=True)
class Planned:
    """A digest this run queued (or, in a dry run, would queue)."""

    email: str
    key: str
    paper_ids: tuple[str, ...]


@dataclass(frozen=True)
class RunResult:
    run_date: dt.date
    days: tuple[dt.date, ...]
    sources: tuple[SourceOutcome, ...]
    planned: tuple[Planned, ...] = ()
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    dry_run: bool = False


def run(
    config: Config,
    *,
    today: dt.date | None = None,
    dry_run: bool = False,
    fetcher: Fetcher | None = None,
    locked: bool = False,
) -> RunResult:
    """Run the whole pipeline once for `today` (default: today in the configured zone).
    `locked`: the caller holds `run_lock` already (the CLI takes it before importing this
    module, so a second run gives up at once).

    Raises `SourceError` when a source fails: if every source failed nothing is queued or
    sent; otherwise the others' papers go out and the failed source's days are caught up
    by the next run. Raises `LockHeld` when another run is going on, `DeliveryError` when
    the transport is unusable (the digests stay queued for the next run).
    """
    today = today or config.today()
    with contextlib.nullcontext() if locked else run_lock(config.data_dir):
        store = Store(config.database)
        try:
            return _run_locked(config, store, today, dry_run, fetcher)
        finally:
            store.close()


def _run_locked(
    config: Config, store: Store, today: dt.date, dry_run: bool, fetcher: Fetcher | None
) -> RunResult:
    now = dt.datetime.now(dt.UTC)
    run_id = None if dry_run else store.start_run(today, now)
    status, message = "failed", "interrupted"
    try:
        outcomes = fetch_all(config, store, today, fetcher, now)
        failed = [outcome.error for outcome in outcomes if outcome.error]
        healthy = [outcome for outcome in outcomes if not outcome.error]
        if not healthy:
            # Each failure was logged as it happened; the first one is the run's error.
            raise failed[0]
        days = _span(min(outcome.days[0] for outcome in healthy), today)
        secret = load_secret(config.data_dir)
        renderer = Renderer(title=config.title, templates=config.templates)
        replay = store.decided(today)
        digests = [] if replay else plan_digests(config, store, today, days[0])
        planned = tuple(
            Planned(d.subscriber.email, d.key, tuple(m.paper.id for m in d.matches))
            for d in digests
        )
        if dry_run:
            return RunResult(today, days, outcomes, planned, dry_run=True)
        courier = None
        if len(digests) > BATCH:  # send the first batch while rendering the next
            courier = Courier(config.database, config.delivery, config.sender, now)
        with courier or contextlib.nullcontext():
            queued = courier.queued if courier else None
            queue_digests(config, store, renderer, secret, digests, now, queued)
            write_feeds(config, store, secret, {d.subscriber.email for d in digests}, today=today)
            status, message = "partial" if failed else "ok", f"{len(digests)} digests queued"
        report = courier.report if courier else send_queued(config, store, now)
        message += f"; sent {report.sent}, deferred {report.deferred}, failed {report.failed}"
        if failed:
            message += f"; {failed[0]}"
            raise failed[0]
        return RunResult(today, days, outcomes, planned, report)
    except Exception as error:
        if status == "failed":
            message = str(error)
        raise
    finally:
        if run_id is not None:
            store.finish_run(run_id, status, message, dt.datetime.now(dt.UTC))


def send_queued(config: Config, store: Store, now: dt.datetime) -> DeliveryReport:
    """Drain the outbox in this process."""
    transport = open_transport(config.delivery)
    try:
        return drain_outbox(store, transport, config.sender, now)
    finally:
        transport.close()


def catch_up_days(store: Store, source: str, today: dt.date) -> tuple[dt.date, ...]:
    """Every day since the source was last fetched completely, that day included (a day's
    list grows after a run; the ledger keeps what was already sent from going out again)."""
    last = store.last_fetched_day(source, today)
    first = today if last is None else max(last, today - dt.timedelta(days=MAX_CATCH_UP_DAYS))
    return _span(first, today)


def _span(first: dt.date, last: dt.date) -> tuple[dt.date, ...]:
    return tuple(first + dt.timedelta(days=n) for n in range((last - first).days + 1))


def fetch_all(
    config: Config,
    store: Store,
    today: dt.date,
    fetcher: Fetcher | None,
    now: dt.datetime,
) -> tuple[SourceOutcome, ...]:
    """Fetch each source's catch-up days; one failing source does not stop the others.

    A source's papers and fetched days are recorded only when all its days came through,
    so a failed source is caught up from the same day next time.
    """
    own_fetcher = fetcher is None
    client = fetcher or Fetcher(cache=store)
    outcomes = []
    try:
        for source in config.sources:
            days = catch_up_days(store, source.name, today)
            complete = store.days_with_papers(source.name, days[0], days[-1])
            try:
                papers = fetch_papers(client, source, days, complete)
            except SourceError as error:
                log.warning("%s", error)
                outcomes.append(SourceOutcome(source.name, days, 0, error))
                continue
            store.record_papers(papers, now, recount)
            counts = Counter(paper.day for paper in papers)
            # A day had before and not listed again (arXiv's) keeps the count it had.
            found = {day: counts[day] for day in days if counts[day] or day not in complete}
            store.record_source_days(source.name, found, now)
            log.info("%s: %d papers for %s..%s", source.name, len(papers), days[0], days[-1])
            outcomes.append(SourceOutcome(source.name, days, len(papers)))
    finally:
        if own_fetcher:
            client.close()
    return tuple(outcomes)


def corpus_stats(store: Store, *, build: bool) -> CorpusStats:
    """How common each term is among the stored papers, from the counts the store keeps
    up to date (`fetch_all` records papers with `recount`). A store from before it kept
    them is counted once from all its papers: for good with `build`, else in memory."""
    known = store.corpus_counts()
    if known is not None:
        return CorpusStats.from_counts(*known)
    with collector_paused():
        documents, counts, words = count_terms(analyse(p) for p in store.all_papers())
    if build:
        store.rebuild_corpus_counts(counts, words)
        log.info("term counts built from the %d stored papers", documents)
    return CorpusStats.from_counts(documents, counts, words)


def digest_key(subscriber: Subscriber, today: dt.date) -> str | None:
    """The issue a subscriber is due today, or None when today is not their day."""
    if subscriber.frequency == "weekly":
        if WEEKDAYS[today.weekday()] != subscriber.weekday:
            return None
        year, week, _ = today.isocalendar()
        return f"{year}-W{week:02d}"
    return today.isoformat()


def plan_digests(
    config: Config, store: Store, today: dt.date, window_start: dt.date
) -> list[Digest]:
    """What each subscriber should get today: their matches among the papers of the
    window that the ledger says they have not been given yet. Unsubscribed and suppressed
    addresses get nothing (and delivery checks again just before sending)."""
    in_window = store.papers_between(window_start, today)
    week = store.papers_between(today - dt.timedelta(days=6), today)
    # Each paper offered is analysed once per run, not once per subscriber (the window is
    # part of the week: each paper once).
    offered = {paper.id: paper for paper in (*week, *in_window)}
    analysed = analyse_all(offered.values())
    stats = corpus_stats(store, build=True)
    sent = store.sent_paper_ids_by_subscriber()
    keys = store.digest_keys_by_subscriber()
    blocked = store.blocked_addresses()
    # One query for every subscriber's liked papers, not one per subscriber.
    liked_papers = store.papers_by_id(i for s in config.subscribers for i in s.interests.liked)
    due: list[tuple[str, Request]] = []
    for subscriber in config.subscribers:
        email = subscriber.email.lower()
        key = digest_key(subscriber, today)
        if key is None or key in keys.get(email, set()) or email in blocked:
            continue
        candidates = week if subscriber.frequency == "weekly" else in_window
        already = sent.get(email, set())
        unsent = [paper for paper in candidates if paper.id not in already]
        if len(unsent) == len(candidates):
            unsent = candidates  # one shared list: the batch looks its papers up once
        liked = [
            liked_papers[i] for i in sorted(set(subscriber.interests.liked)) if i in liked_papers
        ]
        due.append((key, (subscriber, unsent, liked)))
    # All subscribers matched at once (digest.index): the same matches as one `select`
    # per subscriber, without scoring every pair in Python.
    # Nothing else runs yet: a large run matches on every core (small ones stay in process).
    workers = os.cpu_count() or 1
    chosen = select_many([r for _, r in due], stats, analysed=analysed, workers=workers)
    return [
        Digest(subscriber, key, today, tuple(matches))
        for (key, (subscriber, _, _)), matches in zip(due, chosen, strict=True)
        if matches or subscriber.send_empty
    ]


def links_for(config: Config, secret: bytes, digest: Digest) -> DigestLinks:
    sender = _address(config.sender)
    base = config.base_url.rstrip("/")
    unsubscribe = token(secret, digest.subscriber.email, "unsubscribe")
    # A week spans several day pages: a weekly digest opens the list of days.
    weekly = digest.subscriber.frequency == "weekly"
    return DigestLinks(
        unsubscribe_https=f"{base}/unsubscribe/{unsubscribe}",
        unsubscribe_mailto=f"mailto:{sender}?subject=unsubscribe",
        private_feed=f"{base}/{private_feed_path(secret, digest.subscriber.email)}",
        archive=f"{base}/{INDEX_PATH if weekly else day_path(digest.date)}",
    )


def private_feed_path(secret: bytes, address: str) -> str:
    return f"feeds/private/{token(secret, address, 'feed')}.atom"


@lru_cache(maxsize=16)  # the same for every message of a run; parsing it was 7 % of render
def _address(sender: str) -> str:
    return email.utils.parseaddr(sender)[1]


@lru_cache(maxsize=16)
def _message_domains(sender: str, base_url: str) -> tuple[str, str]:
    """(the Message-ID's domain, the List-Id)."""
    host = urlsplit(base_url).hostname or "localhost"
    return _address(sender).rpartition("@")[2] or host, f"digest.{host}"


def render_message(
    config: Config, renderer: Renderer, secret: bytes, digest: Digest, now: dt.datetime
) -> tuple[str, bytes]:
    """The complete message for a digest: (Message-ID, bytes as sent over SMTP)."""
    links = links_for(config, secret, digest)
    rendered = renderer.render(digest, links)
    domain, list_id = _message_domains(config.sender, config.base_url)
    message_id = message_id_for(digest.subscriber.email, digest.key, domain)
    data = renderer.message_bytes(
        digest,
        rendered,
        links,
        sender=config.sender,
        message_id=message_id,
        list_id=list_id,
        date=now,
    )
    return message_id, data


def outbox_entry(
    config: Config, renderer: Renderer, secret: bytes, digest: Digest, now: dt.datetime
) -> OutboxEntry:
    message_id, data = render_message(config, renderer, secret, digest, now)
    items = tuple(DeliveryItem(m.paper.id, round(m.score, 4), m.reasons) for m in digest.matches)
    return OutboxEntry(digest.subscriber.email, digest.key, digest.date, message_id, data, items)


def queue_digests(
    config: Config,
    store: Store,
    renderer: Renderer,
    secret: bytes,
    digests: list[Digest],
    now: dt.datetime,
    on_batch: Callable[[], None] | None = None,
) -> int:
    """Render and queue every digest, `BATCH` to a transaction: a crash loses at most the
    batch being written, which the next run plans again (nothing of it was sent).
    `on_batch` is called after each committed batch."""
    queued = start = 0
    size = min(FIRST_BATCH, BATCH) if on_batch else BATCH  # a courier starts sooner
    while start < len(digests):
        batch = digests[start : start + size]
        entries = [outbox_entry(config, renderer, secret, digest, now) for digest in batch]
        queued += store.queue_many(entries, now)
        if on_batch:
            on_batch()
        start, size = start + size, BATCH
    return queued


def write_feeds(
    config: Config,
    store: Store,
    secret: bytes,
    changed: set[str],
    *,
    today: dt.date | None = None,
) -> None:
    """The public feeds of the latest days, the web archive (a page per day, `today`'s
    too, which the emails link to), and the private feed of each subscriber whose digests
    changed (or whose feed file is missing). Unchanged bytes are not rewritten."""
    output = config.output_dir
    # The run lock is held: a temp file here can only be a killed run's leftover.
    remove_stale_temporaries(output)
    latest = store.latest_day()
    recent = (
        store.papers_between(latest - dt.timedelta(days=PUBLIC_FEED_DAYS - 1), latest)
        if latest
        else []
    )
    atom, rss = public_feeds(recent, title=config.title, base_url=config.base_url)
    feeds = output / "feeds"
    write_atomic_many([(feeds / "papers.atom", atom), (feeds / "papers.rss", rss)])
    papers = store.all_papers()
    write_archive(
        output,
        papers,
        title=config.title,
        base_url=config.base_url,
        days=[today] if today else [],
        templates=config.templates,
    )
    stale = [
        subscriber
        for subscriber in config.subscribers
        if subscriber.email in changed
        or not (output / private_feed_path(secret, subscriber.email)).exists()
    ]
    by_id = {paper.id: paper for paper in papers}
    texts: dict[Paper, EntryText] = {}  # each paper's entry text, cleaned once for all feeds

    def private_feeds() -> Iterator[tuple[Path, bytes]]:
        for start in range(0, len(stale), BATCH):
            batch = stale[start : start + BATCH]
            history = store.digest_history((s.email for s in batch), PRIVATE_FEED_DIGESTS)
            for subscriber in batch:
                path = private_feed_path(secret, subscriber.email)
                records = history.get(subscriber.email.lower(), [])
                data = subscriber_feed(
                    delivered_digests(subscriber, records, by_id),
                    title=f"{config.title} for {subscriber.name or subscriber.email}",
                    base_url=config.base_url,
                    feed_path=path,
                    texts=texts,
                )
                yield output / path, data

    # One batch: the files are synced together, not one disk flush per feed.
    write_atomic_many(private_feeds())


def delivered_digests(
    subscriber: Subscriber, records: list[DigestRecord], papers: Mapping[str, Paper]
) -> list[Digest]:
    """The digests a subscriber was given (`Store.digest_history`), as their private feed
    shows them."""
    return [
        Digest(
            subscriber,
            record.digest_key,
            record.digest_date,
            tuple(
                Match(papers[item.paper_id], item.score, item.reasons)
                for item in record.items
                if item.paper_id in papers
            ),
        )
        for record in records
    ]
