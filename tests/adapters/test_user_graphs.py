"""A user who holds many of a large store's memories is searched in a graph of
their own: built in the background, saved beside the index, caught up with
their new rows, never trusted over the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from headroom_memory import HierarchicalMemory, MemoryConfig, NewMemory
from headroom_memory.adapters import LocalEmbedder, user_graphs
from headroom_memory.ports import VectorFilter

BIG = VectorFilter(user_id="big")


@pytest.fixture(autouse=True)
def small_graph_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """300 labels earn a graph here (10,000 in the library)."""
    monkeypatch.setattr(user_graphs, "MIN_LABELS", 200)


def config(tmp_path: Path) -> MemoryConfig:
    return MemoryConfig(db_path=tmp_path / "m.db", exact_search_threshold=0)


def graph_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "m.db.hnsw.users").glob("*.hnsw"))


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


async def fill(memory: HierarchicalMemory, dimension: int, seed: int = 11) -> np.ndarray:
    """3,000 random rows; every tenth is big's (300, a tenth of the index)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(3000, dimension)).astype(np.float32)
    await memory.add_many(
        [NewMemory(f"note {i}", user_id="big" if i % 10 == 0 else f"other-{i % 40}", embedding=vectors[i])
         for i in range(3000)],
        batch_size=1000, dedup=False)
    return vectors


async def exact_top(memory: HierarchicalMemory, reader: VectorFilter, query: np.ndarray, k: int) -> list[int]:
    labels, matrix = await memory.store.visible_embeddings(reader)
    return [labels[i] for i in np.argsort(-(matrix @ query))[:k]]


async def search(memory: HierarchicalMemory, query: np.ndarray, k: int, reader: VectorFilter = BIG) -> list[int]:
    return [label for label, _ in await memory.vector_index.search(query, reader, k)]


async def test_a_large_user_is_searched_in_a_saved_graph_of_their_own(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    async with await HierarchicalMemory.create(config(tmp_path), embedder=embedder) as memory:
        vectors = await fill(memory, embedder.dimension)
        query = unit(vectors[0] + 0.5 * vectors[10])
        first = await search(memory, query, 40)  # served by the store-wide graph while theirs is built
        await memory.vector_index.wait_for_user_graphs()
        [saved] = graph_files(tmp_path)
        assert json.loads(Path(f"{saved}.json").read_text())["count"] == 300
        exact = await exact_top(memory, BIG, query, 40)
        assert await search(memory, query, 40) == exact
        assert len(set(first) & set(exact)) >= 36
    assert graph_files(tmp_path) == [saved]


async def test_the_users_graph_catches_up_with_new_rows_and_skips_deleted_ones(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    rng = np.random.default_rng(2)
    async with await HierarchicalMemory.create(config(tmp_path), embedder=embedder) as memory:
        await fill(memory, embedder.dimension)
        query = unit(rng.normal(size=embedder.dimension))
        await search(memory, query, 10)
        await memory.vector_index.wait_for_user_graphs()
        added = await memory.add_many(
            [NewMemory(f"new {i}", user_id="big", embedding=unit(query + 0.05 * rng.normal(size=query.shape)))
             for i in range(3)], dedup=False)
        found = await search(memory, query, 10)
        by_label = await memory.store.get_by_labels(found[:3])
        assert {m.id for m in by_label.values()} == {m.id for m in added}
        await memory.delete(by_label[found[0]].id)
        after_delete = await search(memory, query, 10)
        assert found[0] not in after_delete and after_delete == await exact_top(memory, BIG, query, 10)
    [saved] = graph_files(tmp_path)
    assert json.loads(Path(f"{saved}.json").read_text())["count"] == 303
    saved_at = saved.stat().st_mtime_ns
    async with await HierarchicalMemory.create(config(tmp_path), embedder=embedder) as memory:
        await search(memory, query, 10)
        await memory.vector_index.wait_for_user_graphs()
        assert await search(memory, query, 10) == after_delete
    assert saved.stat().st_mtime_ns == saved_at  # loaded from the file, not built and saved again


async def test_a_corrupt_user_graph_is_rebuilt_not_trusted(tmp_path: Path, embedder: LocalEmbedder) -> None:
    async with await HierarchicalMemory.create(config(tmp_path), embedder=embedder) as memory:
        vectors = await fill(memory, embedder.dimension)
        await search(memory, unit(vectors[0]), 10)
        await memory.vector_index.wait_for_user_graphs()
    [saved] = graph_files(tmp_path)
    digest = json.loads(Path(f"{saved}.json").read_text())["digest"]
    data = bytearray(saved.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\x7f" * 4096
    saved.write_bytes(corrupt := bytes(data))
    async with await HierarchicalMemory.create(config(tmp_path), embedder=embedder) as memory:
        query = unit(vectors[20] + vectors[30])
        await search(memory, query, 20)
        await memory.vector_index.wait_for_user_graphs()
        assert await search(memory, query, 20) == await exact_top(memory, BIG, query, 20)
    assert saved.read_bytes() != corrupt
    assert json.loads(Path(f"{saved}.json").read_text())["digest"] == digest  # the same graph, built again


async def test_a_session_reader_gets_only_their_visible_rows_from_the_users_graph(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(3000, embedder.dimension)).astype(np.float32)
    rows = [NewMemory(f"note {i}", user_id="big", session_id="s2" if i % 100 == 0 else "s1", scope="session",
                      embedding=vectors[i]) if i % 10 == 0 else
            NewMemory(f"note {i}", user_id=f"other-{i % 40}", embedding=vectors[i]) for i in range(3000)]
    async with await HierarchicalMemory.create(config(tmp_path), embedder=embedder) as memory:
        await memory.add_many(rows, batch_size=1000, dedup=False)
        reader = VectorFilter(user_id="big", session_id="s2")
        query = unit(vectors[100])
        await search(memory, query, 10, reader)
        await memory.vector_index.wait_for_user_graphs()
        assert len(graph_files(tmp_path)) == 1
        found = await search(memory, query, 10, reader)
        assert found == await exact_top(memory, reader, query, 10)
        assert len(found) == 10


async def test_a_reader_who_suddenly_sees_few_of_the_users_rows_still_gets_the_nearest_visible(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    """The graph is asked for as many candidates as the share the reader saw
    last time says hold k; when that share drops it asks again for more."""
    async with await HierarchicalMemory.create(config(tmp_path), embedder=embedder) as memory:
        vectors = await fill(memory, embedder.dimension)
        query = unit(vectors[0] + vectors[10])
        await search(memory, query, 40)
        await memory.vector_index.wait_for_user_graphs()
        assert await search(memory, query, 40) == await exact_top(memory, BIG, query, 40)  # they saw all
        labels = (await memory.store.visible_embeddings(BIG))[0]
        by_label = await memory.store.get_by_labels(labels)
        for position, label in enumerate(labels):
            if position % 5:  # four in five of big's rows go
                await memory.delete(by_label[label].id)
        for other in (query, unit(vectors[20] - vectors[30])):
            found = await search(memory, other, 40)
            assert len(found) == 40 and found == await exact_top(memory, BIG, other, 40)


async def test_rebuilding_the_index_drops_the_users_graphs(tmp_path: Path, embedder: LocalEmbedder) -> None:
    async with await HierarchicalMemory.create(config(tmp_path), embedder=embedder) as memory:
        vectors = await fill(memory, embedder.dimension)
        await search(memory, unit(vectors[0]), 10)
        await memory.vector_index.wait_for_user_graphs()
        assert len(graph_files(tmp_path)) == 1
        assert await memory.rebuild_index() == 3000
        assert not (tmp_path / "m.db.hnsw.users").exists()
        await search(memory, unit(vectors[0]), 10)
        await memory.vector_index.wait_for_user_graphs()
        assert len(graph_files(tmp_path)) == 1
        assert await search(memory, unit(vectors[0]), 10) == await exact_top(memory, BIG, unit(vectors[0]), 10)


async def test_a_graph_that_cannot_be_saved_still_serves_the_user(
    tmp_path: Path, embedder: LocalEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "m.db.hnsw.users").write_text("a file where the folder of graphs would go")
    async with await HierarchicalMemory.create(config(tmp_path), embedder=embedder) as memory:
        vectors = await fill(memory, embedder.dimension)
        query = unit(vectors[0] + vectors[10])
        await search(memory, query, 20)
        await memory.vector_index.wait_for_user_graphs()
        assert await search(memory, query, 20) == await exact_top(memory, BIG, query, 20)
    assert "could not save the vector index" in caplog.text
    assert (tmp_path / "m.db.hnsw.users").is_file()


async def test_graphs_beyond_the_memory_budget_are_saved_and_dropped_then_loaded_again(
    tmp_path: Path, embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for one 300-vector graph only, the least recently searched
    user's graph is saved (with the rows it caught up on) and dropped; their
    next search loads it back from the file."""
    monkeypatch.setattr(user_graphs, "KEPT_VECTORS", 400)
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(3000, embedder.dimension)).astype(np.float32)
    owner = {0: "big", 5: "big2"}
    async with await HierarchicalMemory.create(config(tmp_path), embedder=embedder) as memory:
        await memory.add_many([NewMemory(f"note {i}", user_id=owner.get(i % 10, f"other-{i % 40}"),
                                         embedding=vectors[i]) for i in range(3000)], batch_size=1000, dedup=False)
        query = unit(rng.normal(size=embedder.dimension))
        await search(memory, query, 10)
        await memory.vector_index.wait_for_user_graphs()
        [big_file] = graph_files(tmp_path)
        await memory.add_many([NewMemory("one more", user_id="big", embedding=query)], dedup=False)
        assert (await search(memory, query, 10))[0] == 3001  # caught up in memory, not yet saved
        assert json.loads(Path(f"{big_file}.json").read_text())["count"] == 300
        big2 = VectorFilter(user_id="big2")
        await search(memory, query, 10, big2)
        await memory.vector_index.wait_for_user_graphs()  # big2's graph is kept, big's saved and dropped
        assert json.loads(Path(f"{big_file}.json").read_text())["count"] == 301
        saved_at = big_file.stat().st_mtime_ns
        await search(memory, query, 10)
        await memory.vector_index.wait_for_user_graphs()
        assert await search(memory, query, 10) == await exact_top(memory, BIG, query, 10)
        assert big_file.stat().st_mtime_ns == saved_at  # loaded, not built again
        await search(memory, query, 10, big2)  # big2's graph was dropped in turn: loaded back
        await memory.vector_index.wait_for_user_graphs()
        assert await search(memory, query, 10, big2) == await exact_top(memory, big2, query, 10)
