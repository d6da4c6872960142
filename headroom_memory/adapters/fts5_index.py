"""The default TextIndex: SQLite FTS5 in the store's own database file."""

from __future__ import annotations

import time
from collections import OrderedDict

from ..fts import fts_expression, query_terms
from ..ports import VectorFilter
from .sqlite_store import SQLiteMemoryStore

__all__ = ["FTS5TextIndex"]

COMMON_SHARE = 0.1  # a term in more than this share of all memories is common ...
COMMON_FLOOR = 5_000  # ... if it is also in more than this many (shorter posting lists cost little)
_VERDICT_SECONDS = 300.0  # how long a term's common/rare verdict is trusted
_VERDICTS_KEPT = 50_000


class FTS5TextIndex:
    """BM25 keyword search over the rows of a :class:`SQLiteMemoryStore`.

    The FTS5 table is kept by triggers in the same transaction as the rows, so
    it can never disagree with them. User text is turned into quoted terms
    (see :func:`headroom_memory.fts.fts_query`) and never reaches MATCH raw.

    Common terms are left out of the match, as in Lucene's common-terms query:
    a term found in more than ``COMMON_SHARE`` of a large store's memories
    (and more than ``COMMON_FLOOR`` of them) has an inverse document frequency
    near zero, so it barely moves BM25, while FTS5 reads its whole posting list
    on every query to weigh it. A query made only of common terms keeps them all.
    """

    def __init__(self, store: SQLiteMemoryStore) -> None:
        self._store = store
        self._verdicts: OrderedDict[str, tuple[bool, float]] = OrderedDict()

    async def search(self, query: str, flt: VectorFilter, limit: int) -> list[tuple[int, float]]:
        """(label, score) of visible memories matching any term of ``query``, best first."""
        terms = query_terms(query) if isinstance(query, str) else []
        if not terms:
            return []
        common = await self._common(terms)
        rare = [term for term in terms if term not in common]
        return await self._store.text_search(fts_expression(rare or terms), flt, limit)

    async def _common(self, terms: list[str]) -> set[str]:
        """Which of ``terms`` are common: kept verdicts, the others counted now
        against one reading of the store's size."""
        now = time.monotonic()
        unknown = [t for t in terms if t not in self._verdicts or now - self._verdicts[t][1] >= _VERDICT_SECONDS]
        if unknown:
            cap = max(COMMON_FLOOR, int(COMMON_SHARE * await self._store.max_label()))
            for term in unknown:
                self._verdicts[term] = (await self._store.term_rows(term, cap + 1) > cap, now)
        for term in terms:
            self._verdicts.move_to_end(term)
        while len(self._verdicts) > _VERDICTS_KEPT:
            self._verdicts.popitem(last=False)
        return {term for term in terms if self._verdicts[term][0]}
