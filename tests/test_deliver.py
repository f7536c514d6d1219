"""Draining the outbox into a real SMTP server on loopback and into a real Maildir."""

from __future__ import annotations

import datetime as dt
import email.message
import email.policy
from pathlib import Path

import pytest
from conftest import SMTPSink
from helpers import free_port, maildir_messages

from digest.config import DeliveryConfig
from digest.deliver import MaildirTransport, SMTPTransport, check_smtp, drain_outbox
from digest.errors import DeliveryError
from digest.store import DEFERRED, FAILED, SENT, DeliveryItem, Store

NOW = dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)


def message_for(address: str, key: str) -> tuple[str, bytes]:
    message = email.message.EmailMessage()
    message["From"] = "digest@example.org"
    message["To"] = address
    message["Subject"] = f"digest {key}"
    message["Message-ID"] = f"<digest.{key}.{address.split('@')[0]}@example.org>"
    message.set_content("papers")
    return message["Message-ID"], message.as_bytes(policy=email.policy.SMTP)


def queue_for(store: Store, *addresses: str, key: str = "2026-01-05") -> None:
    for address in addresses:
        message_id, data = message_for(address, key)
        item = DeliveryItem("2601.00001", 1.0, ("title: test",))
        assert store.queue(address, key, dt.date(2026, 1, 5), message_id, data, [item], NOW)


def smtp_settings(sink: SMTPSink) -> DeliveryConfig:
    return DeliveryConfig(transport="smtp", host=sink.host, port=sink.port, security="none")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'digest.db'}")


def test_every_queued_digest_is_sent_once_with_its_message_id(
    store: Store, smtp_sink: SMTPSink
) -> None:
    queue_for(store, "a@example.org", "b@example.org", "c@example.org")
    transport = SMTPTransport(smtp_settings(smtp_sink))
    report = drain_outbox(store, transport, "Digest <digest@example.org>", NOW)
    transport.close()
    assert (report.sent, report.deferred, report.failed) == (3, 0, 0)
    assert [envelope for envelope in smtp_sink.envelopes] == [
        ("digest@example.org", ["a@example.org"]),
        ("digest@example.org", ["b@example.org"]),
        ("digest@example.org", ["c@example.org"]),
    ]
    assert smtp_sink.messages[0]["Message-ID"] == "<digest.2026-01-05.a@example.org>"
    assert [d.state for d in store.deliveries_in_state(SENT)] == [SENT] * 3
    again = drain_outbox(store, SMTPTransport(smtp_settings(smtp_sink)), "digest@example.org", NOW)
    assert again.sent == 0
    assert len(smtp_sink.messages) == 3


def test_a_second_digest_with_the_same_key_is_never_queued(store: Store) -> None:
    queue_for(store, "a@example.org")
    message_id, data = message_for("a@example.org", "2026-01-05")
    assert not store.queue(
        "A@example.org", "2026-01-05", dt.date(2026, 1, 5), message_id, data, [], NOW
    )
    assert len(store.due_deliveries(NOW)) == 1


def test_a_temporary_refusal_defers_and_a_permanent_one_fails(
    store: Store, smtp_sink: SMTPSink
) -> None:
    smtp_sink.refuse = {
        "busy@example.org": "451 4.3.0 Try again later",
        "gone@example.org": "550 5.1.1 No such user",
    }
    queue_for(store, "busy@example.org", "gone@example.org", "ok@example.org")
    transport = SMTPTransport(smtp_settings(smtp_sink))
    report = drain_outbox(store, transport, "digest@example.org", NOW)
    transport.close()
    assert (report.sent, report.deferred, report.failed) == (1, 1, 1)
    [deferred] = store.deliveries_in_state(DEFERRED)
    assert deferred.subscriber == "busy@example.org" and "451" in (deferred.last_error or "")
    [failed] = store.deliveries_in_state(FAILED)
    assert failed.subscriber == "gone@example.org" and "550" in (failed.last_error or "")
    # Not yet due: the deferred message waits for its retry time.
    assert store.due_deliveries(NOW) == []
    later = NOW + dt.timedelta(hours=1)
    smtp_sink.refuse = {}
    transport = SMTPTransport(smtp_settings(smtp_sink))
    assert drain_outbox(store, transport, "digest@example.org", later).sent == 1
    transport.close()


def test_an_unreachable_mail_server_leaves_the_outbox_queued(store: Store) -> None:
    queue_for(store, "a@example.org")
    settings = DeliveryConfig(
        transport="smtp", host="127.0.0.1", port=free_port(), security="none", timeout=2
    )
    with pytest.raises(DeliveryError, match="cannot connect"):
        drain_outbox(store, SMTPTransport(settings), "digest@example.org", NOW)
    assert len(store.due_deliveries(NOW)) == 1


def test_starttls_is_required_when_configured(smtp_sink: SMTPSink) -> None:
    settings = DeliveryConfig(
        transport="smtp", host=smtp_sink.host, port=smtp_sink.port, security="starttls"
    )
    with pytest.raises(DeliveryError, match="STARTTLS"):
        check_smtp(settings)


def test_maildir_delivery_writes_complete_messages(store: Store, tmp_path: Path) -> None:
    queue_for(store, "a@example.org", "b@example.org")
    transport = MaildirTransport(tmp_path / "maildir")
    assert drain_outbox(store, transport, "digest@example.org", NOW).sent == 2
    messages = maildir_messages(tmp_path / "maildir")
    assert sorted(m["To"] for m in messages) == ["a@example.org", "b@example.org"]
    assert list((tmp_path / "maildir" / "tmp").iterdir()) == []
