"""`digest subscribers`: every subscriber with its state, and the operator's overrides.

A subscriber's file says what they want; the store says whether they may be sent anything:
active, unsubscribed (they clicked the link) or suppressed (the mail server refused the
address for good, `HARD_FAILURE_LIMIT` times in a row). Addresses the store knows but no
file names any more are listed too, so an unsubscribe is never invisible.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from digest.config import Config, address_problem
from digest.errors import UsageError
from digest.store import ACTIVE, UNSUBSCRIBED, Store


@dataclass(frozen=True)
class SubscriberRow:
    email: str
    slug: str | None  # the subscriber file's name; None when no file names the address
    state: str
    last_sent: str | None
    hard_failures: int
    changed_at: str | None
    reason: str


def subscriber_rows(config: Config, store: Store) -> list[SubscriberRow]:
    """Configured subscribers in file order, then addresses only the store knows."""
    states = store.subscriber_states()
    last_sent = store.last_sent_by_subscriber()
    rows = []
    configured = {s.email.lower(): s.slug for s in config.subscribers}
    extra = sorted((store.known_addresses() | set(states)) - set(configured))
    for email, slug in [*configured.items(), *((e, None) for e in extra)]:
        state = states.get(email)
        rows.append(
            SubscriberRow(
                email=email,
                slug=slug,
                state=state.state if state else ACTIVE,
                last_sent=last_sent.get(email),
                hard_failures=state.hard_failures if state else 0,
                changed_at=state.changed_at if state else None,
                reason=state.reason if state else "",
            )
        )
    return rows


def format_rows(rows: list[SubscriberRow]) -> list[str]:
    width = max([len(row.email) for row in rows] + [len("address")])
    lines = [f"{'address':<{width}}  {'state':<12}  {'last sent':<25}  notes"]
    for row in rows:
        notes = []
        if row.slug is None:
            notes.append("no subscriber file")
        if row.state != ACTIVE and row.changed_at:
            notes.append(f"since {row.changed_at}")
        if row.reason:
            notes.append(row.reason)
        if row.hard_failures and row.state == ACTIVE:
            notes.append(f"{row.hard_failures} hard failure(s)")
        line = f"{row.email:<{width}}  {row.state:<12}  {row.last_sent or 'never':<25}  "
        lines.append((line + "; ".join(notes)).rstrip())
    return lines


def set_state(config: Config, store: Store, address: str, state: str, reason: str) -> bool:
    """The operator's override: unsubscribe an address, or make it active again (which also
    forgets its hard failures). False when nothing changed."""
    address = address.strip().lower()
    if address_problem(address):
        raise UsageError(f"not an email address: {address!r}")
    known = {s.email.lower() for s in config.subscribers} | store.known_addresses()
    if state == ACTIVE and address not in known:
        raise UsageError(f"{address} is not a subscriber")
    if state not in (ACTIVE, UNSUBSCRIBED):
        raise UsageError(f"cannot set state {state!r}")
    return store.set_subscriber_state(address, state, reason, dt.datetime.now(dt.UTC))
