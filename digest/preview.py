"""`digest preview`: one subscriber's email written to files for a look, nothing recorded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from digest.config import Config
from digest.errors import UsageError
from digest.match import select
from digest.models import Digest
from digest.pipeline import corpus_stats, digest_key, links_for, render_message
from digest.render import Renderer
from digest.store import Store
from digest.tokens import load_secret


def preview(config: Config, who: str, *, day: dt.date | None, output: Path) -> list[Path]:
    """Write `<slug>-<date>.html`, `.txt` and `.eml` from the papers in the store.

    It ignores the ledger: the preview shows what the digest of that day would hold for
    this subscriber if nothing had been sent yet.
    """
    wanted = who.lower()
    subscriber = next(
        (s for s in config.subscribers if wanted in (s.slug.lower(), s.email.lower())), None
    )
    if subscriber is None:
        raise UsageError(f"no subscriber {who!r} in {config.subscribers_dir}")
    store = Store(config.database)
    try:
        day = day or store.latest_day() or config.today()
        papers = store.papers_between(
            day - dt.timedelta(days=6 if subscriber.frequency == "weekly" else 0), day
        )
        stats = corpus_stats(store, build=False)
        liked = list(store.papers_by_id(subscriber.interests.liked).values())
        matches = select(subscriber, papers, stats, liked)
    finally:
        store.close()
    key = digest_key(subscriber, day) or day.isoformat()
    digest = Digest(subscriber, key, day, tuple(matches))
    secret = load_secret(config.data_dir)
    renderer = Renderer(title=config.title, templates=config.templates)
    rendered = renderer.render(digest, links_for(config, secret, digest))
    _, message = render_message(config, renderer, secret, digest, dt.datetime.now(dt.UTC))
    output.mkdir(parents=True, exist_ok=True)
    stem = output / f"{subscriber.slug}-{day.isoformat()}"
    files = {".html": rendered.html.encode(), ".txt": rendered.text.encode(), ".eml": message}
    written = []
    for suffix, data in files.items():
        path = stem.with_suffix(suffix)
        path.write_bytes(data)
        written.append(path)
    return written
