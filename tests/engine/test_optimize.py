"""optimize(): the SQLite text index merged into one segment, every answer unchanged;
an import large in itself and beside the store ends optimized, any other does not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from headroom_memory import HierarchicalMemory, MemoryClosedError, MemoryConfig, MemoryFilter, NewMemory
from headroom_memory import engine as engine_module

HOBBIES = ["pottery", "the violin", "marathon training", "sourdough baking", "salsa dancing", "birdwatching"]


def text_segments(config: MemoryConfig) -> int:
    """How many segments the FTS5 index is split into (each query term is looked up in each)."""
    with sqlite3.connect(str(config.db_path)) as db:
        return int(db.execute("SELECT COUNT(DISTINCT segid) FROM memories_fts_idx").fetchone()[0])


async def answers(memory: HierarchicalMemory) -> list[list[str]]:
    """The ids each search returns, best first (scores drift with recency as time passes)."""
    found = []
    for query in ("violin lessons", "what does alice bake", "dancing on Sunday"):
        for mode in ("hybrid", "text"):
            hits = await memory.search(query, "alice", top_k=5, min_similarity=-1.0, mode=mode)  # type: ignore[arg-type]
            found.append([hit.memory.id for hit in hits])
    return found


async def test_optimize_changes_no_answer_and_merges_the_text_index(
    config: MemoryConfig, memory: HierarchicalMemory
) -> None:
    for i in range(24):  # one transaction each: FTS5 adds a segment for each
        await memory.add(f"Alice took up {HOBBIES[i % len(HOBBIES)]} in year {2000 + i}", "alice", dedup=False)
    await memory.add("Bob bakes bread every Sunday", "bob")
    before, stored = await answers(memory), await memory.query(MemoryFilter(user_id="alice"))
    sqlite = config.postgres_url is None
    if sqlite:
        assert text_segments(config) > 1
    await memory.optimize()
    assert await answers(memory) == before
    assert await memory.query(MemoryFilter(user_id="alice")) == stored
    if sqlite:
        assert text_segments(config) == 1
    await memory.close()
    with pytest.raises(MemoryClosedError):
        await memory.optimize()


async def test_an_import_merges_the_text_index_when_large_in_itself_and_beside_the_store(
    db_path: Path, embedder: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "_OPTIMIZE_AFTER_ROWS", 100)  # the floor at a test's scale
    config = MemoryConfig(db_path=db_path)
    vectors = np.random.default_rng(3).normal(size=(1_000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    notes = [NewMemory(f"Note {i} about {HOBBIES[i % len(HOBBIES)]}", user_id="alice", embedding=vectors[i])
             for i in range(1_000)]

    async def import_(start: int, stop: int) -> int:
        await memory.add_many(notes[start:stop], batch_size=10, dedup=False)
        return text_segments(config)

    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:  # type: ignore[arg-type]
        assert await import_(0, 200) == 1  # 200: over the floor, the whole store
        assert await import_(200, 280) > 1  # 80: a fifth of the store and more, but under the floor
        assert await import_(280, 430) == 1  # 150 of 430
        assert await import_(430, 530) > 1  # 100 of 530: the floor, but under a fifth
        assert await import_(530, 1_000) == 1  # 470 of 1,000
        hits = await memory.text_search("violin 991", "alice", top_k=1)
        assert hits[0].memory.content == "Note 991 about the violin"
