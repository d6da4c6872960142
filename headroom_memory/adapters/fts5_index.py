"""The default TextIndex: SQLite FTS5 in the store's own database file."""

from __future__ import annotations

from ..fts import fts_query
from ..ports import VectorFilter
from .sqlite_store import SQLiteMemoryStore

__all__ = ["FTS5TextIndex"]


class FTS5TextIndex:
    """BM25 keyword search over the rows of a :class:`SQLiteMemoryStore`.

    The FTS5 table is kept by triggers in the same transaction as the rows, so
    it can never disagree with them. User text is turned into quoted terms
    (see :func:`headroom_memory.fts.fts_query`) and never reaches MATCH raw.
    """

    def __init__(self, store: SQLiteMemoryStore) -> None:
        self._store = store

    async def search(self, query: str, flt: VectorFilter, limit: int) -> list[tuple[int, float]]:
        """(label, score) of visible memories matching any term of ``query``, best first."""
        match = fts_query(query)
        if match is None:
            return []
        return await self._store.text_search(match, flt, limit)
