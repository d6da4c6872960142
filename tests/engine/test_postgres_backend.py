"""What only the PostgreSQL backend has to prove: its schema versioning, exact
search under scope filters in a table of many users, several processes
superseding one memory at once, and the layers above the ports on it."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import psycopg
import pytest

from headroom_memory import (
    ConfigurationError,
    HierarchicalMemory,
    MemoryConfig,
    MemoryConflictError,
    MemoryFilter,
    NewMemory,
    SyncMemory,
    with_memory,
)
from headroom_memory.adapters import LocalEmbedder
from headroom_memory.adapters.postgres_store import PostgresMemoryStore
from headroom_memory.testing import ScriptedModel, openai_server, system_texts


@pytest.fixture
def pg_config(postgres_url: str) -> MemoryConfig:
    return MemoryConfig(postgres_url=postgres_url, postgres_schema=f"test_{uuid.uuid4().hex[:16]}")


@pytest.fixture
async def pg_memory(pg_config: MemoryConfig, embedder: LocalEmbedder) -> AsyncIterator[HierarchicalMemory]:
    engine = await HierarchicalMemory.create(pg_config, embedder=embedder)
    yield engine
    await engine.close()


def fetch(url: str, schema: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}", public')
        return list(conn.execute(query).fetchall())  # type: ignore[arg-type]


async def test_schema_is_created_versioned_and_checked(pg_config: MemoryConfig, embedder: LocalEmbedder) -> None:
    url, schema = pg_config.postgres_url.get_secret_value(), pg_config.postgres_schema  # type: ignore[union-attr]
    for text in ("Alice likes tea", "Alice runs on Sundays"):  # the second open applies nothing again
        async with await HierarchicalMemory.create(pg_config, embedder=embedder) as memory:
            await memory.add(text, "alice")
    assert [v for v, in fetch(url, schema, "SELECT version FROM schema_version")] == [1]
    assert fetch(url, schema, "SELECT COUNT(*) FROM memories") == [(2,)]
    store = PostgresMemoryStore(url, schema=schema)
    with pytest.raises(ConfigurationError, match="384-d embeddings of 'all-MiniLM-L6-v2'"):
        await store.open(model="text-embedding-3-small", dimension=1536)
    fetch(url, schema, "INSERT INTO schema_version VALUES (99, 0) RETURNING version")
    with pytest.raises(ConfigurationError, match="schema version 99, newer"):
        await HierarchicalMemory.create(pg_config, embedder=embedder)
    assert fetch(url, schema, "SELECT COUNT(*) FROM memories") == [(2,)]


@pytest.mark.parametrize("exact_search_threshold", [2000, 0])
async def test_a_small_user_among_many_gets_all_of_theirs_back(
    postgres_url: str, embedder: LocalEmbedder, exact_search_threshold: int,
) -> None:
    config = MemoryConfig(postgres_url=postgres_url, postgres_schema=f"test_{uuid.uuid4().hex[:16]}",
                          exact_search_threshold=exact_search_threshold)
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        rng = np.random.default_rng(7)
        others = [NewMemory(f"note {i} about the weather", user_id=f"user{i % 50}",
                            embedding=rng.normal(size=384).astype(np.float32)) for i in range(1500)]
        await memory.add_many(others, dedup=False)
        mine = [await memory.add(text, "alice") for text in (
            "Alice's passport expires in June", "Alice prefers aisle seats", "Alice is allergic to cats",
            "Alice works in Berlin", "Alice plays the cello")]
        found = await memory.search("travel plans", "alice", top_k=10, min_similarity=-1)
        assert {r.memory.id for r in found} == {m.id for m in mine}
        best = await memory.search("musical instrument", "alice", top_k=1, mode="vector")
        assert best[0].memory.content == "Alice plays the cello"


async def test_clearing_a_user_leaves_nothing_to_find(pg_memory: HierarchicalMemory, pg_config: MemoryConfig) -> None:
    await pg_memory.add("Alice's locker code is 4411", "alice", "s1")
    await pg_memory.add("Bob's locker code is 9000", "bob")
    assert await pg_memory.clear("alice") == 1
    assert await pg_memory.search("locker code", "alice", "s1", min_similarity=-1) == []
    assert await pg_memory.text_search("locker", "alice", "s1") == []
    url, schema = pg_config.postgres_url.get_secret_value(), pg_config.postgres_schema  # type: ignore[union-attr]
    assert fetch(url, schema, "SELECT user_id FROM memories") == [("bob",)]


def _writer(url: str, schema: str, worker: int, target: str, ready: Any, out: Any) -> None:
    """A process: add 20 memories, then supersede ``target`` at the same moment as the others."""
    config = MemoryConfig(postgres_url=url, postgres_schema=schema)
    with SyncMemory(config) as memory:
        added = [memory.add(f"worker {worker} fact {i}", "alice", dedup=False).id for i in range(20)]
        ready.wait(120)
        try:
            won = memory.supersede(target, f"Alice moved to city {worker}", user_id="alice").id
        except MemoryConflictError:
            won = None
    out.put((worker, added, won))


async def test_concurrent_writers_one_supersession_winner_nothing_lost(
    pg_memory: HierarchicalMemory, pg_config: MemoryConfig,
) -> None:
    target = await pg_memory.add("Alice lives in Porto", "alice")
    url, schema = pg_config.postgres_url.get_secret_value(), pg_config.postgres_schema  # type: ignore[union-attr]
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    ready = context.Barrier(4)  # every process has loaded the model and written its rows
    workers = [context.Process(target=_writer, args=(url, schema, w, target.id, ready, out)) for w in range(4)]
    for process in workers:
        process.start()
    results = [await asyncio.to_thread(out.get, True, 180) for _ in workers]
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    winners = [won for _, _, won in results if won is not None]
    assert len(winners) == 1
    history = await pg_memory.get_history(target.id, user_id="alice")
    assert [m.id for m in history] == [target.id, winners[0]]
    assert history[0].superseded_by == winners[0] and history[1].is_current
    written = {mid for _, added, _ in results for mid in added}
    current = {m.id for m in await pg_memory.query(MemoryFilter(user_id="alice"))}
    assert len(written) == 80 and written | {winners[0]} == current


def test_with_memory_works_unchanged_on_postgres(pg_config: MemoryConfig, embedder: LocalEmbedder) -> None:
    from openai import OpenAI

    scripted = ScriptedModel(replies=[
        'Sure.<memory>[{"content": "Prefers Rust for CLIs", "category": "preference"}]</memory>', "Rust."])
    with openai_server(scripted) as (url, recorded), SyncMemory(pg_config, embedder=embedder) as memory:
        client = with_memory(OpenAI(base_url=url, api_key="test"), user_id="alice", memory=memory)
        first = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "I like Rust"}])
        assert first.choices[0].message.content == "Sure."
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Which language for a CLI?"}])
        assert "Prefers Rust for CLIs" in "\n".join(system_texts(recorded))
