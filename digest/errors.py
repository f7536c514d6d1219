"""Errors a user can act on. Each carries a one-line message and the exit code it maps to.

    DigestError                 exit 1: something failed; the message says what
    ├── ConfigError             exit 2: a configuration or subscriber file is wrong
    ├── UsageError              exit 2: the command line asks for something impossible
    ├── SourceError             exit 1: a source could not be fetched or parsed
    ├── DeliveryError           exit 1: the mail server or Maildir refused the digest
    └── LockHeld                exit 75: another run holds the lock (EX_TEMPFAIL)

The library raises these and never exits; `digest.cli` turns them into one line on stderr
and the exit code.
"""

from __future__ import annotations

from pathlib import Path


class DigestError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(DigestError):
    """A file is unreadable or invalid. The message names the file, the key and the line."""

    exit_code = 2

    def __init__(
        self, path: Path | str, message: str, *, key: str | None = None, line: int | None = None
    ) -> None:
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if key is not None:
            where += f", key '{key}'"
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.key = key
        self.line = line


class UsageError(DigestError):
    exit_code = 2


class SourceError(DigestError):
    """A source failed. The message names the source and the URL it was fetching."""

    def __init__(self, source: str, url: str, problem: str) -> None:
        super().__init__(f"source {source}: {url}: {problem}")
        self.source = source
        self.url = url
        self.problem = problem


class DeliveryError(DigestError):
    pass


class LockHeld(DigestError):
    exit_code = 75


class FetchError(DigestError):
    """An HTTP fetch failed after its retries. Sources wrap it into a `SourceError`."""

    def __init__(self, url: str, problem: str, *, status: int | None = None) -> None:
        super().__init__(f"{url}: {problem}")
        self.url = url
        self.problem = problem
        self.status = status  # None: no HTTP answer at all (refused, timed out, reset)
