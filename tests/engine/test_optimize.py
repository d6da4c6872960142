"""optimize(): the SQLite text index merged into one segment, every answer unchanged;
a large import ends optimized, a small one into a large store does not."""

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


async def test_a_large_import_ends_optimized_and_a_small_one_into_it_does_not(
    db_path: Path, embedder: object
) -> None:
    config = MemoryConfig(db_path=db_path)
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(10_100, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:  # type: ignore[arg-type]
        await memory.add_many([NewMemory(f"Imported note {i} about {HOBBIES[i % len(HOBBIES)]}", user_id="alice",
                                         embedding=vectors[i]) for i in range(10_000)],
                              batch_size=1_000, dedup=False)
        assert text_segments(config) == 1
        await memory.add_many([NewMemory(f"Later note {i}", user_id="alice", embedding=vectors[10_000 + i])
                               for i in range(100)], batch_size=10, dedup=False)
        assert text_segments(config) > 1  # an import under 10,000 rows does not rewrite the index
        hits = await memory.text_search("violin 9991", "alice", top_k=1)
        assert hits[0].memory.content == "Imported note 9991 about the violin"


async def test_an_import_small_beside_the_store_does_not_rewrite_its_index(
    db_path: Path, embedder: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "_OPTIMIZE_AFTER_ROWS", 100)  # the share rule at a test's scale
    config = MemoryConfig(db_path=db_path)
    vectors = np.random.default_rng(3).normal(size=(1_500, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    notes = [NewMemory(f"Note {i}", user_id="alice", embedding=vectors[i]) for i in range(1_500)]
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:  # type: ignore[arg-type]
        await memory.add_many(notes[:1_000], batch_size=100, dedup=False)
        assert text_segments(config) == 1
        await memory.add_many(notes[1_000:1_150], batch_size=10, dedup=False)  # 150 of 1,150: under a fifth
        assert text_segments(config) > 1
        await memory.add_many(notes[1_150:], batch_size=10, dedup=False)  # 350 of 1,500: a fifth or more
        assert text_segments(config) == 1
