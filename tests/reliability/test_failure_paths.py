"""Failure paths: an embedder failing mid-batch, a full disk, an unreachable
PostgreSQL. Each gives a clear error; nothing already stored is damaged, and the
memory keeps working once the cause is gone. (Read-only files and corrupt HNSW
files are covered in tests/adapters.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from headroom_memory import (
    EmbedderError,
    HierarchicalMemory,
    MemoryConfig,
    MemoryFilter,
    StorageError,
)
from headroom_memory.adapters import LocalEmbedder
from headroom_memory.adapters.postgres_store import PostgresMemoryStore


class FlakyEmbedder:
    """The real model, failing (or answering NaN) on chosen calls."""

    def __init__(self, model: LocalEmbedder, fail_on: set[int], how: str = "raise") -> None:
        self.model, self.fail_on, self.how, self.calls = model, fail_on, how, 0
        self.model_name, self.dimension = model.model_name, model.dimension

    async def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        self.calls += 1
        if self.calls in self.fail_on:
            if self.how == "raise":
                raise ConnectionError("embedding service went away")
            return np.full((len(texts), self.dimension), np.nan, dtype=np.float32)
        return await self.model.embed(texts)

    async def load(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("how", ["raise", "nan"])
async def test_an_embedder_failing_mid_batch(config: MemoryConfig, embedder: LocalEmbedder, how: str) -> None:
    flaky = FlakyEmbedder(embedder, fail_on={3}, how=how)
    async with await HierarchicalMemory.create(config, embedder=flaky) as memory:  # type: ignore[arg-type]
        kept = await memory.add("Alice's passport number ends in 42", "alice")  # call 1
        items = [f"Observation number {i} about the garden" for i in range(30)]
        with pytest.raises(EmbedderError, match="the first 10 of 30 items were stored"):
            await memory.add_many(items, user_id="alice", batch_size=10, dedup=False)  # calls 2, 3
        stored = await memory.query(MemoryFilter(user_id="alice"))
        assert len(stored) == 11 and stored[0] == kept
        assert (await memory.embeddings([kept.id]))[kept.id].shape == (384,)
        hits = await memory.search("passport", "alice", top_k=1)  # the memory keeps working
        assert hits[0].memory.id == kept.id
        rest = await memory.add_many(items[10:], user_id="alice", batch_size=10, dedup=False)
        assert len(rest) == 20 and (await memory.stats("alice"))["total"] == 31


async def test_a_full_disk_is_a_storage_error_and_keeps_what_was_stored(
    tmp_path: Path, embedder: LocalEmbedder,
) -> None:
    async with await HierarchicalMemory.create(MemoryConfig(db_path=tmp_path / "m.db"), embedder=embedder) as memory:
        kept = await memory.add("Bob's locker is number 12", "bob")
        db = memory.store._db  # type: ignore[attr-defined]
        pages = (await db.execute_fetchall("PRAGMA page_count"))[0][0]
        await db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full
        with pytest.raises(StorageError, match="the disk is full"):
            await memory.add_many([f"A long note {i} " + "x" * 3000 for i in range(50)], user_id="bob")
        with pytest.raises(StorageError, match="the disk is full"):
            await memory.supersede(kept.id, "Bob's locker is number 13 " + "y" * 8000)
        assert [m.id for m in await memory.query(MemoryFilter(user_id="bob", include_superseded=True))] == [kept.id]
        assert (await memory.get(kept.id)).is_current
        await db.execute("PRAGMA max_page_count = 1073741823")  # space again: it carries on
        await memory.supersede(kept.id, "Bob's locker is number 13")
    async with await HierarchicalMemory.create(MemoryConfig(db_path=tmp_path / "m.db"), embedder=embedder) as memory:
        history = await memory.get_history(kept.id)
        assert [m.content for m in history] == ["Bob's locker is number 12", "Bob's locker is number 13"]


async def test_an_unreachable_postgres_is_a_clear_storage_error(tmp_path: Path) -> None:
    store = PostgresMemoryStore(f"postgresql://app:secret@/app?host={tmp_path}&connect_timeout=2", timeout=2)
    with pytest.raises(StorageError, match="cannot use PostgreSQL") as caught:
        await store.open(model="all-MiniLM-L6-v2", dimension=384)
    assert "secret" not in str(caught.value)  # the password is never in a message
