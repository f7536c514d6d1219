"""Draining the outbox: SMTP or a local Maildir.

Messages are rendered and queued before anything is sent (see `store.queue`), so delivery
only moves rows: queued → sent, deferred (4xx, retried later) or failed (5xx). A crash
between the server's "250" and our commit can send one message twice, with the same
Message-ID; nothing else can.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import logging
import mailbox
import os
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from digest.config import DeliveryConfig
from digest.errors import DeliveryError
from digest.store import Store

log = logging.getLogger(__name__)

RETRY_BASE = dt.timedelta(minutes=5)
RETRY_MAX = dt.timedelta(hours=6)


class Transport(Protocol):
    def send(self, sender: str, recipient: str, message: bytes) -> None: ...

    def close(self) -> None: ...


class TransientError(Exception):
    """The server said "try later" (4xx) or went away."""


class PermanentError(Exception):
    """The server refused the message for good (5xx)."""


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
    """One SMTP connection for the whole batch, reconnected if the server drops it.

    TLS certificates are always verified (`ssl.create_default_context`; set
    `SSL_CERT_FILE` to trust a private CA). The password comes from the environment.
    """

    def __init__(self, settings: DeliveryConfig) -> None:
        self.settings = settings
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
            except smtplib.SMTPRecipientsRefused as error:
                code, text = error.recipients.get(recipient, (550, b"refused"))
                raise _by_code(code, text) from error
            except smtplib.SMTPResponseException as error:
                raise _by_code(error.smtp_code, error.smtp_error) from error

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._connection.quit()
            self._connection = None


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


def drain_outbox(
    store: Store, transport: Transport, sender: str, now: dt.datetime
) -> DeliveryReport:
    """Send every due message in the outbox, recording each outcome as it happens."""
    envelope_from = email.utils.parseaddr(sender)[1]
    sent = deferred = failed = 0
    for delivery in store.due_deliveries(now):
        attempts = delivery.attempts + 1
        try:
            transport.send(envelope_from, delivery.subscriber, delivery.message)
        except TransientError as error:
            wait = min(RETRY_BASE * 2 ** (attempts - 1), RETRY_MAX)
            store.mark_deferred(delivery.id, str(error), now + wait, attempts)
            log.warning("deferred %s (%s): %s", delivery.subscriber, delivery.digest_key, error)
            deferred += 1
            continue
        except PermanentError as error:
            store.mark_failed(delivery.id, str(error), attempts)
            log.error("failed %s (%s): %s", delivery.subscriber, delivery.digest_key, error)
            failed += 1
            continue
        store.mark_sent(delivery.id, dt.datetime.now(dt.UTC))
        log.info("sent %s to %s", delivery.digest_key, delivery.subscriber)
        sent += 1
    return DeliveryReport(sent=sent, deferred=deferred, failed=failed)


def check_smtp(settings: DeliveryConfig) -> None:
    """Connect, secure the connection and log in, as a send would; raise if that fails."""
    if settings.transport != "smtp":
        raise DeliveryError('delivery.transport is not "smtp": nothing to check')
    transport = SMTPTransport(settings)
    transport._connection = transport._connect()
    transport.close()
