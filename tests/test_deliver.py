"""Draining the outbox into a real SMTP server on loopback (aiosmtpd: plain, STARTTLS and
implicit TLS with a CA made here, AUTH, refusals, a dropped connection) and into a Maildir."""

from __future__ import annotations

import datetime as dt
import email.message
import email.policy
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import ConfigFactory, SMTPSink
from helpers import free_port, maildir_messages

from digest.config import Config, DeliveryConfig, load_config
from digest.deliver import (
    HARD_FAILURE_LIMIT,
    MaildirTransport,
    RateLimit,
    SMTPTransport,
    check_smtp,
    drain_outbox,
)
from digest.errors import ConfigError, DeliveryError
from digest.status import status_lines
from digest.store import (
    ACTIVE,
    DEFERRED,
    FAILED,
    SENT,
    SKIPPED,
    SUPPRESSED,
    UNSUBSCRIBED,
    DeliveryItem,
    Store,
)

NOW = dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)


def message_for(address: str, key: str) -> tuple[str, bytes]:
    message = email.message.EmailMessage()
    message["From"] = "digest@example.org"
    message["To"] = address
    message["Subject"] = f"digest {key}"
    message["Message-ID"] = f"<digest.{key}.{address.split('@')[0]}@example.org>"
    message.set_content("papers")
    return message["Message-ID"], message.as_bytes(policy=email.policy.SMTP)


def queue_for(
    store: Store, *addresses: str, key: str = "2026-01-05", when: dt.datetime = NOW
) -> None:
    for address in addresses:
        message_id, data = message_for(address, key)
        item = DeliveryItem("2601.00001", 1.0, ("title: test",))
        assert store.queue(address, key, dt.date(2026, 1, 5), message_id, data, [item], when)


def smtp_settings(sink: SMTPSink, **overrides: Any) -> DeliveryConfig:
    values: dict[str, Any] = {
        "transport": "smtp",
        "host": sink.host,
        "port": sink.port,
        "security": "none",
        "rate": 0,
        "timeout": 5,
    }
    values.update(overrides)
    return DeliveryConfig(**values)


class Sleeps:
    """An injectable sleep that records how long it was asked to wait, and a clock that the
    waits move forward."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.calls: list[float] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds


def drain(store: Store, transport: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("sleep", Sleeps())
    when = kwargs.pop("now", NOW)
    try:
        return drain_outbox(store, transport, "Digest <digest@example.org>", when, **kwargs)
    finally:
        transport.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'digest.db'}")
    yield store
    store.close()


@dataclass
class ScriptedSink(SMTPSink):
    """An SMTPSink whose answers to RCPT follow a script per address (then "250"), and
    which can drop the connection instead of answering the DATA of chosen messages."""

    script: dict[str, list[str]] = field(default_factory=dict)
    drop_on_data: set[int] = field(default_factory=set)  # 1-based count of DATA commands
    data_commands: int = 0
    sessions: list[int] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        answers = self.script.get(address)
        if answers:
            return answers.pop(0)
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_commands += 1
        if self.data_commands in self.drop_on_data:
            server.transport.close()
            return "421 closing"
        self.sessions.append(id(session))
        return await super().handle_DATA(server, session, envelope)


@contextmanager
def running(handler: SMTPSink, **controller: Any) -> Iterator[SMTPSink]:
    server = Controller(handler, hostname=handler.host, port=handler.port, **controller)
    server.start()
    try:
        yield handler
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def trust_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the test CA the way an operator trusts a private one: SSL_CERT_FILE."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


def accept_login(user: str, password: str) -> Callable[..., AuthResult]:
    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return authenticator


# plain SMTP ---------------------------------------------------------------------------


def test_every_queued_digest_is_sent_once_with_its_message_id(
    store: Store, smtp_sink: SMTPSink
) -> None:
    queue_for(store, "a@example.org", "b@example.org", "c@example.org")
    report = drain(store, SMTPTransport(smtp_settings(smtp_sink)))
    assert (report.sent, report.deferred, report.failed) == (3, 0, 0)
    assert smtp_sink.envelopes == [
        ("digest@example.org", ["a@example.org"]),
        ("digest@example.org", ["b@example.org"]),
        ("digest@example.org", ["c@example.org"]),
    ]
    assert smtp_sink.messages[0]["Message-ID"] == "<digest.2026-01-05.a@example.org>"
    assert [d.state for d in store.deliveries_in_state(SENT)] == [SENT] * 3
    again = drain(store, SMTPTransport(smtp_settings(smtp_sink)))
    assert again.sent == 0
    assert len(smtp_sink.messages) == 3


def test_a_second_digest_with_the_same_key_is_never_queued(store: Store) -> None:
    queue_for(store, "a@example.org")
    message_id, data = message_for("a@example.org", "2026-01-05")
    assert not store.queue(
        "A@example.org", "2026-01-05", dt.date(2026, 1, 5), message_id, data, [], NOW
    )
    assert len(store.due_deliveries(NOW)) == 1


def test_a_451_that_clears_within_the_run_is_sent_after_a_short_wait(store: Store) -> None:
    sink = ScriptedSink("127.0.0.1", free_port())
    sink.script = {"busy@example.org": ["451 4.3.0 Try again later"]}
    queue_for(store, "busy@example.org", "ok@example.org")
    sleeps = Sleeps()
    with running(sink):
        report = drain(
            store, SMTPTransport(smtp_settings(sink)), retry_delays=(2.0, 10.0), sleep=sleeps
        )
    assert (report.sent, report.deferred, report.failed) == (2, 0, 0)
    assert sleeps.calls == [2.0]  # one pass over the refused message, not one wait each
    assert [e[1] for e in sink.envelopes] == [["ok@example.org"], ["busy@example.org"]]
    [busy] = [d for d in store.deliveries_in_state(SENT) if d.subscriber == "busy@example.org"]
    assert busy.attempts == 2


def test_a_451_that_persists_is_deferred_with_backoff_and_sent_by_a_later_run(
    store: Store,
) -> None:
    sink = ScriptedSink("127.0.0.1", free_port())
    sink.script = {"busy@example.org": ["451 4.3.0 Try again later"] * 3}
    queue_for(store, "busy@example.org")
    sleeps = Sleeps()
    with running(sink):
        report = drain(
            store, SMTPTransport(smtp_settings(sink)), retry_delays=(1.0, 4.0), sleep=sleeps
        )
        assert (report.sent, report.deferred) == (0, 1)
        assert sleeps.calls == [1.0, 4.0]
        [deferred] = store.deliveries_in_state(DEFERRED)
        assert deferred.attempts == 3 and "451" in (deferred.last_error or "")
        # Not due again until its retry time has come.
        assert store.due_deliveries(NOW + dt.timedelta(minutes=1)) == []
        later = NOW + dt.timedelta(hours=6)
        report = drain(store, SMTPTransport(smtp_settings(sink)), now=later)
    assert report.sent == 1
    assert [e[1] for e in sink.envelopes] == [["busy@example.org"]]


def test_a_message_refused_for_five_days_is_given_up(store: Store, smtp_sink: SMTPSink) -> None:
    smtp_sink.refuse = {"busy@example.org": "452 4.2.2 Mailbox full"}
    queue_for(store, "busy@example.org")
    report = drain(store, SMTPTransport(smtp_settings(smtp_sink)), now=NOW + dt.timedelta(days=5))
    assert (report.deferred, report.failed) == (0, 1)
    [failed] = store.deliveries_in_state(FAILED)
    assert "gave up after 5 days" in (failed.last_error or "")
    # Giving up on a full mailbox is not a hard failure of the address.
    assert store.subscriber_state("busy@example.org").state == ACTIVE


def test_a_550_fails_at_once_and_the_third_suppresses_the_address(
    store: Store, smtp_sink: SMTPSink
) -> None:
    smtp_sink.refuse = {"gone@example.org": "550 5.1.1 No such user"}
    for day in ("2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08"):
        queue_for(store, "gone@example.org", "ok@example.org", key=day)
    sleeps = Sleeps()
    report = drain(store, SMTPTransport(smtp_settings(smtp_sink)), sleep=sleeps)
    assert sleeps.calls == []  # a 5xx is never retried
    assert HARD_FAILURE_LIMIT == 3
    assert (report.sent, report.failed, report.suppressed, report.skipped) == (4, 3, 1, 1)
    state = store.subscriber_state("gone@example.org")
    assert (state.state, state.hard_failures) == (SUPPRESSED, 3)
    assert "550" in state.reason
    assert [d.digest_key for d in store.deliveries_in_state(SKIPPED)] == ["2026-01-08"]
    assert store.blocked_addresses() == {"gone@example.org"}
    assert [e[1] for e in smtp_sink.envelopes] == [["ok@example.org"]] * 4


def test_a_delivery_that_goes_through_resets_the_count_of_hard_failures(
    store: Store, smtp_sink: SMTPSink
) -> None:
    smtp_sink.refuse = {"flaky@example.org": "554 5.7.1 Rejected"}
    queue_for(store, "flaky@example.org", key="2026-01-05")
    queue_for(store, "flaky@example.org", key="2026-01-06")
    drain(store, SMTPTransport(smtp_settings(smtp_sink)))
    assert store.subscriber_state("flaky@example.org").hard_failures == 2
    smtp_sink.refuse = {}
    queue_for(store, "flaky@example.org", key="2026-01-07")
    drain(store, SMTPTransport(smtp_settings(smtp_sink)))
    smtp_sink.refuse = {"flaky@example.org": "554 5.7.1 Rejected"}
    queue_for(store, "flaky@example.org", key="2026-01-08")
    drain(store, SMTPTransport(smtp_settings(smtp_sink)))
    state = store.subscriber_state("flaky@example.org")
    assert (state.state, state.hard_failures) == (ACTIVE, 1)


def test_a_subscriber_who_unsubscribed_after_queueing_is_not_sent_the_digest(
    store: Store, smtp_sink: SMTPSink
) -> None:
    queue_for(store, "stay@example.org", "leave@example.org")
    assert store.set_subscriber_state("leave@example.org", UNSUBSCRIBED, "test", NOW)
    report = drain(store, SMTPTransport(smtp_settings(smtp_sink)))
    assert (report.sent, report.skipped) == (1, 1)
    assert [e[1] for e in smtp_sink.envelopes] == [["stay@example.org"]]
    [skipped] = store.deliveries_in_state(SKIPPED)
    assert skipped.subscriber == "leave@example.org" and skipped.last_error == UNSUBSCRIBED


def test_an_unsubscribe_committed_by_another_process_during_delivery_stops_the_next_send(
    store: Store, smtp_sink: SMTPSink, tmp_path: Path
) -> None:
    queue_for(store, "first@example.org", "second@example.org", "third@example.org")

    def unsubscribe_the_third(accepted: int) -> None:
        if accepted == 1:  # as `digest serve` would: its own connection, its own commit
            other = Store(f"sqlite:///{tmp_path / 'digest.db'}")
            other.set_subscriber_state("third@example.org", UNSUBSCRIBED, "one click", NOW)
            other.close()

    smtp_sink.before_data = unsubscribe_the_third
    report = drain(store, SMTPTransport(smtp_settings(smtp_sink)))
    assert (report.sent, report.skipped) == (2, 1)
    assert [e[1] for e in smtp_sink.envelopes] == [["first@example.org"], ["second@example.org"]]


def test_a_connection_dropped_halfway_through_a_batch_is_reopened_and_the_batch_finishes(
    store: Store,
) -> None:
    sink = ScriptedSink("127.0.0.1", free_port(), drop_on_data={3})
    addresses = [f"r{n}@example.org" for n in range(6)]
    queue_for(store, *addresses)
    with running(sink):
        report = drain(store, SMTPTransport(smtp_settings(sink)))
    assert report.sent == 6
    assert [e[1][0] for e in sink.envelopes] == addresses  # each exactly once, in order
    assert len(set(sink.sessions)) == 2, "one reconnection, then the same connection again"
    assert sink.sessions[:2] == [sink.sessions[0]] * 2


def test_messages_are_paced_at_the_configured_rate(store: Store, smtp_sink: SMTPSink) -> None:
    queue_for(store, *(f"r{n}@example.org" for n in range(5)))
    clock = Sleeps()
    transport = SMTPTransport(smtp_settings(smtp_sink, rate=4), clock=clock.clock, sleep=clock)
    assert drain(store, transport).sent == 5
    assert clock.calls == [0.25] * 4


def test_the_rate_limit_waits_only_for_what_is_left_of_the_interval() -> None:
    clock = Sleeps()
    limit = RateLimit(2, clock.clock, clock)
    limit.wait()
    clock.now += 0.2  # the send itself took 0.2 s
    limit.wait()
    clock.now += 1.0
    limit.wait()
    assert clock.calls == pytest.approx([0.3])
    unlimited = RateLimit(0, clock.clock, clock)
    for _ in range(3):
        unlimited.wait()
    assert clock.calls == pytest.approx([0.3])


def test_an_unreachable_mail_server_leaves_the_outbox_queued(store: Store) -> None:
    queue_for(store, "a@example.org")
    settings = DeliveryConfig(
        transport="smtp", host="127.0.0.1", port=free_port(), security="none", timeout=2
    )
    with pytest.raises(DeliveryError, match="cannot connect"):
        drain(store, SMTPTransport(settings))
    assert len(store.due_deliveries(NOW)) == 1


def test_starttls_is_required_when_configured(smtp_sink: SMTPSink) -> None:
    settings = smtp_settings(smtp_sink, security="starttls")
    with pytest.raises(DeliveryError, match="STARTTLS"):
        check_smtp(settings)


# TLS and AUTH -------------------------------------------------------------------------


@pytest.mark.usefixtures("trust_ca")
def test_starttls_with_a_trusted_private_ca_and_a_login_delivers(
    store: Store, server_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret pass")
    sink = SMTPSink("127.0.0.1", free_port())
    queue_for(store, "a@example.org", "b@example.org")
    settings = smtp_settings(
        sink, security="starttls", username="digest", password_env="TEST_SMTP_PASSWORD"
    )
    with running(
        sink,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=accept_login("digest", "s3cret pass"),
        auth_required=True,
    ):
        check_smtp(settings)
        report = drain(store, SMTPTransport(settings))
    assert report.sent == 2
    assert [e[1] for e in sink.envelopes] == [["a@example.org"], ["b@example.org"]]


@pytest.mark.usefixtures("trust_ca")
def test_a_wrong_password_is_refused_with_a_message_naming_the_login(
    server_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    sink = SMTPSink("127.0.0.1", free_port())
    settings = smtp_settings(
        sink, security="starttls", username="digest", password_env="TEST_SMTP_PASSWORD"
    )
    with (
        running(
            sink,
            tls_context=server_tls,
            require_starttls=True,
            authenticator=accept_login("digest", "right"),
            auth_required=True,
        ),
        pytest.raises(DeliveryError, match="login as 'digest' refused \\(535\\)") as refused,
    ):
        check_smtp(settings)
    assert "wrong" not in str(refused.value)


def test_a_login_without_the_password_variable_says_which_variable(
    smtp_sink: SMTPSink,
) -> None:
    settings = smtp_settings(smtp_sink, username="digest", password_env="TEST_SMTP_PASSWORD")
    with pytest.raises(DeliveryError, match="TEST_SMTP_PASSWORD"):
        check_smtp(settings)


@pytest.mark.usefixtures("trust_ca")
def test_implicit_tls_with_a_trusted_private_ca_delivers(
    store: Store, server_tls: ssl.SSLContext
) -> None:
    sink = SMTPSink("127.0.0.1", free_port())
    queue_for(store, "a@example.org")
    with running(sink, ssl_context=server_tls):
        report = drain(store, SMTPTransport(smtp_settings(sink, security="tls")))
    assert report.sent == 1


def test_a_certificate_from_an_untrusted_ca_is_refused_and_nothing_is_sent(
    store: Store, server_tls: ssl.SSLContext
) -> None:
    # SSL_CERT_FILE is not set: the test CA is unknown, as any self-made one would be.
    sink = SMTPSink("127.0.0.1", free_port())
    queue_for(store, "a@example.org")
    for security, controller in (
        ("starttls", {"tls_context": server_tls, "require_starttls": True}),
        ("tls", {"ssl_context": server_tls}),
    ):
        with (
            running(sink, **controller),
            pytest.raises(DeliveryError, match="TLS certificate not trusted"),
        ):
            drain(store, SMTPTransport(smtp_settings(sink, security=security)))
    assert sink.messages == []
    assert len(store.due_deliveries(NOW)) == 1


@pytest.mark.usefixtures("trust_ca")
def test_a_certificate_for_another_host_name_is_refused(store: Store, ca: trustme.CA) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example.org").configure_cert(context)
    sink = SMTPSink("127.0.0.1", free_port())
    with (
        running(sink, ssl_context=context),
        pytest.raises(DeliveryError, match="TLS certificate not trusted"),
    ):
        check_smtp(smtp_settings(sink, security="tls"))


# Maildir and configuration ------------------------------------------------------------


def test_maildir_delivery_writes_complete_messages(store: Store, tmp_path: Path) -> None:
    queue_for(store, "a@example.org", "b@example.org")
    transport = MaildirTransport(tmp_path / "maildir")
    assert drain(store, transport).sent == 2
    messages = maildir_messages(tmp_path / "maildir")
    assert sorted(m["To"] for m in messages) == ["a@example.org", "b@example.org"]
    assert list((tmp_path / "maildir" / "tmp").iterdir()) == []


def test_the_rate_is_read_from_the_delivery_table_and_checked(
    tmp_path: Path, make_config: Callable[..., Config]
) -> None:
    smtp = '[delivery]\ntransport = "smtp"\nhost = "127.0.0.1"\nsecurity = "none"\n'
    assert make_config(delivery=smtp).delivery.rate == 10
    assert make_config(delivery=smtp + "rate = 0.5\n").delivery.rate == 0.5
    for bad in ("-1", "nan", '"fast"'):
        path = ConfigFactory(tmp_path).write(delivery=smtp + f"rate = {bad}\n")
        with pytest.raises(ConfigError, match="rate"):
            load_config(path)


def test_status_shows_what_is_deferred_failed_and_suppressed(
    make_config: Callable[..., Config], smtp_sink: SMTPSink
) -> None:
    config = make_config()
    store = Store(config.database)
    smtp_sink.refuse = {
        "busy@example.org": "451 4.3.0 Try again later",
        "gone@example.org": "550 5.1.1 No such user",
    }
    try:
        for day in ("2026-01-05", "2026-01-06", "2026-01-07"):
            queue_for(store, "gone@example.org", key=day)
        queue_for(store, "busy@example.org")
        drain(store, SMTPTransport(smtp_settings(smtp_sink)))
    finally:
        store.close()
    lines = status_lines(config)
    text = "\n".join(lines)
    assert "Outbox: 0 queued, 1 deferred, 3 failed" in text
    assert re.search(r"deferred +2026-01-05 to busy@example.org \(attempts 3: 451 ", text)
    assert re.search(r"failed +2026-01-07 to gone@example.org \(attempts 1: 550 ", text)
    assert "Not sent to: 1 unsubscribed or suppressed" in text
    assert re.search(r"suppressed +gone@example.org +since .*3 hard failures", text)
