"""Header fields written directly, without a round trip through the email package.

Building an `EmailMessage` and serialising it costs more than rendering both templates;
the digest's headers are few and their values already cleaned, so they are written here:
ASCII words as they are, runs of non-ASCII words as RFC 2047 encoded words (UTF-8, "q" or
"b", whichever is shorter, the way Python chooses), folded at spaces to 78 columns.

Nothing written here can add a field: a value with a control character is refused before
it is encoded, a word that looks like an encoded word is itself encoded (so it reads back
literally), and `check_head` checks the finished header block line by line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from itertools import pairwise

from digest.errors import DigestError

MAX_LINE = 78
# An encoded word may be 75 characters; ours fit after "Subject: " on a 78-column line.
_EW_ROOM = MAX_LINE - len("Subject: =?utf-8?b??=")
_LINE_BREAK = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_Q_SAFE = frozenset(b"-!*+/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_Q_BYTE = [chr(b) if b in _Q_SAFE else f"={b:02X}" for b in range(256)]
_Q_BYTE[ord(" ")] = "_"
_ATEXT_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_ADDR_SPEC = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)


def _q(data: bytes) -> str:
    return "".join([_Q_BYTE[b] for b in data])


def _encoded_words(text: str) -> list[str]:
    """`text` as encoded words, split between characters so none is over 75 columns."""
    words: list[str] = []
    chunk = ""
    for char in text:
        longer = chunk + char
        if len(base64.b64encode(longer.encode("utf-8"))) > _EW_ROOM and chunk:
            words.append(_encoded_word(chunk))
            longer = char
        chunk = longer
    if chunk:
        words.append(_encoded_word(chunk))
    return words


def _encoded_word(text: str) -> str:
    data = text.encode("utf-8")
    b = base64.b64encode(data).decode("ascii")
    q = _q(data)
    return f"=?utf-8?q?{q}?=" if len(q) - len(b) < 5 and len(q) <= _EW_ROOM else f"=?utf-8?b?{b}?="


def _needs_encoding(word: str) -> bool:
    return not word.isascii() or "=?" in word


def header_words(value: str) -> list[str]:
    """An unstructured value (a Subject, a display name) as words ready to fold.

    Consecutive words that need encoding share encoded words, the spaces between them
    inside (a reader drops the space between two encoded words)."""
    _check_text(value)
    out: list[str] = []
    run: list[str] = []
    for word in value.split(" "):
        if _needs_encoding(word):
            run.append(word)
            continue
        if run:
            out.extend(_encoded_words(" ".join(run)))
            run = []
        out.append(word)
    if run:
        out.extend(_encoded_words(" ".join(run)))
    return out


def _check_text(value: str) -> None:
    if _LINE_BREAK.search(value):
        raise DigestError(f"{value[:40]!r} has a line break or control character: not a header")


def fold(name: str, words: Sequence[str]) -> str:
    """`Name: words` folded at spaces to 78 columns, each line ended by CRLF."""
    lines: list[str] = []
    line = f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > MAX_LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {word}"
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def fits_one_line(name: str, value: str) -> bool:
    """Whether `fold` writes this unstructured value on a single line."""
    return fold(name, header_words(value)).count("\r\n") == 1


def address(display_name: str, addr_spec: str) -> list[str] | None:
    """`Name <addr>` as words to fold; None when the address or the name needs the email
    package (quoting, an unusual address), which the caller then falls back to."""
    if not _ADDR_SPEC.fullmatch(addr_spec):
        return None
    if not display_name:
        return [addr_spec]
    split = display_name.split(" ")
    if "" in split or not all(_needs_encoding(w) or _ATEXT_PHRASE.fullmatch(w) for w in split):
        return None  # a word that needs quoting
    words = header_words(display_name)
    if any(a.startswith("=?") and b.startswith("=?") for a, b in pairwise(words)):
        return None  # Python's address parser keeps the space between two encoded words
    return [*words, f"<{addr_spec}>"]


def check_head(head: str, names: Sequence[str]) -> None:
    """The header block has exactly these fields in this order, 7-bit, CRLF-ended lines.

    The cheap guard in place of parsing the message again: every line is either a
    continuation (starting with a space) or the start of the next expected field."""
    if not head.isascii() or "\r\n" not in head or head.count("\r") != head.count("\n"):
        raise DigestError("a header field has a stray line break; not sent")
    expected = iter(names)
    for line in head.split("\r\n")[:-1]:
        if len(line) > 998:
            raise DigestError("a header line is over 998 characters; not sent")
        if line[:1] in (" ", "\t"):
            continue
        name = next(expected, None)
        if name is None or not line.startswith(f"{name}:"):
            raise DigestError(f"header line {line[:40]!r} is not one we set; not sent")
    if next(expected, None) is not None:
        raise DigestError("a header field is missing; not sent")
