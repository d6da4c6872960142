"""Turning user text into a safe FTS5 query: no user text is ever FTS5 syntax."""

from __future__ import annotations

import re

__all__ = ["STOPWORDS", "fts_expression", "fts_query", "query_terms"]

# Lucene's English stop words plus a few conversational fillers.
STOPWORDS = frozenset(
    """
    a an and are as at be but by for if in into is it no not of on or such that the their
    then there these they this to was will with what when where who which how did do does
    i me my you your we our he she his her him its am been has have had
    """.split()
)

_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` without stop words, first occurrence order."""
    seen: dict[str, None] = {}
    for token in _WORD.findall(text.lower()):
        if token not in STOPWORDS and token not in seen:
            seen[token] = None
    return list(seen)


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression that ORs the quoted terms of ``text``.

    Every term is a run of word characters wrapped in double quotes, so
    operators (``OR``, ``NOT``, ``NEAR(``), ``*``, ``-``, ``:``, quotes and
    parentheses in user text carry no query meaning. Returns ``None`` when no
    term is left (empty text, only punctuation or stop words).
    """
    if not isinstance(text, str):
        return None
    terms = query_terms(text)
    return fts_expression(terms) if terms else None


def fts_expression(terms: list[str]) -> str:
    """``"a" OR "b"``: the OR of terms from :func:`query_terms` (runs of word
    characters, so quoting them leaves nothing FTS5 would read as syntax)."""
    return " OR ".join(f'"{term}"' for term in terms)
