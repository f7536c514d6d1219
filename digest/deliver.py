"""Draining the outbox: SMTP or a local Maildir.

Messages are rendered and queued before anything is sent (see `store.queue`), so delivery
only moves rows: queued → sent, deferred (4xx: retried a few times within the run, then on
later runs), failed (5xx) or skipped (the subscriber left after the digest was queued). A
crash between the server's "250" and our commit can send one message twice, with the same
Message-ID; nothing else can.

An address refused permanently `HARD_FAILURE_LIMIT` times in a row is suppressed: later
runs neither plan nor send anything for it until `digest subscribers --activate` says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import logging
import mailbox
import multiprocessing
import os
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

from digest.config import DeliveryConfig
from digest.errors import DeliveryError
from digest.store import ACTIVE, Delivery, Outbox, Store

log = logging.getLogger(__name__)

# Waits before the second and third pass over messages that got a 4xx within one run;
# whatever still fails is deferred to later runs with RETRY_BASE doubling up to RETRY_MAX.
IN_RUN_RETRY_DELAYS: tuple[float, ...] = (2.0, 10.0)
RETRY_BASE = dt.timedelta(minutes=5)
RETRY_MAX = dt.timedelta(hours=6)
# RFC 5321 §4.5.4.1: give up on a temporarily refused message after 4-5 days.
GIVE_UP_AFTER = dt.timedelta(days=5)
HARD_FAILURE_LIMIT = 3

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class Transport(Protocol):
    def send(self, sender: str, recipient: str, message: bytes) -> None: ...

    def close(self) -> None: ...


class TransientError(Exception):
    """The server said "try later" (4xx) or went away."""


class PermanentError(Exception):
    """The server refused the message for good (5xx)."""


class RateLimit:
    """At most `per_second` calls to `wait()` per second (0: no limit), spaced evenly so a
    batch never bursts."""

    def __init__(
        self, per_second: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.clock = clock
        self.sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if self._next is not None and now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


class MaildirTransport:
    """Writes each message into a Maildir (`new/`), atomically, as a local mail client
    would receive it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.maildir = mailbox.Maildir(path, factory=None, create=True)
        except OSError as error:
            raise DeliveryError(f"maildir {path}: {error.strerror}") from error

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        try:
            self.maildir.add(message)
        except OSError as error:
            raise TransientError(f"maildir {self.path}: {error.strerror}") from error

    def close(self) -> None:
        self.maildir.close()


class SMTPTransport:
    """One SMTP connection for the whole batch, reconnected if the server drops it, paced
    at `settings.rate` messages per second.

    TLS certificates are always verified (`ssl.create_default_context`; set
    `SSL_CERT_FILE` to trust a private CA). The password comes from the environment.
    """

    def __init__(
        self,
        settings: DeliveryConfig,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.settings = settings
        self.rate = RateLimit(settings.rate, clock, sleep)
        self._connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        where = f"SMTP {settings.host}:{settings.port}"
        context = ssl.create_default_context()
        try:
            if settings.security == "tls":
                connection: smtplib.SMTP = smtplib.SMTP_SSL(
                    settings.host, settings.port, timeout=settings.timeout, context=context
                )
            else:
                connection = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        except ssl.SSLCertVerificationError as error:
            raise DeliveryError(
                f"{where}: TLS certificate not trusted ({error.verify_message})"
            ) from error
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"{where}: cannot connect ({error})") from error
        try:
            if settings.security == "starttls":
                connection.starttls(context=context)
            if settings.username:
                connection.login(settings.username, self._password())
        except (OSError, smtplib.SMTPException, DeliveryError) as error:
            connection.close()
            raise DeliveryError(f"{where}: {_setup_problem(error, settings)}") from error
        return connection

    def _password(self) -> str:
        name = self.settings.password_env
        password = os.environ.get(name) if name else None
        if password is None:
            raise DeliveryError(
                f"SMTP login as {self.settings.username!r} needs a password: set the "
                f"environment variable named by delivery.password_env ({name or 'unset'})"
            )
        return password

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        self.rate.wait()
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._connect()
            try:
                self._connection.sendmail(sender, [recipient], message)
                return
            except smtplib.SMTPServerDisconnected as error:
                self._connection = None
                if attempt == 2:
                    raise TransientError(f"server disconnected: {error}") from error
                log.info("SMTP server disconnected; reconnecting")
            except smtplib.SMTPRecipientsRefused as error:
                code, text = error.recipients.get(recipient, (550, b"refused"))
                raise self._refused(code, text) from error
            except smtplib.SMTPResponseException as error:
                raise self._refused(error.smtp_code, error.smtp_error) from error

    def _refused(self, code: int, text: bytes | str) -> Exception:
        if code == 421:  # "closing transmission channel": the next send needs a new one
            self._drop()
        return _by_code(code, text)

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
            self._connection = None

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._connection.quit()
            self._drop()


def _setup_problem(error: Exception, settings: DeliveryConfig) -> str:
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return "the server does not offer STARTTLS"
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"login as {settings.username!r} refused ({error.smtp_code})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({error.verify_message})"
    if isinstance(error, DeliveryError):
        return error.message
    return f"cannot connect ({error})"


def _by_code(code: int, text: bytes | str) -> Exception:
    reason = text.decode(errors="replace") if isinstance(text, bytes) else text
    message = f"{code} {reason}".strip()
    return TransientError(message) if 400 <= code < 500 else PermanentError(message)


def open_transport(settings: DeliveryConfig) -> Transport:
    if settings.transport == "smtp":
        return SMTPTransport(settings)
    if settings.maildir is None:
        raise DeliveryError("delivery.maildir is not set")
    return MaildirTransport(settings.maildir)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0  # the subscriber unsubscribed or was suppressed after queueing
    suppressed: int = 0  # addresses suppressed by this run

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self))
        )


def drain_outbox(
    store: Store,
    transport: Transport,
    sender: str,
    now: dt.datetime,
    *,
    retry_delays: Sequence[float] = IN_RUN_RETRY_DELAYS,
    sleep: Sleep = time.sleep,
) -> DeliveryReport:
    """Send every due message in the outbox, recording each outcome as it happens.

    Messages refused with a 4xx are tried again after each of `retry_delays` (one pass over
    all of them per delay, so the wait does not grow with their number), then deferred to
    a later run. Raises `DeliveryError` when the server cannot be reached at all; what was
    not sent stays due.
    """
    envelope_from = email.utils.parseaddr(sender)[1]
    counts = {"sent": 0, "deferred": 0, "failed": 0, "skipped": 0, "suppressed": 0}
    tries: dict[int, int] = {}
    pending = store.due_deliveries(now)
    errors: dict[int, TransientError] = {}
    with store.outbox() as outbox:
        for delay in (None, *retry_delays):
            if not pending:
                break
            if delay is not None:
                log.info("%d messages refused for now; trying again in %gs", len(pending), delay)
                sleep(delay)
            errors = {}
            for delivery in pending:
                tries[delivery.id] = tries.get(delivery.id, 0) + 1
                outcome = _send_one(outbox, transport, envelope_from, delivery, now, tries)
                if isinstance(outcome, TransientError):
                    errors[delivery.id] = outcome
                else:
                    for key in outcome:
                        counts[key] += 1
            pending = [delivery for delivery in pending if delivery.id in errors]
        for delivery in pending:
            _defer(outbox, delivery, errors[delivery.id], now, tries[delivery.id], counts)
    return DeliveryReport(**counts)


def _send_one(
    outbox: Outbox,
    transport: Transport,
    envelope_from: str,
    delivery: Delivery,
    now: dt.datetime,
    tries: dict[int, int],
) -> TransientError | tuple[str, ...]:
    """Send one message and record what happened; a TransientError is left to the caller."""
    # Re-checked just before sending: an unsubscribe may have come in since queueing.
    state = outbox.subscriber_state(delivery.subscriber)
    if state.state != ACTIVE:
        outbox.mark_skipped(delivery.id, state.state)
        log.info("skipped %s (%s): %s", delivery.subscriber, delivery.digest_key, state.state)
        return ("skipped",)
    attempts = delivery.attempts + tries[delivery.id]
    try:
        transport.send(envelope_from, delivery.subscriber, delivery.message)
    except TransientError as error:
        return error
    except PermanentError as error:
        outbox.mark_failed(delivery.id, str(error), attempts)
        log.error("failed %s (%s): %s", delivery.subscriber, delivery.digest_key, error)
        limit = HARD_FAILURE_LIMIT
        if outbox.record_hard_failure(delivery.subscriber, str(error), now, limit):
            log.error("suppressed %s after %d hard failures", delivery.subscriber, limit)
            return ("failed", "suppressed")
        return ("failed",)
    outbox.mark_sent(delivery.id, dt.datetime.now(dt.UTC), attempts)
    if state.hard_failures:
        outbox.clear_hard_failures(delivery.subscriber)
    log.info("sent %s to %s", delivery.digest_key, delivery.subscriber)
    return ("sent",)


def _defer(
    outbox: Outbox,
    delivery: Delivery,
    error: TransientError,
    now: dt.datetime,
    tries: int,
    counts: dict[str, int],
) -> None:
    attempts = delivery.attempts + tries
    created = dt.datetime.fromisoformat(delivery.created_at)
    if now - created >= GIVE_UP_AFTER:
        message = f"gave up after {(now - created).days} days: {error}"
        outbox.mark_failed(delivery.id, message, attempts)
        log.error("failed %s (%s): %s", delivery.subscriber, delivery.digest_key, message)
        counts["failed"] += 1
        return
    wait = min(RETRY_BASE * 2 ** min(attempts - 1, 20), RETRY_MAX)
    outbox.mark_deferred(delivery.id, str(error), now + wait, attempts)
    log.warning("deferred %s (%s): %s", delivery.subscriber, delivery.digest_key, error)
    counts["deferred"] += 1


def check_smtp(settings: DeliveryConfig) -> None:
    """Connect, secure the connection and log in, as a send would; raise if that fails."""
    if settings.transport != "smtp":
        raise DeliveryError('delivery.transport is not "smtp": nothing to check')
    transport = SMTPTransport(settings)
    transport._connection = transport._connect()
    transport.close()


class Courier:
    """Sends what is queued from a forked process while the run goes on queueing.

    A large run renders and queues its digests in batches; with a courier the first batch
    is on its way while the next is rendered, and the feeds are written while the last is
    sent (the SMTP round trips leave the CPU idle, rendering fills it). Each message is
    still marked sent in its own transaction as it goes, so a crash of either process costs
    what a crash of one process would. The child inherits the run lock's descriptor: no
    other run can start while it is still sending, even if the parent was killed.

        with Courier(database, settings, sender, now) as courier:
            ...  # queue a batch, then
            courier.queued()
        report = courier.report  # or DeliveryError, raised on leaving the block
    """

    def __init__(self, database: str, settings: DeliveryConfig, sender: str, now: dt.datetime):
        self.report = DeliveryReport()
        context = multiprocessing.get_context("fork")
        self._here, there = context.Pipe()
        self._process = context.Process(
            target=_courier, args=(database, settings, sender, now, there, self._here)
        )
        self._process.start()
        there.close()

    def queued(self) -> None:
        """More messages are committed to the outbox: send them."""
        with contextlib.suppress(OSError):  # the child is gone; leaving the block says why
            self._here.send(_MORE)

    def __enter__(self) -> Courier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Wait for the courier to send everything queued, even when the run failed: what
        is committed is due, and this run is the one holding the lock."""
        with contextlib.suppress(OSError):
            self._here.send(_DONE)
        try:
            outcome, value = self._here.recv()
        except (EOFError, OSError):  # a reset when it died with our notes unread
            outcome, value = "died", None
        finally:
            self._here.close()
            self._process.join()
        if outcome == "ok":
            assert isinstance(value, DeliveryReport)
            self.report = value
            return
        if outcome == "error":
            problem = str(value)
        else:
            problem = f"the delivery process died (exit code {self._process.exitcode}); what it "
            problem += "did not send stays queued"
        if exc_info[0] is None:
            raise DeliveryError(problem)
        log.error("%s", problem)


_MORE, _DONE = "more", "done"


def _courier(
    database: str,
    settings: DeliveryConfig,
    sender: str,
    now: dt.datetime,
    inbox: Connection,
    parent_end: Connection,
) -> None:
    """The courier's loop: drain the outbox each time the parent says more is queued, and
    once more when it says it is done (or died: what is queued is sent all the same)."""
    # The fork copied the parent's end of the pipe too: while it is open here, the
    # parent's death would never read as end-of-file, and this would wait forever.
    parent_end.close()
    total = DeliveryReport()
    try:
        store = Store(database)  # its own connections: none opened before the fork is used
        transport = open_transport(settings)
        try:
            done = False
            while not done:
                done = _wait(inbox)
                total += drain_outbox(store, transport, sender, now)
        finally:
            transport.close()
            store.close()
        inbox.send(("ok", total))
    except Exception as error:  # reported by the parent, which owns the run's outcome
        with contextlib.suppress(OSError):
            inbox.send(("error", str(error)))
    finally:
        inbox.close()


def _wait(inbox: Connection) -> bool:
    """Block until the parent says something; take everything it said. True when done."""
    said = []
    try:
        said.append(inbox.recv())
        while inbox.poll():
            said.append(inbox.recv())
    except (EOFError, OSError):  # the parent is gone: send what it queued, then stop
        return True
    return _DONE in said
