"""Typed reading of a TOML file, with errors that point at the line of the offending key.

`tomllib` returns plain dicts and no positions, yet someone fixing a config file needs
"digest.toml, line 12, key 'delivery.port': must be between 1 and 65535". So `KeyLines`
re-scans the text for the line each key is written on, and `Table` wraps the parsed data
with getters that check types and turn every surprise into a `ConfigError` naming the file,
the dotted key and the line:

    top = read_table(Path("digest.toml"))
    port = top.table("delivery").integer("port", 587, 1, 65535)

Nothing here knows a schema; `digest.config` holds the one for digest.toml and subscribers.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tomli as tomllib  # the same parser as the standard library's, compiled

from digest.errors import ConfigError

KeyPath = tuple[str | int, ...]

# Default of a getter whose key is required (None and "" are real defaults).
MISSING = object()

_BLANK = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")
_SPACE = re.compile(r"[ \t]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}\n#]*")
_NEWLINE = re.compile(r"\n")
# C0 controls and DEL, but for tab (and line breaks, in a multi-line string)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_BUT_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TYPE_NAMES: dict[type, str] = {
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
    dt.datetime: "a date-time",
    dt.date: "a date",
    dt.time: "a time",
}


def dotted(path: KeyPath) -> str:
    """("sources", 2, "kind") → "sources[2].kind"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A hint naming the closest candidate, or "" when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def with_hint(message: str, hint: str) -> str:
    return f"{message}; {hint}" if hint else message


# ------------------------------------------------------------------ where keys are written


class KeyLines:
    """The line each key (and table header) is written on.

    tomllib gives no positions, so this re-scans text that tomllib already accepted; it
    therefore only has to follow valid TOML: headers, dotted keys, strings of all four
    kinds, arrays and inline tables (whose items get paths too: "sources[0].kind").

    The scan waits for the first `near`: only an error needs a line, and scanning every
    valid file up front was most of the time of loading 10,000 subscribers.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: dict[KeyPath, int] = {}
        self.arrays: dict[KeyPath, int] = {}
        self.newlines: list[int] = []
        self.scanned = False

    def near(self, path: KeyPath) -> int | None:
        """The line of `path`, else of the closest enclosing table that is written."""
        if not self.scanned:
            self.scanned = True
            self.newlines = [found.start() for found in _NEWLINE.finditer(self.text)]
            # Lines are a courtesy: on a surprise keep those found rather than hide the error.
            with contextlib.suppress(IndexError, ValueError, AssertionError):
                self._scan()
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
                if found is None:  # not an assert: it must stop the scan even under -O
                    raise ValueError(f"no key at offset {self.pos}")
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


def read_table(path: Path, missing: str = "no such file") -> Table:
    """The top table of the TOML file at `path`; `missing` is the message if there is none."""
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
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, line = _split_decode_error(str(exc), text)
        raise ConfigError(path, f"not valid TOML: {message}", line=line) from None
    return Table(path, data, KeyLines(text))


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
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _has_control(text: str, *, multiline: bool = False) -> bool:
    return (_CONTROL_BUT_BREAKS if multiline else _CONTROL).search(text) is not None


@dataclass(frozen=True, eq=False)
class Table:
    """Typed access to one TOML table, turning every surprise into a `ConfigError`.

    `at` is where the table sits in its file (`("sources", 0)`), so that errors can name
    the full key and find its line in `lines`.
    """

    path: Path
    data: Mapping[str, object]
    lines: KeyLines
    at: KeyPath = ()

    def error(self, *key: str | int, message: str, missing: bool = False) -> ConfigError:
        """A `ConfigError` at `key`; for a missing key, at the table that should hold it."""
        full = (*self.at, *key)
        line = self.lines.near(full[:-1] if missing else full)
        return ConfigError(self.path, message, key=dotted(full) or None, line=line)

    def has(self, key: str) -> bool:
        return key in self.data

    def check_keys(self, allowed: Iterable[str], hints: Mapping[str, str] | None = None) -> None:
        """Refuse keys the schema does not know, suggesting the nearest known one."""
        allowed = tuple(allowed)
        where = f"[{dotted(self.at)}]" if self.at else "this file"
        for key in self.data:
            if key not in allowed:
                hint = (hints or {}).get(key) or did_you_mean(key, allowed)
                raise self.error(key, message=with_hint(f"unknown key '{key}' in {where}", hint))

    def _get(
        self, key: str, check: Callable[[object], bool], expected: str, default: object
    ) -> object:
        value = self.data.get(key, MISSING)
        if value is MISSING:
            if default is MISSING:
                raise self.error(key, message=f"missing required key '{key}'", missing=True)
            return default
        if not check(value):
            raise self.error(key, message=f"expected {expected}, got {_describe(value)}")
        return value

    def string(self, key: str, default: object = MISSING, *, multiline: bool = False) -> str:
        value = self._get(key, lambda v: isinstance(v, str), "a string", default)
        assert isinstance(value, str)
        if _has_control(value, multiline=multiline):
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

    def choice(self, key: str, choices: tuple[str, ...], default: object = MISSING) -> str:
        value = self.string(key, default)
        if value not in choices:
            message = f'"{value}" is not one of ' + ", ".join(f'"{c}"' for c in choices)
            raise self.error(key, message=with_hint(message, did_you_mean(value, choices)))
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

    def table(self, key: str, *, required: bool = False) -> Table:
        """The sub-table `key`; an empty one when it is absent and optional."""
        default: object = MISSING if required else {}
        value = self._get(key, lambda v: isinstance(v, dict), "a table", default)
        assert isinstance(value, dict)
        return Table(self.path, value, self.lines, (*self.at, key))

    def tables(self, key: str) -> list[Table] | None:
        """The array of tables `key`, or None when it is absent."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            expected = f"an array of tables ([[{key}]])"
            raise self.error(key, message=f"expected {expected}, got {_describe(value)}")
        return [
            Table(self.path, item, self.lines, (*self.at, key, i)) for i, item in enumerate(value)
        ]
