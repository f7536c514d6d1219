"""Turning titles, abstracts and interests into comparable terms.

A *term* is a stemmed word ("galaxi") or a phrase of consecutive stemmed words joined by
one space ("dwarf galaxi"). Papers and profiles go through the same analysis, so a
keyword written "radio-frequency interference", "Radio Frequency Interference" or "radio
and frequency interference" meets the same words in a paper. The rules are about English text in
general (hyphens, acronyms, CamelCase names, plurals, stop words), never about any topic.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, pairwise
from typing import NamedTuple

import Stemmer

# The Snowball English stop words plus a few function words the list lacks.
_STOP_WORDS_TEXT = """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can cannot could couldn't did didn't do does
    doesn't doing don't down during each etc few for from further had hadn't has hasn't
    have haven't having he her here hers herself him himself his how i if in into is isn't
    it it's its itself just let's me more most mustn't my myself no nor not of off on once
    only or other ought our ours ourselves out over own same shan't she should shouldn't so
    some such than that that's the their theirs them themselves then there there's these
    they this those through to too under until up upon very via was wasn't we were weren't
    what when where which while who whom why will with within without won't would wouldn't
    you your yours yourself yourselves e g i e vs also
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

_STEMMER = Stemmer.Stemmer("english")

# A word is a run of letters and digits; apostrophes inside English words ("don't") are
# kept so the stop word list sees them. Everything else separates words, hyphens and
# slashes included, so "star-forming" is two consecutive words.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# Punctuation that ends a clause: a phrase never spans one ("dark. Matter" is no
# "dark matter").
_CLAUSE_END = re.compile(r"[.,;:!?()\[\]{}\"]")
# LaTeX commands left in abstracts (\emph{..}, \"U): the command names are not words.
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+|\\.")
# Parts of a CamelCase or mixed-case name: "GalaxyZoo" -> Galaxy, Zoo; "SkyAGNs" -> Sky, AGNs.
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z]{2,})|[A-Z]+s(?![a-z])|[A-Z][a-z]+|[a-z]+|[A-Z]+|\d+")


class Token(NamedTuple):
    """One content word of a text: its stem, where it stands and which clause it is in."""

    stem: str
    start: int
    end: int
    clause: int


def fold(text: str) -> str:
    """Strip accents and ligatures so "José", "Jose" and "JOSÉ" compare equal once cased."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def stem(word: str) -> str:
    return str(_STEMMER.stemWord(word))


def _word_parts(word: str) -> list[tuple[str, int]]:
    """Split a mixed-case name into its words, with their offsets inside `word`.

    Only when every part is a real word or acronym (two characters or more): "CoRoT" or
    "eROSITA" would fall apart into noise, so they stay whole.
    """
    if word.islower() or word.isupper() or word.isdigit() or not word.isascii():
        return [(word, 0)]
    parts = [(m.group(), m.start()) for m in _CAMEL_PART.finditer(word)]
    if len(parts) < 2 or any(len(p) < 2 for p, _ in parts):
        return [(word, 0)]
    if sum(len(p) for p, _ in parts) != len(word):
        return [(word, 0)]
    return parts


def _normal_word(word: str) -> str:
    """Lower-case one word, reading an upper-case acronym plural ("AGNs") as the acronym."""
    if len(word) > 2 and word.endswith("s") and word[:-1].isupper():
        word = word[:-1]
    return word.casefold()


def tokens(text: str) -> list[Token]:
    """The content words of `text` in order, stemmed, stop words dropped.

    Offsets point into `text` itself, so a match can be shown exactly as the paper wrote it.
    NFKD folding can change a string's length, so words are found in the original and
    folded one at a time.
    """
    if "\\" in text:
        text = _LATEX_COMMAND.sub(lambda m: " " * len(m.group()), text)
    # Gaps and words in turn, from the gap before the first word: each word starts where
    # the text before it ends, and starts a new clause when a gap before it holds a mark.
    parts = _WORD_OR_GAP.split(text)
    starts = list(accumulate(map(len, parts)))[::2]
    clauses = accumulate(map(_clause_ends, parts[::2]))
    return [
        _new(Token, (word_stem, start + offset, start + past, clause))
        for word, start, clause in zip(parts[1::2], starts, clauses, strict=False)
        for word_stem, offset, past in _word_stems(word)
    ]


# Builds a NamedTuple (a Token) from a tuple of its fields without its Python-level __new__.
_new = tuple.__new__
_WORD_OR_GAP = re.compile(f"({_WORD.pattern})")


@lru_cache(maxsize=1 << 12)
def _clause_ends(gap: str) -> int:
    """1 when the text between two words ends a clause, else 0. Cached: gaps recur."""
    return 1 if _CLAUSE_END.search(gap) else 0


@lru_cache(maxsize=1 << 16)
def _word_stems(word: str) -> tuple[tuple[str, int, int], ...]:
    """The stems of one written word's content parts, each with where it starts and
    ends inside the word.

    Cached: a language has far fewer distinct words than a store has words.
    """
    found = []
    for part, offset in _word_parts(word):
        normal = _normal_word(fold(part))
        if normal and normal not in STOP_WORDS:
            found.append((stem(normal), offset, offset + len(part)))
    return tuple(found)


# An acronym defined in parentheses right after its long form: "… interference (RFI)".
_DEFINITION = re.compile(r"\(\s*([A-Za-z][A-Za-z]{1,9})\s*\)")


def acronyms(text: str, toks: list[Token]) -> dict[str, str]:
    """The acronyms `text` defines: long form (its stems, space-joined) → acronym stem.

    "radio-frequency interference (RFI)" gives {"radio frequenc interfer": "rfi"}: the
    capitals of the acronym are the initials of the content words just before it, so
    later mentions of "RFI" in the paper are mentions of the long form. `toks` are
    `tokens(text)`.
    """
    found: dict[str, str] = {}
    ends = [t.end for t in toks]
    for match in _DEFINITION.finditer(text):
        short = match.group(1)
        letters = [c.lower() for c in short if c.isupper()]
        count = bisect_right(ends, match.start())
        if len(letters) < 2 or count < len(letters):
            continue
        long_form = toks[count - len(letters) : count]
        if text[long_form[-1].end : match.start()].strip():
            continue
        if len({t.clause for t in long_form}) > 1:
            continue
        if [text[t.start].lower() for t in long_form] != letters:
            continue
        found[" ".join(t.stem for t in long_form)] = stem(_normal_word(fold(short)))
    return found


@dataclass(frozen=True)
class Clause:
    """A clause of an interest ("weak lensing", "stars that form in dense gas clouds")."""

    text: str
    stems: tuple[str, ...]
    # joined[i]: nothing but spaces or hyphens stand between stems i and i+1 as written,
    # so they form a phrase ("gas clouds"), unlike "stars that form".
    joined: tuple[bool, ...]

    @property
    def words(self) -> int:
        """Words as the subscriber wrote them: "star-forming dwarf-galaxies" is two."""
        return len(self.text.split())


def clause_pieces(text: str) -> list[str]:
    """`text` cut at its clause marks: `clauses` of each piece, in order, are the clauses
    of the whole. Whole when LaTeX commands could hide a mark ("\\(")."""
    if "\\" in text:
        return [text]
    return [piece for piece in _CLAUSE_END.split(text) if piece and not piece.isspace()]


def clauses(text: str) -> list[Clause]:
    """How interests are read: clause by clause ("weak lensing, rotation curves")."""
    groups: dict[int, list[Token]] = {}
    for tok in tokens(text):
        groups.setdefault(tok.clause, []).append(tok)
    return [
        Clause(
            text=text[group[0].start : group[-1].end],
            stems=tuple(t.stem for t in group),
            joined=tuple(not _WORD.search(text, a.end, b.start) for a, b in pairwise(group)),
        )
        for group in groups.values()
    ]


# ---------------------------------------------------------------------------------------
# Interests: what each keyword and description clause asks for, remembered across
# subscribers (they share keywords, and descriptions share clauses).

# A description clause of at most this many words is a list item, not prose.
ITEM_WORDS = 3


# What a clause of an interest is, reduced to what asks need: its stems, which neighbours
# are written together (`Clause.joined`) and how many words it was written with.
_Reading = tuple[tuple[str, ...], tuple[bool, ...], int]


@lru_cache(maxsize=1 << 16)
def _chunk_reading(chunk: str) -> tuple[tuple[str, ...], tuple[bool, ...], bool, bool]:
    """One whitespace-free stretch of a clause, read as `clauses` reads it: its stems,
    which of them are written together, and whether no word stands before its first
    stem and after its last (the whole stretch, when it has no stem).

    Cached: descriptions are mostly new, but they are made of words written before.
    """
    stems: list[str] = []
    spans: list[tuple[int, int]] = []
    for match in _WORD.finditer(chunk):
        start = match.start()
        for word_stem, offset, past in _word_stems(match.group()):
            stems.append(word_stem)
            spans.append((start + offset, start + past))
    if not spans:
        clean = not _WORD.search(chunk)
        return (), (), clean, clean
    joined = tuple(not _WORD.search(chunk, a, b) for (_, a), (b, _) in pairwise(spans))
    open_start = not _WORD.search(chunk, 0, spans[0][0])
    open_end = not _WORD.search(chunk, spans[-1][1])
    return tuple(stems), joined, open_start, open_end


def _read_clause(text: str) -> _Reading | None:
    """`clauses(text)[0]` as a `_Reading`, for text with no clause mark and no backslash.

    Read a whitespace-separated stretch at a time, without building tokens: a
    description's pieces are mostly read once, so compiling many profiles spends its
    time here. A word never spans whitespace, so the words of the stretches are the
    words of the text, and the written words of the clause are the stretches from its
    first stem to its last.
    """
    stems: list[str] = []
    joined: list[bool] = []
    first = last = 0
    # Whether no word was written since the last stem.
    open_ = False
    for i, chunk in enumerate(text.split()):
        chunk_stems, inner, open_start, open_end = _chunk_reading(chunk)
        if not chunk_stems:
            open_ = open_ and open_start
            continue
        if stems:
            joined.append(open_ and open_start)
        else:
            first = i
        joined += inner
        stems += chunk_stems
        open_ = open_end
        last = i
    if not stems:
        return None
    return tuple(stems), tuple(joined), last - first + 1


def _readings(text: str) -> list[_Reading]:
    """What `clauses(text)` says of each clause, in order, read the fast way when it can be."""
    if "\\" in text:  # LaTeX commands could hide a mark, and their names stand between words
        return [(c.stems, c.joined, c.words) for c in clauses(text)]
    found = []
    for piece in _CLAUSE_END.split(text):
        reading = _read_clause(piece)
        if reading is not None:
            found.append(reading)
    return found


def _item_asks(stems: Sequence[str], weight: float, part: float) -> list[tuple[str, float]]:
    """What one keyword or list item adds: itself, and each of its words a little."""
    adds = [(" ".join(stems), weight)]
    if len(stems) > 1 and part:
        adds += [(word, part * weight) for word in stems]
    return adds


@lru_cache(maxsize=1 << 16)
def keyword_asks(
    keyword: str, weight: float, part: float
) -> tuple[tuple[tuple[str, float], ...], tuple[str, ...]]:
    """A keyword's (term, weight) additions in order, and its phrases: remembered, as
    subscribers share keywords."""
    adds: list[tuple[str, float]] = []
    phrases: list[str] = []
    for stems, _, _ in _readings(keyword):
        adds += _item_asks(stems, weight, part)
        if len(stems) > 1:
            phrases.append(" ".join(stems))
    return tuple(adds), tuple(phrases)


def description_asks(
    description: str, item: float, prose: float, part: float
) -> list[tuple[str, float]]:
    """A description's (term, weight) additions in order, clause by clause."""
    adds: list[tuple[str, float]] = []
    # Descriptions differ, but their clauses recur: each is read once.
    for piece in clause_pieces(description):
        adds += piece_asks(piece, item, prose, part)
    return adds


@lru_cache(maxsize=1 << 16)
def piece_asks(text: str, item: float, prose: float, part: float) -> tuple[tuple[str, float], ...]:
    """The (term, weight) additions of the clauses of `text` (a `clause_pieces` piece),
    in order."""
    adds: list[tuple[str, float]] = []
    for stems, joined, words in _readings(text):
        if words <= ITEM_WORDS:
            adds += _item_asks(stems, item, part)
            continue
        adds += [(word, prose) for word in stems]
        adds += [(term, prose) for term in _joined_phrases(stems, joined)]
    return tuple(adds)


@lru_cache(maxsize=1 << 14)
def clause_terms(text: str) -> tuple[str, ...]:
    """Each clause of `text` as one term (an exclude)."""
    return tuple(" ".join(stems) for stems, _, _ in _readings(text))


def item_terms(text: str) -> tuple[str, ...]:
    """Each list item of `text` (a clause of at most ITEM_WORDS words) as one term."""
    return tuple(" ".join(stems) for stems, _, words in _readings(text) if words <= ITEM_WORDS)


def _joined_phrases(stems: Sequence[str], joined: Sequence[bool]) -> list[str]:
    """The phrases of two or three words written together in a clause of prose, each
    two-word phrase followed by the three-word one that begins with it."""
    found = []
    for i in range(len(stems) - 1):
        if joined[i]:
            pair = f"{stems[i]} {stems[i + 1]}"
            found.append(pair)
            if i + 2 < len(stems) and joined[i + 1]:
                found.append(f"{pair} {stems[i + 2]}")
    return found


# Author names

_PARTICLES = frozenset(
    ["da", "de", "del", "della", "der", "di", "dos", "du", "la", "le", "van", "von", "ten", "ter"]
)
_SUFFIXES = frozenset(["jr", "sr", "ii", "iii", "iv"])
_NAME_PART = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Name:
    """A person's name reduced to family name and given names, for lenient comparison."""

    family: str
    given: tuple[str, ...]


@lru_cache(maxsize=1 << 14)
def name(written: str) -> Name | None:
    """ "Albert Gu", "A. Gu", "AG Gu", "Gu, Albert" and "José"/"Jose" reduce alike.

    Without a comma the last word is the family name; with one, what precedes it is.
    Given names written as capitals of up to three letters ("AG") are initials.
    """
    if "," in written:
        family_part, _, given_part = written.partition(",")
    else:
        words = written.split()
        while len(words) > 1 and words[-1].strip(".").casefold() in _SUFFIXES:
            words.pop()
        if not words:
            return None
        family_part, given_part = words[-1], " ".join(words[:-1])
    family = _NAME_PART.findall(fold(family_part).casefold())
    if not family:
        return None
    given: list[str] = []
    for word in _NAME_PART.findall(fold(given_part)):
        if word.isupper() and len(word) <= 3:
            given.extend(word.casefold())
        elif word.casefold() not in _PARTICLES:
            given.append(word.casefold())
    return Name(family[-1], tuple(given))


def same_person(wanted: Name, author: Name) -> bool:
    """Family names equal; given names agree as far as both are written (initials count)."""
    if wanted.family != author.family:
        return False
    for a, b in zip(wanted.given, author.given, strict=False):
        if len(a) == 1 or len(b) == 1:
            if a[0] != b[0]:
                return False
        elif a != b:
            return False
    return True
