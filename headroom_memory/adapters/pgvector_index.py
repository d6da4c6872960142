"""The vector and text indexes of the PostgreSQL store: pgvector and tsvector
live in the rows themselves, so there is nothing to catch up or persist."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from ..ports import VectorFilter
from .postgres_store import PostgresMemoryStore

__all__ = ["PgVectorIndex", "PostgresTextIndex"]


class PgVectorIndex:
    """Nearest neighbours with pgvector, exact for small visible sets.

    Up to ``exact_search_threshold`` visible memories are scored exactly (a
    user with few memories in a table of many gets all of theirs considered,
    whatever the HNSW index would have visited). Larger sets use the HNSW index
    with ``ef_search`` candidates; pgvector before 0.8 filters those candidates
    after the scan, so when fewer than ``k`` visible ones come back the search
    is redone exactly (0.8+ scans on iteratively instead).
    """

    def __init__(self, store: PostgresMemoryStore, *, exact_search_threshold: int = 2_000,
                 ef_search: int = 100) -> None:
        self._store = store
        self.exact_search_threshold = exact_search_threshold
        self.ef_search = ef_search

    async def search(
        self, vector: np.ndarray[Any, Any], flt: VectorFilter, k: int, *, token: Hashable | None = None
    ) -> list[tuple[int, float]]:
        """(label, cosine similarity) of the ``k`` visible memories nearest ``vector``
        (PostgreSQL searches its own current rows: ``token`` is not used)."""
        visible = await self._store.count_visible(flt, self.exact_search_threshold + 1)
        if visible == 0:
            return []
        if visible <= self.exact_search_threshold:
            return await self._store.nearest(vector, flt, k, exact=True, ef_search=self.ef_search)
        hits = await self._store.nearest(vector, flt, k, exact=False, ef_search=max(self.ef_search, 10 * k))
        if len(hits) < k:
            hits = await self._store.nearest(vector, flt, k, exact=True, ef_search=self.ef_search)
        return hits

    async def sync(self) -> int:
        """Nothing to catch up: the index is maintained by PostgreSQL in each transaction."""
        return 0

    async def rebuild(self) -> int:
        """REINDEX the HNSW index; returns the number of vectors indexed."""
        return await self._store.reindex()

    async def close(self) -> None:
        """Nothing to release (the store owns the connections)."""


class PostgresTextIndex:
    """Full-text search over the store's generated ``tsvector`` column (GIN index)."""

    def __init__(self, store: PostgresMemoryStore) -> None:
        self._store = store

    async def search(
        self, query: str, flt: VectorFilter, limit: int, *, token: Hashable | None = None
    ) -> list[tuple[int, float]]:
        """(label, rank) of visible memories matching any word of ``query``, best first
        (``token`` is not needed here)."""
        return await self._store.text_search(query, flt, limit)

    async def optimize(self) -> None:
        """Refresh the planner's statistics of the memories table (``ANALYZE``);
        the GIN index itself needs no merging."""
        await self._store.analyze()
