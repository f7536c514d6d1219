"""Loading and validating `digest.toml` and the subscriber files.

Everything is validated before anything runs; every problem is a `ConfigError` naming the
file, the key and (where it can be found) the line:

    config = load_config(Path("digest.toml"))        # settings and every subscriber
    ada = load_subscriber(Path("subscribers/ada.toml"))

Relative paths in `digest.toml` are resolved against its folder here, once, so the rest of
the program only ever sees absolute paths.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import zoneinfo
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import unquote
from operator import attrgetter
from pathlib import Path
from urllib.parse import urlsplit

from digest.errors import ConfigError
from digest.ids import is_arxiv_id, strip_version
from digest.models import Interests, Subscriber
from digest.tomlfile import MISSING, Table, did_you_mean, read_table, with_hint
from digest.tomlfile import dotted as dotted  # re-exported: it used to live here

SOURCE_KINDS = ("huggingface", "arxiv", "feed")
TRANSPORTS = ("smtp", "maildir")
SECURITIES = ("tls", "starttls", "none")
FREQUENCIES = ("daily", "weekly")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_BASE_URLS = {"huggingface": "https://huggingface.co", "arxiv": "https://export.arxiv.org"}
DEFAULT_PORTS = {"tls": 465, "starttls": 587, "none": 25}


@dataclass(frozen=True)
class SourceConfig:
    """One `[[sources]]` entry. `name` identifies it in messages and in the store.

    `base_url` is the site of a Hugging Face or arXiv source (empty for a feed, whose whole
    address is `url`).
    """

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
    rate: float = 10.0  # SMTP messages per second; 0: no limit


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
            return Path(self.database[len(prefix) :].split("?", 1)[0]).parent
        return self.path.parent

    def today(self) -> dt.date:
        """Today in the configured time zone."""
        return dt.datetime.now(zoneinfo.ZoneInfo(self.timezone)).date()


# ------------------------------------------------------------------ value checks

_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CATEGORY = re.compile(r"^[a-z][a-z-]*(\.[A-Za-z][A-Za-z-]*)?$")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_WHITESPACE = re.compile(r"\s")  # what str.isspace() calls a space


def address_problem(address: str) -> str | None:
    """Why `address` is not a plausible `local@domain` mailbox, or None when it is."""
    usage = "an email address looks like name@example.org"
    if _WHITESPACE.search(address):
        return "an email address must not contain spaces or line breaks"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return usage
    if not _LOCAL_PART.match(local):
        return f"'{local}' is not a valid mailbox name (the part before @)"
    for label in domain.split("."):
        try:
            # an internationalised label must become a DNS one ("bücher" → "xn--bcher-kva")
            ascii_label = label if label.isascii() else label.encode("idna").decode("ascii")
        except UnicodeError:
            return f"'{domain}' is not a valid domain name"
        if not _DNS_LABEL.match(ascii_label):
            return f"'{domain}' is not a valid domain name"
    if address.isascii():
        # Passing the patterns above makes it dot-atom@dot-atom, which the email parser
        # reads back unchanged; asking it costs ~100 µs, most of loading a subscriber.
        return None
    try:
        parsed = Address(addr_spec=address)
    except (HeaderParseError, ValueError, IndexError):
        return usage
    return None if parsed.addr_spec == address else usage


def _nonblank(table: Table, key: str, default: object = MISSING) -> str:
    """The string at `key`, stripped; a blank one is refused rather than taken as unset."""
    value = table.string(key, default).strip()
    if not value:
        raise table.error(key, message="must not be empty")
    return value


def _check_address(table: Table, key: str, address: str) -> None:
    problem = address_problem(address)
    if problem:
        raise table.error(key, message=problem)


def _sender(table: Table) -> str:
    """`Name <addr>` or a bare address, returned in a form safe for a From header."""
    value = table.string("sender", "digest <digest@localhost>").strip()
    found = re.fullmatch(r"(.*?)\s*<([^<>]*)>", value)
    name, address = (found.group(1).strip(), found.group(2).strip()) if found else ("", value)
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = unquote(name)
    if "<" in name or ">" in name or (not found and " " in value):
        raise table.error("sender", message='expected "Name <address@example.org>" or an address')
    _check_address(table, "sender", address)
    return str(Address(display_name=name, addr_spec=address)) if name else address


def _http_url(table: Table, key: str, default: object = MISSING) -> str:
    value = table.string(key, default).strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        message = f'expected an http(s) URL such as "https://example.org", got "{value}"'
        raise table.error(key, message=message)
    return value


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _timezone(table: Table) -> str:
    value = table.string("timezone", "UTC").strip()
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        message = f'unknown time zone "{value}" (use an IANA name such as "Europe/Berlin")'
        hint = did_you_mean(value, zoneinfo.available_timezones())
        raise table.error("timezone", message=with_hint(message, hint)) from None
    return value


def _database(table: Table, base: Path) -> str:
    """The SQLAlchemy URL, with a relative SQLite file made absolute ("sqlite:////abs")."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    value = table.string("database", "sqlite:///digest.db").strip()
    try:
        url = make_url(value)
    except ArgumentError:
        message = 'expected a SQLAlchemy URL such as "sqlite:///digest.db"'
        raise table.error("database", message=message) from None
    name = url.database
    if url.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return value
    if name.startswith("file:"):  # SQLite URI filenames are left to SQLite
        return value
    absolute = str((base / Path(name).expanduser()).resolve())
    return url.set(database=absolute).render_as_string(hide_password=False)


def _path(table: Table, key: str, base: Path, default: object = MISSING) -> Path:
    return (base / Path(_nonblank(table, key, default)).expanduser()).resolve()


def _folder_that_exists(table: Table, key: str, base: Path, default: object = MISSING) -> Path:
    folder = _path(table, key, base, default)
    if not folder.is_dir():
        raise table.error(key, message=f"folder {folder} does not exist")
    return folder


# ------------------------------------------------------------------ subscribers

_SUBSCRIBER_KEYS = (
    "name",
    "email",
    "frequency",
    "weekday",
    "max_papers",
    "min_upvotes",
    "send_empty",
    "interests",
)
_INTEREST_KEYS = ("description", "keywords", "exclude", "authors", "liked")
_ABOVE = "belongs above [interests]: TOML puts every key after a [table] line into that table"
_SUBSCRIBER_HINTS = {
    k: f"did you mean 'interests.{k}'? (put it under [interests])" for k in _INTEREST_KEYS
}
_INTEREST_HINTS = {k: f"'{k}' {_ABOVE}" for k in _SUBSCRIBER_KEYS}


def load_subscriber(path: Path) -> Subscriber:
    """One subscriber file. Its name without `.toml` becomes the slug used in feed URLs."""
    return _subscriber(Path(path))[0]


def _subscriber(path: Path) -> tuple[Subscriber, Table]:
    """The subscriber and its file's top table, which `load_subscribers` reports against."""
    top = read_table(path)
    if not _SLUG.match(path.stem):
        message = "the file name becomes the feed address: use letters, digits, '.', '-', '_'"
        raise ConfigError(path, message)
    top.check_keys(_SUBSCRIBER_KEYS, _SUBSCRIBER_HINTS)
    email = top.string("email").strip()
    _check_address(top, "email", email)
    frequency = top.choice("frequency", FREQUENCIES, "daily")
    weekday = top.choice("weekday", WEEKDAYS, "mon")
    if top.has("weekday") and frequency != "weekly":
        raise top.error("weekday", message='weekday only applies with frequency = "weekly"')
    subscriber = Subscriber(
        slug=path.stem,
        email=email,
        interests=_interests(top.table("interests", required=True)),
        name=top.string("name", "").strip(),
        frequency=frequency,
        weekday=weekday,
        max_papers=top.integer("max_papers", 15, 1, 100),
        min_upvotes=top.integer("min_upvotes", 0, 0),
        send_empty=top.boolean("send_empty", False),
        path=path,
    )
    return subscriber, top


def _interests(table: Table) -> Interests:
    table.check_keys(_INTEREST_KEYS, _INTEREST_HINTS)
    description = table.string("description", "", multiline=True).strip()
    keywords = table.strings("keywords")
    if not description and not keywords:
        message = "interests are empty: give keywords or a description of what to follow"
        raise table.error("keywords", message=message, missing=not table.has("keywords"))
    liked: list[str] = []
    for index, entry in enumerate(table.strings("liked")):
        arxiv_id = strip_version(entry)
        if not is_arxiv_id(arxiv_id):
            message = f'"{entry}" is not an arXiv id (like "2312.00752")'
            raise table.error("liked", index, message=message)
        liked.append(arxiv_id)
    return Interests(
        description=description,
        keywords=keywords,
        exclude=table.strings("exclude"),
        authors=table.strings("authors"),
        liked=tuple(liked),
    )


def load_subscribers(folder: Path) -> tuple[Subscriber, ...]:
    """Every `*.toml` in `folder`, by file name; no two may share an email address."""
    if not folder.is_dir():
        raise ConfigError(folder, "subscribers folder not found")
    subscribers: list[Subscriber] = []
    owners: dict[str, Path] = {}
    # by name: the same order as by path, as they share a folder, without comparing Paths
    found = (p for p in folder.glob("*.toml") if not p.name.startswith("."))
    paths = sorted(found, key=attrgetter("name"))
    for path in paths:
        subscriber, top = _subscriber(path)
        first = owners.setdefault(subscriber.email.lower(), path)
        if first is not path:
            message = f"{subscriber.email} is already the email of {first}"
            raise top.error("email", message=message)
        subscribers.append(subscriber)
    return tuple(subscribers)


# ------------------------------------------------------------------ digest.toml

_TOP_KEYS = ("digest", "sources", "delivery", "schedule")
_DIGEST_KEYS = (
    "title",
    "base_url",
    "sender",
    "timezone",
    "database",
    "output_dir",
    "subscribers",
    "templates",
)
_SOURCE_KEYS = {
    "huggingface": ("kind", "name", "base_url"),
    "arxiv": ("kind", "name", "categories", "base_url"),
    "feed": ("kind", "name", "url"),
}
_DELIVERY_KEYS = (
    "transport",
    "host",
    "port",
    "security",
    "username",
    "password_env",
    "maildir",
    "timeout",
    "rate",
)
_PASSWORD_HINT = (
    "the password never goes in the file: set password_env to the name of an environment "
    "variable that holds it"
)


def load_config(path: Path) -> Config:
    """`digest.toml` and every subscriber file in its `subscribers` folder, validated."""
    path = Path(path).expanduser().resolve()
    top = read_table(path, missing="no such file; create one or pass --config")
    base = path.parent
    misplaced = {k: f"did you mean 'digest.{k}'? (put it under [digest])" for k in _DIGEST_KEYS}
    top.check_keys(_TOP_KEYS, misplaced)
    settings = top.table("digest")
    settings.check_keys(_DIGEST_KEYS, {"cron": "did you mean 'schedule.cron'? (under [schedule])"})
    title = _nonblank(settings, "title", "Trending papers")
    timezone = _timezone(settings)
    templates = None
    if settings.has("templates"):
        templates = _folder_that_exists(settings, "templates", base)
    subscribers_dir = _folder_that_exists(settings, "subscribers", base, "subscribers")
    return Config(
        path=path,
        title=title,
        base_url=_http_url(settings, "base_url", "http://localhost:8080").rstrip("/"),
        sender=_sender(settings),
        timezone=timezone,
        database=_database(settings, base),
        output_dir=_path(settings, "output_dir", base, "public"),
        subscribers_dir=subscribers_dir,
        sources=_sources(top),
        delivery=_delivery(top.table("delivery"), base),
        schedule=_schedule(top, timezone),
        templates=templates,
        subscribers=load_subscribers(subscribers_dir),
    )


def _sources(top: Table) -> tuple[SourceConfig, ...]:
    tables = top.tables("sources")
    if tables is None:
        return (SourceConfig(kind="huggingface", name="huggingface"),)
    if not tables:
        raise top.error("sources", message="no sources: add at least one [[sources]] table")
    sources: list[SourceConfig] = []
    names: dict[str, int] = {}
    for index, table in enumerate(tables):
        kind = table.choice("kind", SOURCE_KINDS)
        hints = {k: f"'{k}' is not a key of a {kind} source" for k in ("categories", "url")}
        if kind == "feed":
            hints["base_url"] = "did you mean 'url'? (the feed's address)"
        else:
            hints["url"] = "did you mean 'base_url'?"
        table.check_keys(_SOURCE_KEYS[kind], hints)
        source = _source(table, kind)
        if source.name in names:
            message = f'name "{source.name}" is already used by sources[{names[source.name]}]'
            raise table.error("name", message=message, missing=not table.has("name"))
        names[source.name] = index
        sources.append(source)
    return tuple(sources)


def _source(table: Table, kind: str) -> SourceConfig:
    name = _nonblank(table, "name") if table.has("name") else ""
    if kind == "feed":
        url = _http_url(table, "url")
        return SourceConfig(kind=kind, name=name or url, base_url="", url=url)
    base_url = _http_url(table, "base_url", DEFAULT_BASE_URLS[kind]).rstrip("/")
    if kind == "huggingface":
        return SourceConfig(kind=kind, name=name or "huggingface", base_url=base_url)
    categories = table.strings("categories")
    if not categories:
        message = 'an arxiv source needs categories, e.g. categories = ["cs.CL"]'
        raise table.error("categories", message=message, missing=not table.has("categories"))
    for index, category in enumerate(categories):
        if not _CATEGORY.match(category):
            message = f'"{category}" is not an arXiv category (like "cs.CL" or "hep-th")'
            raise table.error("categories", index, message=message)
    name = name or "arxiv " + ",".join(categories)
    return SourceConfig(kind=kind, name=name, base_url=base_url, categories=categories)


def _delivery(table: Table, base: Path) -> DeliveryConfig:
    table.check_keys(_DELIVERY_KEYS, {"password": _PASSWORD_HINT})
    transport = table.choice("transport", TRANSPORTS, "maildir")
    if transport == "smtp" and not table.has("host"):
        message = 'transport "smtp" needs the mail server: host = "smtp.example.org"'
        raise table.error("host", message=message, missing=True)
    host = _nonblank(table, "host", "localhost")
    security = table.choice("security", SECURITIES, "starttls")
    if security == "none" and not _is_loopback(host):
        message = (
            f'security = "none" would send the password and every email in clear text to '
            f"{host}; it is only allowed for a server on this machine (localhost, 127.0.0.1): "
            'use "starttls" or "tls"'
        )
        raise table.error("security", message=message)
    username = table.string("username").strip() if table.has("username") else None
    password_env = table.string("password_env").strip() if table.has("password_env") else None
    if password_env is not None and not _ENV_NAME.match(password_env):
        message = (
            f'"{password_env}" is not an environment variable name (e.g. DIGEST_SMTP_PASSWORD)'
        )
        raise table.error("password_env", message=message)
    if (username is None) != (password_env is None):
        present, absent = ("username", "password_env")
        if username is None:
            present, absent = absent, present
        message = f"{present} is set but {absent} is not: a login needs both"
        raise table.error(absent, message=message, missing=True)
    timeout = table.number("timeout", 30.0)
    if timeout <= 0:
        raise table.error("timeout", message=f"must be more than 0 seconds, got {timeout:g}")
    rate = table.number("rate", DeliveryConfig.rate)
    if not 0 <= rate < float("inf"):
        message = f"messages per second must be 0 (no limit) or a positive number, got {rate:g}"
        raise table.error("rate", message=message)
    return DeliveryConfig(
        transport=transport,
        host=host,
        port=table.integer("port", DEFAULT_PORTS[security], 1, 65535),
        security=security,
        username=username,
        password_env=password_env,
        maildir=_path(table, "maildir", base, "maildir"),
        timeout=timeout,
        rate=rate,
    )


def _schedule(top: Table, timezone: str) -> ScheduleConfig | None:
    if not top.has("schedule"):
        return None
    from apscheduler.triggers.cron import CronTrigger

    table = top.table("schedule")
    table.check_keys(("cron",))
    cron = " ".join(table.string("cron", ScheduleConfig.cron).split())
    try:
        CronTrigger.from_crontab(cron, timezone=zoneinfo.ZoneInfo(timezone))
    except ValueError as exc:
        message = f'invalid cron expression "{cron}" (minute hour day month weekday): {exc}'
        raise table.error("cron", message=message) from None
    return ScheduleConfig(cron=cron)
