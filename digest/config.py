"""Loading and validating `digest.toml` and the subscriber files.

Everything is validated before anything runs; every problem is a `ConfigError` naming the
file, the key and (where it can be found) the line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from digest.models import Subscriber

SOURCE_KINDS = ("huggingface", "arxiv", "feed")


@dataclass(frozen=True)
class SourceConfig:
    """One `[[sources]]` entry. `name` identifies it in messages and in the store."""

    kind: str
    name: str
    base_url: str = "https://huggingface.co"
    categories: tuple[str, ...] = ()
    url: str | None = None


@dataclass(frozen=True)
class DeliveryConfig:
    transport: str = "maildir"  # "smtp" or "maildir"
    host: str = "localhost"
    port: int = 587
    security: str = "starttls"  # "tls", "starttls" or "none" (loopback only)
    username: str | None = None
    password_env: str | None = None
    maildir: Path | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class ScheduleConfig:
    cron: str = "0 7 * * mon-fri"


@dataclass(frozen=True)
class Config:
    path: Path
    title: str
    base_url: str
    sender: str
    timezone: str
    database: str
    output_dir: Path
    subscribers_dir: Path
    sources: tuple[SourceConfig, ...]
    delivery: DeliveryConfig
    subscribers: tuple[Subscriber, ...]
    schedule: ScheduleConfig | None = None
    templates: Path | None = None

    @property
    def data_dir(self) -> Path:
        """Where the lock file and the generated secret live: the database's folder for a
        SQLite URL, otherwise the folder of `digest.toml`."""
        prefix = "sqlite:///"
        if self.database.startswith(prefix) and self.database != "sqlite:///:memory:":
            return Path(self.database[len(prefix) :]).parent
        return self.path.parent

    def today(self) -> dt.date:
        """Today in the configured time zone."""
        from zoneinfo import ZoneInfo

        return dt.datetime.now(ZoneInfo(self.timezone)).date()
