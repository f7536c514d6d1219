"""Loading and validating `digest.toml` and the subscriber files.

Everything is validated before anything runs; every problem is a `ConfigError` naming the
file, the key and (where it can be found) the line:

    config = load_config(Path("digest.toml"))        # settings and every subscriber
    ada = load_subscriber(Path("subscribers/ada.toml"))

Relative paths in `digest.toml` are resolved against its folder here, once, so the rest of
the program only ever sees absolute paths.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import difflib
import ipaddress
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import unquote
from pathlib import Path
from urllib.parse import urlsplit

from digest.errors import ConfigError
from digest.ids import is_arxiv_id, strip_version
from digest.models import Interests, Subscriber

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


# ------------------------------------------------------------------ where keys are written

KeyPath = tuple[str | int, ...]

_BLANK = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")
_SPACE = re.compile(r"[ \t]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}\n#]*")


def dotted(path: KeyPath) -> str:
    """("sources", 2, "kind") → "sources[2].kind"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


class _Lines:
    """The line each key (and table header) is written on.

    tomllib gives no positions, so this re-scans text that tomllib already accepted; it
    therefore only has to follow valid TOML: headers, dotted keys, strings of all four
    kinds, arrays and inline tables (whose items get paths too: "sources[0].kind").
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: dict[KeyPath, int] = {}
        self.arrays: dict[KeyPath, int] = {}
        self.newlines = [i for i, c in enumerate(text) if c == "\n"]
        # Lines are a courtesy: on a surprise keep those found rather than hide the real error.
        with contextlib.suppress(IndexError, ValueError, AssertionError):
            self._scan()

    def near(self, path: KeyPath) -> int | None:
        """The line of `path`, else of the closest enclosing table that is written."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.found:
                return self.found[path[:end]]
        return None

    def _line(self) -> int:
        return bisect.bisect_left(self.newlines, self.pos) + 1

    def _mark(self, path: KeyPath, line: int) -> None:
        for end in range(1, len(path) + 1):
            self.found.setdefault(path[:end], line)

    def _skip(self, pattern: re.Pattern[str]) -> None:
        found = pattern.match(self.text, self.pos)
        self.pos = found.end() if found else self.pos

    def _scan(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip(_BLANK)
            if self.pos >= len(self.text):
                return
            line = self._line()
            if self.text.startswith("[[", self.pos):
                self.pos += 2
                names = self._key()
                array = (*self._resolve(names[:-1]), names[-1])
                self.arrays[array] = self.arrays.get(array, -1) + 1
                table = (*array, self.arrays[array])
                self.pos = self.text.index("]]", self.pos) + 2
            elif self.text.startswith("[", self.pos):
                self.pos += 1
                table = self._resolve(self._key())
                self.pos = self.text.index("]", self.pos) + 1
            else:
                self._pair(table, line)
                continue
            self._mark(table, line)

    def _resolve(self, names: tuple[str, ...]) -> KeyPath:
        """Header names → path, stepping into the latest item of each array of tables."""
        out: list[str | int] = []
        for name in names:
            out.append(name)
            if tuple(out) in self.arrays:
                out.append(self.arrays[tuple(out)])
        return tuple(out)

    def _pair(self, table: KeyPath, line: int) -> None:
        path = (*table, *self._key())
        self._mark(path, line)
        self.pos = self.text.index("=", self.pos) + 1
        self._skip(_SPACE)
        self._value(path)

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip(_SPACE)
            char = self.text[self.pos]
            if char == '"':
                parts.append(self._basic_string())
            elif char == "'":
                end = self.text.index("'", self.pos + 1)
                parts.append(self.text[self.pos + 1 : end])
                self.pos = end + 1
            else:
                found = _BARE_KEY.match(self.text, self.pos)
                assert found is not None
                parts.append(found.group())
                self.pos = found.end()
            self._skip(_SPACE)
            if not self.text.startswith(".", self.pos):
                return tuple(parts)
            self.pos += 1

    def _basic_string(self) -> str:
        start, end = self.pos, self.pos + 1
        while self.text[end] != '"':
            end += 2 if self.text[end] == "\\" else 1
        self.pos = end + 1
        value = tomllib.loads("k = " + self.text[start : end + 1])["k"]
        assert isinstance(value, str)
        return value

    def _value(self, path: KeyPath) -> None:
        text, start = self.text, self.pos
        quotes = text[start : start + 3]
        if quotes in ('"""', "'''"):
            end = text.index(quotes, start + 3)
            while quotes == '"""' and _escaped(text, end):
                end = text.index(quotes, end + 1)
            # up to two quotes may sit right before the closing three ('''a'''' ends in a ')
            for _ in range(2):
                end += text.startswith(quotes[0], end + 3)
            self.pos = end + 3
        elif text[start] == '"':
            self._basic_string()
        elif text[start] == "'":
            self.pos = text.index("'", start + 1) + 1
        elif text[start] in "[{":
            self._container(path, closing="]" if text[start] == "[" else "}")
        else:
            found = _SCALAR.match(text, start)
            self.pos = found.end() if found else start

    def _container(self, path: KeyPath, closing: str) -> None:
        self.pos += 1
        index = 0
        while True:
            self._skip(_BLANK)
            char = self.text[self.pos]
            if char == closing:
                self.pos += 1
                return
            if char == ",":
                self.pos += 1
            elif closing == "]":
                self._mark((*path, index), self._line())
                self._value((*path, index))
                index += 1
            else:
                self._pair(path, self._line())


def _escaped(text: str, at: int) -> bool:
    backslashes = len(text[:at]) - len(text[:at].rstrip("\\"))
    return backslashes % 2 == 1


# ------------------------------------------------------------------ typed reading

_MISSING = object()


class _File:
    """One parsed TOML file plus what is needed to point at a key in it."""

    def __init__(self, path: Path, missing: str = "no such file") -> None:
        self.path = path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(path, missing) from None
        except IsADirectoryError:
            raise ConfigError(path, "is a folder, not a TOML file") from None
        except OSError as exc:
            raise ConfigError(path, f"cannot read: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ConfigError(path, "not UTF-8 text", line=line) from None
        try:
            self.data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message, line = _split_decode_error(str(exc), text)
            raise ConfigError(path, f"not valid TOML: {message}", line=line) from None
        self.lines = _Lines(text)

    def error(self, key: KeyPath, message: str, *, missing: bool = False) -> ConfigError:
        """A `ConfigError` at `key`; for a missing key, at the table that should hold it."""
        line = self.lines.near(key[:-1] if missing else key)
        return ConfigError(self.path, message, key=dotted(key) or None, line=line)


def _split_decode_error(message: str, text: str) -> tuple[str, int]:
    found = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
    if found:
        return message[: found.start()], int(found.group(1))
    found = re.search(r"\s*\(at end of document\)$", message)
    if found:
        return message[: found.start()] + " (at the end of the file)", len(text.splitlines()) or 1
    return message, 1


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    names = {float: "a float", str: "a string", list: "an array", dict: "a table"}
    names |= {dt.datetime: "a date-time", dt.date: "a date", dt.time: "a time"}
    return names.get(type(value), type(value).__name__)


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def _with_hint(message: str, hint: str) -> str:
    return f"{message}; {hint}" if hint else message


def _has_control(text: str, allowed: str = "\t") -> bool:
    return any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in text)


class _Table:
    """Typed access to one TOML table, turning every surprise into a `ConfigError`."""

    def __init__(self, file: _File, data: Mapping[str, object], at: KeyPath) -> None:
        self.file = file
        self.data = data
        self.at = at

    def error(self, *key: str | int, message: str, missing: bool = False) -> ConfigError:
        return self.file.error((*self.at, *key), message, missing=missing)

    def has(self, key: str) -> bool:
        return key in self.data

    def check_keys(self, allowed: Iterable[str], hints: Mapping[str, str] | None = None) -> None:
        """Refuse keys the schema does not know, suggesting the nearest known one."""
        allowed = tuple(allowed)
        where = f"[{dotted(self.at)}]" if self.at else "this file"
        for key in self.data:
            if key not in allowed:
                hint = (hints or {}).get(key) or _did_you_mean(key, allowed)
                raise self.error(key, message=_with_hint(f"unknown key '{key}' in {where}", hint))

    def _get(
        self, key: str, check: Callable[[object], bool], expected: str, default: object
    ) -> object:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self.error(key, message=f"missing required key '{key}'", missing=True)
            return default
        if not check(value):
            raise self.error(key, message=f"expected {expected}, got {_describe(value)}")
        return value

    def string(self, key: str, default: object = _MISSING, *, multiline: bool = False) -> str:
        value = self._get(key, lambda v: isinstance(v, str), "a string", default)
        assert isinstance(value, str)
        if _has_control(value, "\t\r\n" if multiline else "\t"):
            raise self.error(key, message="must not contain line breaks or control characters")
        return value

    def integer(self, key: str, default: int, low: int, high: int | None = None) -> int:
        def check(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        value = self._get(key, check, "an integer", default)
        assert isinstance(value, int)
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.error(key, message=f"must be {bounds}, got {value}")
        return value

    def number(self, key: str, default: float) -> float:
        def check(v: object) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool)

        value = self._get(key, check, "a number", default)
        assert isinstance(value, int | float)
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, lambda v: isinstance(v, bool), "true or false", default)
        assert isinstance(value, bool)
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: object = _MISSING) -> str:
        value = self.string(key, default)
        if value not in choices:
            message = f'"{value}" is not one of ' + ", ".join(f'"{c}"' for c in choices)
            raise self.error(key, message=_with_hint(message, _did_you_mean(value, choices)))
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        """An array of non-blank strings, each stripped."""
        value = self._get(key, lambda v: isinstance(v, list), "an array of strings", [])
        assert isinstance(value, list)
        result: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(key, index, message=f"expected a string, got {_describe(item)}")
            if not item.strip():
                raise self.error(key, index, message="empty entry")
            if _has_control(item):
                raise self.error(key, index, message="contains a line break or control character")
            result.append(item.strip())
        return tuple(result)

    def table(self, key: str, *, required: bool = False) -> _Table:
        """The sub-table `key`; an empty one when it is absent and optional."""
        default: object = _MISSING if required else {}
        value = self._get(key, lambda v: isinstance(v, dict), "a table", default)
        assert isinstance(value, dict)
        return _Table(self.file, value, (*self.at, key))

    def tables(self, key: str) -> list[_Table] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            expected = f"an array of tables ([[{key}]])"
            raise self.error(key, message=f"expected {expected}, got {_describe(value)}")
        return [_Table(self.file, item, (*self.at, key, i)) for i, item in enumerate(value)]


# ------------------------------------------------------------------ value checks

_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CATEGORY = re.compile(r"^[a-z][a-z-]*(\.[A-Za-z][A-Za-z-]*)?$")
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def address_problem(address: str) -> str | None:
    """Why `address` is not a plausible `local@domain` mailbox, or None when it is."""
    usage = "an email address looks like name@example.org"
    if any(c.isspace() for c in address):
        return "an email address must not contain spaces or line breaks"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return usage
    if not _LOCAL_PART.match(local):
        return f"'{local}' is not a valid mailbox name (the part before @)"
    for label in domain.split("."):
        if label.isascii() and not _DNS_LABEL.match(label):
            return f"'{domain}' is not a valid domain name"
        if not label.isascii():
            try:
                label.encode("idna")
            except UnicodeError:
                return f"'{domain}' is not a valid domain name"
    try:
        parsed = Address(addr_spec=address)
    except (HeaderParseError, ValueError, IndexError):
        return usage
    return None if parsed.addr_spec == address else usage


def _email(table: _Table, key: str) -> str:
    value = table.string(key).strip()
    problem = address_problem(value)
    if problem:
        raise table.error(key, message=problem)
    return value


def _sender(table: _Table) -> str:
    """`Name <addr>` or a bare address, returned in a form safe for a From header."""
    value = table.string("sender", "digest <digest@localhost>").strip()
    found = re.fullmatch(r"(.*?)\s*<([^<>]*)>", value)
    name, address = (found.group(1).strip(), found.group(2).strip()) if found else ("", value)
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = unquote(name)
    if "<" in name or ">" in name or (not found and " " in value):
        raise table.error("sender", message='expected "Name <address@example.org>" or an address')
    problem = address_problem(address)
    if problem:
        raise table.error("sender", message=problem)
    return str(Address(display_name=name, addr_spec=address)) if name else address


def _http_url(table: _Table, key: str, default: object = _MISSING) -> str:
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


def _timezone(table: _Table) -> str:
    value = table.string("timezone", "UTC").strip()
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        message = f'unknown time zone "{value}" (use an IANA name such as "Europe/Berlin")'
        hint = _did_you_mean(value, zoneinfo.available_timezones())
        raise table.error("timezone", message=_with_hint(message, hint)) from None
    return value


def _database(table: _Table, base: Path) -> str:
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


def _path(table: _Table, key: str, base: Path, default: object = _MISSING) -> Path:
    value = table.string(key, default).strip()
    if not value:
        raise table.error(key, message="must not be empty")
    return (base / Path(value).expanduser()).resolve()


def _folder_that_exists(table: _Table, key: str, base: Path, default: object) -> Path:
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


def load_subscriber(path: Path) -> Subscriber:
    """One subscriber file. Its name without `.toml` becomes the slug used in feed URLs."""
    return _subscriber(Path(path))[0]


def _subscriber(path: Path) -> tuple[Subscriber, _File]:
    file = _File(path)
    if not _SLUG.match(path.stem):
        message = "the file name becomes the feed address: use letters, digits, '.', '-', '_'"
        raise ConfigError(path, message)
    top = _Table(file, file.data, ())
    misplaced = {
        k: f"did you mean 'interests.{k}'? (put it under [interests])" for k in _INTEREST_KEYS
    }
    top.check_keys(_SUBSCRIBER_KEYS, misplaced)
    email = _email(top, "email")
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
    return subscriber, file


def _interests(table: _Table) -> Interests:
    above = "belongs above [interests]: TOML puts every key after a [table] line into that table"
    table.check_keys(_INTEREST_KEYS, {k: f"'{k}' {above}" for k in _SUBSCRIBER_KEYS})
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
    for path in sorted(p for p in folder.glob("*.toml") if not p.name.startswith(".")):
        subscriber, file = _subscriber(path)
        first = owners.setdefault(subscriber.email.lower(), path)
        if first != path:
            message = f"{subscriber.email} is already the email of {first}"
            raise file.error(("email",), message)
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
)
_PASSWORD_HINT = (
    "the password never goes in the file: set password_env to the name of an environment "
    "variable that holds it"
)


def load_config(path: Path) -> Config:
    """`digest.toml` and every subscriber file in its `subscribers` folder, validated."""
    path = Path(path).expanduser().resolve()
    file = _File(path, missing="no such file; create one or pass --config")
    base = path.parent
    top = _Table(file, file.data, ())
    misplaced = {k: f"did you mean 'digest.{k}'? (put it under [digest])" for k in _DIGEST_KEYS}
    top.check_keys(_TOP_KEYS, misplaced)
    settings = top.table("digest")
    settings.check_keys(_DIGEST_KEYS, {"cron": "did you mean 'schedule.cron'? (under [schedule])"})
    title = settings.string("title", "Trending papers").strip()
    if not title:
        raise settings.error("title", message="must not be empty")
    timezone = _timezone(settings)
    templates = None
    if settings.has("templates"):
        templates = _folder_that_exists(settings, "templates", base, _MISSING)
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


def _sources(top: _Table) -> tuple[SourceConfig, ...]:
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


def _source(table: _Table, kind: str) -> SourceConfig:
    name = table.string("name").strip() if table.has("name") else ""
    if table.has("name") and not name:
        raise table.error("name", message="must not be empty")
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


def _delivery(table: _Table, base: Path) -> DeliveryConfig:
    table.check_keys(_DELIVERY_KEYS, {"password": _PASSWORD_HINT})
    transport = table.choice("transport", TRANSPORTS, "maildir")
    if transport == "smtp" and not table.has("host"):
        message = 'transport "smtp" needs the mail server: host = "smtp.example.org"'
        raise table.error("host", message=message, missing=True)
    host = table.string("host", "localhost").strip()
    if not host:
        raise table.error("host", message="must not be empty")
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
    return DeliveryConfig(
        transport=transport,
        host=host,
        port=table.integer("port", DEFAULT_PORTS[security], 1, 65535),
        security=security,
        username=username,
        password_env=password_env,
        maildir=_path(table, "maildir", base, "maildir"),
        timeout=timeout,
    )


def _schedule(top: _Table, timezone: str) -> ScheduleConfig | None:
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
