"""The HNSW index is a derived cache: rebuilt when missing or corrupt, caught up
with rows other connections committed, and exact for the visible set."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from headroom_memory import HierarchicalMemory, MemoryConfig, NewMemory
from headroom_memory.adapters import HNSWVectorIndex, LocalEmbedder, hnsw_index
from headroom_memory.adapters.hnsw_graph import GraphSettings, add_rows
from headroom_memory.errors import MemoryClosedError, VectorIndexError
from headroom_memory.ports import VectorFilter

TOPICS = [
    "Goes sailing on the lake every summer",
    "Is allergic to shellfish",
    "Works as a nurse at the city hospital",
    "Collects vintage vinyl records",
    "Is learning to play the violin",
    "Drives an old green Land Rover",
    "Grows tomatoes on the balcony",
    "Has twin daughters aged seven",
]


def hnsw_config(path: Path) -> MemoryConfig:
    """A config that sends every search through the HNSW index."""
    return MemoryConfig(db_path=path, exact_search_threshold=0)


async def fill(memory: HierarchicalMemory) -> list[str]:
    ids = [(await memory.add(text, "alice")).id for text in TOPICS]
    for i in range(40):
        await memory.add(f"Unrelated note number {i} about the office", "bob")
    return ids


async def top_hit(memory: HierarchicalMemory, query: str) -> str:
    return (await memory.search(query, "alice", top_k=1, mode="vector"))[0].memory.content


async def test_the_index_is_saved_beside_the_db_and_reused(tmp_path: Path, embedder: LocalEmbedder) -> None:
    config = hnsw_config(tmp_path / "m.db")
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        await fill(memory)
        assert await top_hit(memory, "seafood allergy") == TOPICS[1]
    meta = json.loads(Path(f"{config.db_path}.hnsw.json").read_text())
    assert meta["count"] == len(TOPICS) + 40
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        assert await memory.vector_index.sync() == 0
        assert await top_hit(memory, "music instrument lessons") == TOPICS[4]


async def test_a_deleted_index_file_is_rebuilt(tmp_path: Path, embedder: LocalEmbedder) -> None:
    config = hnsw_config(tmp_path / "m.db")
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        await fill(memory)
        await top_hit(memory, "boats")
    Path(f"{config.db_path}.hnsw").unlink()
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        assert await top_hit(memory, "what car does she drive") == TOPICS[5]
        assert isinstance(memory.vector_index, HNSWVectorIndex)
        assert memory.vector_index.covered_label == len(TOPICS) + 40


async def test_a_corrupt_index_file_is_rebuilt_not_trusted(tmp_path: Path, embedder: LocalEmbedder) -> None:
    config = hnsw_config(tmp_path / "m.db")
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        await fill(memory)
        await top_hit(memory, "boats")
    index_file = Path(f"{config.db_path}.hnsw")
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    index_file.write_bytes(bytes(data))
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        assert await top_hit(memory, "gardening vegetables") == TOPICS[6]


async def test_an_index_of_another_database_is_not_used(tmp_path: Path, embedder: LocalEmbedder) -> None:
    first, second = hnsw_config(tmp_path / "a.db"), hnsw_config(tmp_path / "b.db")
    async with await HierarchicalMemory.create(first, embedder=embedder) as memory:
        await fill(memory)
        await top_hit(memory, "boats")
    async with await HierarchicalMemory.create(second, embedder=embedder) as memory:
        await memory.add("Only memory in b", "alice")
        await top_hit(memory, "anything")
    Path(f"{first.db_path}.hnsw").replace(Path(f"{second.db_path}.hnsw"))
    Path(f"{first.db_path}.hnsw.json").replace(Path(f"{second.db_path}.hnsw.json"))
    async with await HierarchicalMemory.create(second, embedder=embedder) as memory:
        hits = await memory.search("sailing", "alice", mode="vector", min_similarity=-1.0)
        assert [h.memory.content for h in hits] == ["Only memory in b"]


async def test_rows_committed_by_another_connection_are_found(tmp_path: Path, embedder: LocalEmbedder) -> None:
    config = hnsw_config(tmp_path / "shared.db")
    async with await HierarchicalMemory.create(config, embedder=embedder) as reader, \
            await HierarchicalMemory.create(config, embedder=embedder) as writer:
        await fill(writer)
        assert await top_hit(reader, "records and turntables") == TOPICS[3]
        fresh = await writer.add("Speaks fluent Icelandic", "alice")
        assert await top_hit(reader, "which languages does she speak") == fresh.content
        old = await writer.add("Has a pet iguana", "alice")
        await writer.supersede(old.id, "Has a pet tortoise")
        hits = await reader.search("reptile pet", "alice", top_k=2, mode="vector")
        assert "Has a pet iguana" not in [h.memory.content for h in hits]
        assert hits[0].memory.content == "Has a pet tortoise"


async def test_a_user_past_the_exact_threshold_gets_only_their_rows_when_others_are_closer(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    config = MemoryConfig(db_path=tmp_path / "m.db", exact_search_threshold=5, hnsw_m=8,
                          hnsw_ef_construction=32)
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        query = "favourite food"
        qvec = (await embedder.embed([query]))[0]
        rng = np.random.default_rng(1)
        crowd = [NewMemory(content=f"n{i}", user_id="crowd", embedding=qvec + rng.normal(size=qvec.shape) * 0.02)
                 for i in range(3000)]
        await memory.add_many(crowd, batch_size=1000, dedup=False)
        mine = await memory.add_many([f"Dana's note {i}: likes dish {i}" for i in range(10)], user_id="dana")
        hits = await memory.search(query, "dana", top_k=10, mode="vector", min_similarity=-1.0)
        assert {h.memory.id for h in hits} == {m.id for m in mine}


async def test_rebuild_index_reports_every_stored_vector(memory: HierarchicalMemory) -> None:
    await fill(memory)
    assert await memory.rebuild_index() == len(TOPICS) + 40


async def test_a_user_with_a_tenth_of_a_large_store_gets_the_exact_neighbours(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    """Unfiltered HNSW candidates are mostly other users'; more are fetched until
    enough of the reader's own are among them, and those match an exact scan."""
    path = tmp_path / "m.db"
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(3000, embedder.dimension)).astype(np.float32)
    owners = ["big" if i % 10 == 0 else f"other-{i % 40}" for i in range(3000)]
    async with await HierarchicalMemory.create(MemoryConfig(db_path=path), embedder=embedder) as memory:
        await memory.add_many([NewMemory(f"note {i}", user_id=owners[i], embedding=vectors[i]) for i in range(3000)],
                              batch_size=1000, dedup=False)
        query = vectors[0] + rng.normal(size=embedder.dimension).astype(np.float32)
        query /= np.linalg.norm(query)
        labels, matrix = await memory.store.visible_embeddings(VectorFilter(user_id="big"))
        exact = [labels[i] for i in np.argsort(-(matrix @ query))[:40]]
    async with await HierarchicalMemory.create(hnsw_config(path), embedder=embedder) as memory:
        found = await memory.vector_index.search(query, VectorFilter(user_id="big"), 40)
        assert len(found) == 40
        assert {label for label, _ in found} <= set(labels)
        assert len({label for label, _ in found} & set(exact)) >= 36


async def big_store(memory: HierarchicalMemory, vectors: np.ndarray, owners: list[str]) -> None:
    await memory.add_many([NewMemory(f"note {i}", user_id=owners[i], embedding=vectors[i]) for i in range(len(owners))],
                          batch_size=1000, dedup=False)


def spread_store(
    dimension: int, seed: int, owner: str, every: int
) -> tuple[np.random.Generator, np.ndarray, list[str]]:
    """3000 random vectors, every ``every``-th one ``owner``'s and the rest 40 other users'."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(3000, dimension)).astype(np.float32)
    return rng, vectors, [owner if i % every == 0 else f"other-{i % 40}" for i in range(3000)]


def exact_top(labels: list[int], matrix: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return [labels[i] for i in np.argsort(-(matrix @ query))[:k]]


async def test_a_user_too_rare_for_hnsw_candidates_is_scored_exactly(
    tmp_path: Path, embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user holding 2% of the index would need more HNSW candidates than the
    cap (lowered here) to find 40 of theirs: their visible set is scored exactly."""
    monkeypatch.setattr(hnsw_index, "_MAX_CANDIDATES", 200)
    _, vectors, owners = spread_store(embedder.dimension, 3, "mid", 50)
    async with await HierarchicalMemory.create(hnsw_config(tmp_path / "m.db"), embedder=embedder) as memory:
        await big_store(memory, vectors, owners)
        query = vectors[0] / np.linalg.norm(vectors[0])
        labels, matrix = await memory.store.visible_embeddings(VectorFilter(user_id="mid"))
        found = await memory.vector_index.search(query, VectorFilter(user_id="mid"), 40)
        assert [label for label, _ in found] == exact_top(labels, matrix, query, 40)


async def test_a_large_users_new_and_deleted_rows_show_in_the_next_search(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    """The labels kept per large user catch up with rows added after a search,
    and a deleted row is not returned although the index still holds it."""
    rng, vectors, owners = spread_store(embedder.dimension, 5, "big", 10)
    async with await HierarchicalMemory.create(hnsw_config(tmp_path / "m.db"), embedder=embedder) as memory:
        await big_store(memory, vectors, owners)
        query = rng.normal(size=embedder.dimension).astype(np.float32)
        query /= np.linalg.norm(query)
        reader = VectorFilter(user_id="big")
        before = await memory.vector_index.search(query, reader, 10)
        near = [NewMemory(f"new {i}", user_id="big", embedding=query + 0.05 * rng.normal(size=query.shape))
                for i in range(3)]
        added = await memory.add_many(near, dedup=False)
        after = await memory.vector_index.search(query, reader, 10)
        top = await memory.store.get_by_labels([label for label, _ in after[:3]])
        assert {m.id for m in top.values()} == {m.id for m in added}
        gone = (await memory.store.get_by_labels([before[0][0]]))[before[0][0]]
        await memory.delete(gone.id)
        assert before[0][0] not in {label for label, _ in await memory.vector_index.search(query, reader, 10)}


def test_a_stored_embedding_of_another_length_is_refused_by_name() -> None:
    graph = GraphSettings(dimension=384).new_graph(10)
    with pytest.raises(VectorIndexError, match="3 dimensions, expected 384"):
        add_rows(graph, [(1, np.ones(3, dtype=np.float32).tobytes())])
    assert graph.get_current_count() == 0


async def test_a_reader_who_grows_past_the_exact_threshold_and_shrinks_back_gets_their_nearest(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    config = MemoryConfig(db_path=tmp_path / "m.db", exact_search_threshold=4)
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        await memory.add_many([f"Unrelated note number {i} about the office" for i in range(30)], user_id="bob")

        async def nearest_three() -> list[str]:
            hits = await memory.search("hobbies outdoors", "alice", top_k=3, mode="vector", min_similarity=-1.0)
            return [h.memory.content for h in hits]

        async def expected() -> list[str]:
            mine = await memory.visible("alice")
            qvec = (await embedder.embed(["hobbies outdoors"]))[0]
            vectors = await memory.embeddings([m.id for m in mine])
            return [m.content for m in sorted(mine, key=lambda m: -float(vectors[m.id] @ qvec))][:3]

        added = []
        for text in TOPICS:  # 8 memories: exact while at most 4, then through the index
            added.append(await memory.add(text, "alice"))
            assert await nearest_three() == await expected()
        for memory_added in added[:5]:  # back to 3
            await memory.delete(memory_added.id)
            assert await nearest_three() == await expected()


async def test_a_search_queues_behind_the_index_worker_instead_of_reading_a_graph_beside_it(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    """While a job of the index's worker thread runs (one that may be growing a
    graph), a search waits behind that job, so a graph is never read while it is written."""
    _, vectors, owners = spread_store(embedder.dimension, 11, "big", 10)
    async with await HierarchicalMemory.create(hnsw_config(tmp_path / "m.db"), embedder=embedder) as memory:
        await big_store(memory, vectors, owners)
        query = vectors[0] / np.linalg.norm(vectors[0])
        reader = VectorFilter(user_id="big")
        expected = await memory.vector_index.search(query, reader, 10)
        release = threading.Event()
        busy = asyncio.ensure_future(memory.vector_index._run(release.wait, 10.0))
        search = asyncio.ensure_future(memory.vector_index.search(query, reader, 10))
        await asyncio.sleep(0.2)
        assert not search.done()
        release.set()
        assert await search == expected
        assert await busy
        await memory.vector_index.close()
        with pytest.raises(MemoryClosedError):
            await memory.vector_index.search(query, reader, 10)
