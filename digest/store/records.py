"""The values the store hands out, and how papers and rows turn into them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from digest.models import Link, Paper
from digest.store.schema import ACTIVE


@dataclass(frozen=True)
class SubscriberState:
    email: str
    state: str = ACTIVE
    hard_failures: int = 0
    changed_at: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class DeliveryItem:
    """One paper as a digest held it: enough to rebuild the subscriber's private feed."""

    paper_id: str
    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class OutboxEntry:
    """A rendered digest on its way into the outbox (see `Store.queue_many`)."""

    subscriber: str
    digest_key: str
    digest_date: dt.date
    message_id: str
    message: bytes
    items: tuple[DeliveryItem, ...]


@dataclass(frozen=True)
class DigestRecord:
    """What a digest held, without its message: a private feed is built from these."""

    digest_key: str
    digest_date: dt.date
    items: tuple[DeliveryItem, ...]


@dataclass(frozen=True)
class Delivery:
    id: int
    subscriber: str
    digest_key: str
    digest_date: dt.date
    state: str
    message_id: str
    message: bytes
    items: tuple[DeliveryItem, ...]
    attempts: int
    created_at: str
    sent_at: str | None
    last_error: str | None


@dataclass(frozen=True)
class Run:
    id: int
    run_date: dt.date
    started_at: str
    finished_at: str | None
    status: str
    message: str


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def paper_to_json(paper: Paper) -> str:
    data = dataclasses.asdict(paper)
    data["day"] = paper.day.isoformat()
    data["published"] = paper.published.isoformat() if paper.published else None
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def paper_from_json(text: str) -> Paper:
    data: dict[str, Any] = json.loads(text)
    data["day"] = dt.date.fromisoformat(data["day"])
    if data.get("published"):
        data["published"] = dt.datetime.fromisoformat(data["published"])
    for key in ("authors", "ai_keywords"):
        data[key] = tuple(data.get(key) or ())
    data["links"] = tuple(Link(**link) for link in data.get("links") or ())
    return Paper(**data)


def merge_papers(old: Paper, new: Paper) -> Paper:
    """The same paper seen again, or from another source.

    The source that listed it first owns its text: a later sighting from that source
    refreshes every field, another source only fills what is missing (a lab feed's post
    title must not replace the paper's). Links are the union; counts take the larger
    value, since a source that does not count upvotes reports 0; the day stays the first.
    """
    same_source = new.source == old.source
    filled = {
        field.name: getattr(new, field.name)
        for field in dataclasses.fields(Paper)
        if field.name not in ("id", "day", "source", "url", "links", "upvotes", "comments")
        and getattr(new, field.name) not in (None, "", ())
        and (same_source or getattr(old, field.name) in (None, "", ()))
    }
    filled["upvotes"] = max(old.upvotes, new.upvotes)
    filled["comments"] = max(old.comments, new.comments)
    links = list(old.links)
    known = {link.url for link in links} | {old.url}
    links.extend(link for link in new.links if link.url not in known)
    if new.url and new.url not in known:
        links.append(Link(urlsplit(new.url).hostname or new.source, new.url))
    return dataclasses.replace(old, **filled, day=min(old.day, new.day), links=tuple(links))


def _subscriber_state(row: sa.Row[Any]) -> SubscriberState:
    return SubscriberState(
        email=row.email,
        state=row.state,
        hard_failures=row.hard_failures,
        changed_at=row.changed_at,
        reason=row.reason,
    )


def _delivery(row: sa.Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        subscriber=row.subscriber,
        digest_key=row.digest_key,
        digest_date=dt.date.fromisoformat(row.digest_date),
        state=row.state,
        message_id=row.message_id,
        message=row.message,
        items=_items(row.items),
        attempts=row.attempts,
        created_at=row.created_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
    )


def _items_json(items: Iterable[DeliveryItem]) -> str:
    return json.dumps(
        [{"id": item.paper_id, "score": item.score, "reasons": item.reasons} for item in items]
    )


def _items(text: str) -> tuple[DeliveryItem, ...]:
    return tuple(
        DeliveryItem(item["id"], float(item["score"]), tuple(item["reasons"]))
        for item in json.loads(text)
    )
