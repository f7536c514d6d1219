"""The store's term counts: what `CorpusStats` needs, kept from run to run.

A run used to analyse every stored paper to count its terms: about a millisecond and 40 KB
a paper, every run, for a store that only grows (a year of one busy arXiv category is
tens of thousands of papers). The counts are now updated as papers are recorded, by the
difference each recorded paper makes (`Recount`, worked out by the caller: the store
knows no analysis), and read back in one query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from digest.models import Paper
from digest.store.schema import corpus_table, papers_table, term_counts_table

WORDS = "abstract_words"

# (stored version or None, version now stored) -> (change of each term's count, change of
# the abstract words)
Recount = Callable[[Paper | None, Paper], tuple[Mapping[str, int], int]]


def built(connection: sa.Connection) -> bool:
    return _words(connection) is not None


def _words(connection: sa.Connection) -> int | None:
    """The abstracts' words in all; None while the counts were never built."""
    query = sa.select(corpus_table.c.value).where(corpus_table.c.name == WORDS)
    return connection.execute(query).scalar_one_or_none()


def add(
    connection: sa.Connection,
    insert: Callable[[sa.Table], Any],
    changes: Mapping[str, int],
    words: int,
) -> None:
    """Add `changes` to the counts and `words` to the total (one statement each)."""
    rows = [{"term": term, "papers": n} for term, n in changes.items() if n]
    if rows:
        statement = insert(term_counts_table)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["term"],
                set_={"papers": term_counts_table.c.papers + statement.excluded.papers},
            ),
            rows,
        )
    if words:
        connection.execute(
            corpus_table.update()
            .where(corpus_table.c.name == WORDS)
            .values(value=corpus_table.c.value + words)
        )


def replace(connection: sa.Connection, counts: Mapping[str, int], words: int) -> None:
    """Counts built from scratch (a store from before they were kept)."""
    connection.execute(term_counts_table.delete())
    forget(connection)
    connection.execute(corpus_table.insert(), {"name": WORDS, "value": words})
    rows = [{"term": term, "papers": n} for term, n in counts.items() if n]
    if rows:
        connection.execute(term_counts_table.insert(), rows)


def forget(connection: sa.Connection) -> None:
    """Mark the counts as never built: papers were recorded without them."""
    connection.execute(corpus_table.delete().where(corpus_table.c.name == WORDS))


def read(connection: sa.Connection) -> tuple[int, dict[str, int], int] | None:
    """(papers, each term's count, abstract words), or None if never built. Phrases held
    by one paper are left out: `CorpusStats` does not keep them either."""
    words = _words(connection)
    if words is None:
        return None
    documents = connection.execute(sa.select(sa.func.count()).select_from(papers_table))
    term, papers = term_counts_table.c.term, term_counts_table.c.papers
    query = sa.select(term, papers).where(
        (papers > 1) | ((papers > 0) & sa.not_(term.contains(" ")))
    )
    counts: dict[str, int] = {row.term: row.papers for row in connection.execute(query)}
    return int(documents.scalar_one()), counts, int(words)
