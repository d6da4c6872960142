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
        rare = [term for term in terms if not await self._is_common(term)]
        return await self._store.text_search(fts_expression(rare or terms), flt, limit)

    async def _is_common(self, term: str) -> bool:
        now = time.monotonic()
        verdict = self._verdicts.get(term)
        if verdict is not None and now - verdict[1] < _VERDICT_SECONDS:
            self._verdicts.move_to_end(term)
            return verdict[0]
        cap = max(COMMON_FLOOR, int(COMMON_SHARE * await self._store.max_label()))
        common = await self._store.term_rows(term, cap + 1) > cap
        self._verdicts[term] = (common, now)
        self._verdicts.move_to_end(term)
        while len(self._verdicts) > _VERDICTS_KEPT:
            self._verdicts.popitem(last=False)
        return common
