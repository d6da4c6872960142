"""The SQLite store: FTS5 safety, error mapping, and the embedder it was built with."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from headroom_memory import (
    ConfigurationError,
    HierarchicalMemory,
    MemoryConfig,
    MemoryFilter,
    StorageError,
)
from headroom_memory.adapters import FTS5TextIndex, HNSWVectorIndex, LocalEmbedder, SQLiteMemoryStore, fts5_index
from headroom_memory.adapters.sql_common import POSTGRES, SQLITE
from headroom_memory.fts import fts_query
from headroom_memory.ports import VectorFilter
from headroom_memory.timeutil import utc_now

HOSTILE_QUERIES = [
    "", " ", '"', '""', "'", "*", "-", "NEAR(", "NEAR(a b", "a OR", "OR", "AND", "NOT",
    "(", ")", "((a)", 'foo"bar', "col:value", "content:secret", "^start", "a* OR b*",
    "'; DROP TABLE memories; --", "\x00", "a AND NOT b", "{a b}", "a + b", "🎉 emoji",
    "Robert'); DELETE FROM memories WHERE ('1'='1", "NEAR(a b, 5)", "-secret", "café",
]


async def test_hostile_text_queries_never_break_fts(memory: HierarchicalMemory) -> None:
    mem = await memory.add("The secret NEAR the café is OR-shaped (really) *wow*", "alice")
    for query in HOSTILE_QUERIES:
        results = await memory.text_search(query, "alice")
        assert all(r.memory.id == mem.id for r in results)
        await memory.search(query, "alice")
    assert [r.memory.id for r in await memory.text_search("secret", "alice")] == [mem.id]
    assert [r.memory.id for r in await memory.text_search("cafe", "alice")] == [mem.id]
    assert await memory.get(mem.id)


def test_fts_query_quotes_every_term() -> None:
    assert fts_query('NEAR(secret "x" OR -y*') == '"near" OR "secret" OR "x" OR "y"'
    assert fts_query("the a of") is None
    assert fts_query("") is None


def test_sql_builders_bind_values_as_parameters() -> None:
    evil = "x' OR '1'='1"
    for dialect in (SQLITE, POSTGRES):
        where, params = dialect.visibility_clause(VectorFilter(user_id=evil, session_id=evil), now=0)
        assert evil not in where and params["v_user"] == evil
        where, params = dialect.filter_clause(MemoryFilter(user_id=evil, metadata={evil: evil}), now=0)
        assert evil not in where and params["f_user_id"] == evil


async def test_opening_with_another_embedding_model_is_refused(db_path: Path, embedder: LocalEmbedder) -> None:
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as m:
        await m.add("x", "alice")
    store = SQLiteMemoryStore(db_path)
    with pytest.raises(ConfigurationError, match="all-MiniLM-L6-v2"):
        await store.open(model="text-embedding-3-small", dimension=1536)


async def test_a_missing_folder_is_a_clear_error(tmp_path: Path, embedder: LocalEmbedder) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        await HierarchicalMemory.create(MemoryConfig(db_path=tmp_path / "no" / "m.db"), embedder=embedder)


async def test_a_read_only_database_raises_storage_error_and_keeps_data(
    db_path: Path, embedder: LocalEmbedder
) -> None:
    config = MemoryConfig(db_path=db_path)
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        kept = await memory.add("Stored before", "alice")
    store = SQLiteMemoryStore(db_path)
    await store.open(model=embedder.model_name, dimension=embedder.dimension)
    await store._db.execute("PRAGMA query_only = ON")
    engine = HierarchicalMemory(config, store, HNSWVectorIndex(store, embedder.dimension), FTS5TextIndex(store),
                                embedder, None, owns_embedder=False)
    with pytest.raises(StorageError, match="read-only"):
        await engine.add("New", "alice")
    assert (await engine.get(kept.id)).content == "Stored before"
    await engine.close()
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("SELECT COUNT(*) FROM memories").fetchone()[0] == 1


async def test_common_terms_are_left_out_of_keyword_matching(
    memory: HierarchicalMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A term in most memories of a large store (here: the floor lowered) no longer
    matches on its own; a query of common terms only still matches them."""
    monkeypatch.setattr(fts5_index, "COMMON_FLOOR", 20)
    await memory.add_many([f"Talked about topic {i}" for i in range(40)], user_id="bob", dedup=False)
    pottery = await memory.add("Talked about pottery classes", "alice")
    other = await memory.add("Talked about the weather", "alice")
    hits = await memory.text_search("what did we say about pottery", "alice")
    assert [h.memory.id for h in hits] == [pottery.id]
    only_common = await memory.text_search("what did we talk about", "alice")
    assert {h.memory.id for h in only_common} == {pottery.id, other.id}


async def test_frequent_terms_follow_the_ranked_matches_newest_first(
    memory: HierarchicalMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A term in more than FREQUENT_SHARE of a large store (here: 40 of 600
    rows, the floor lowered) does not drive the BM25 ranking: the matches of the
    query's other terms come first, ranked; then the reader's newest visible
    matches of the frequent term, unranked, up to the limit."""
    monkeypatch.setattr(fts5_index, "COMMON_FLOOR", 20)
    await memory.add_many([f"Filler note {i} about the office" for i in range(548)], user_id="carol", dedup=False)
    kayaks = await memory.add_many([f"Paddled the kayak on trip {i}" for i in range(30)], user_id="alice",
                                   dedup=False)
    await memory.add_many([f"Rented a kayak, session two, trip {i}" for i in range(5)], user_id="alice",
                          session_id="s2", dedup=False)
    await memory.add_many([f"Bob's kayak number {i}" for i in range(4)], user_id="bob", dedup=False)
    lake_and_kayak = await memory.add("Took the kayak across the lake", "alice", dedup=False)
    old = await memory.add("Swam in the lake", "alice", dedup=False)
    lake = await memory.add("A cabin by the lake", "alice", dedup=False)
    await memory.supersede(old.id, "Stopped swimming in cold water")
    reader = VectorFilter(user_id="alice", session_id="s1")
    by_id = {m.id: m for m in [*kayaks, lake_and_kayak, lake]}
    labels = {label: m.id for label, m in (await memory.store.get_by_labels(
        [r[0] for r in await memory.store.text_search('"kayak" OR "lake"', reader, 100)])).items()}

    hits = await memory.text_index.search("kayak by the lake", reader, 10)
    ids = [labels[label] for label, _ in hits]
    assert set(ids[:2]) == {lake_and_kayak.id, lake.id} and all(score > 0 for _, score in hits[:2])
    assert ids[2:] == [m.id for m in reversed(kayaks)][:8] and all(score == 0.0 for _, score in hits[2:])
    assert set(ids) <= set(by_id)
    only_frequent = await memory.text_index.search("kayak", reader, 5)
    assert [labels[label] for label, _ in only_frequent] == [lake_and_kayak.id] + [m.id for m in kayaks[::-1][:4]]


async def zeppelin_store(memory: HierarchicalMemory) -> dict[str, str]:
    """Alice: 200 filler notes and 'zeppelin' in a current, a superseded and an
    other-session memory; Bob: 'zeppelin' too."""
    await memory.add_many([f"Filler note {i} about the office" for i in range(200)], user_id="alice", dedup=False)
    current = await memory.add("Flew in a zeppelin over the lake", "alice", dedup=False)
    old = await memory.add("Wants to ride a zeppelin one day", "alice", dedup=False)
    await memory.supersede(old.id, "Rode a hot air balloon instead")
    other_session = await memory.add("Zeppelin museum trip planned", "alice", session_id="s2", dedup=False)
    bob = await memory.add("Builds zeppelin models", "bob", dedup=False)
    return {"current": current.id, "old": old.id, "other_session": other_session.id, "bob": bob.id}


async def test_rare_terms_match_the_same_rows_with_or_without_the_user_posting_list(
    memory: HierarchicalMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rare terms of a large user are matched in every user's rows and then
    filtered: the same visible rows with the same scores as the user's own
    match, and the public text search uses that plan for them."""
    ids = await zeppelin_store(memory)
    store = memory.store
    assert isinstance(store, SQLiteMemoryStore)
    reader = VectorFilter(user_id="alice", session_id="s1")
    mine = await store.text_search('"zeppelin" OR "lake"', reader, 10)
    everyone = await store.text_search('"zeppelin" OR "lake"', reader, 10, all_users=True)
    assert everyone == mine and len(mine) == 1
    plans: list[bool] = []
    search = store.text_search

    async def spy(terms: str, flt: VectorFilter, limit: int, *, all_users: bool = False) -> list[tuple[int, float]]:
        plans.append(all_users)
        return await search(terms, flt, limit, all_users=all_users)

    monkeypatch.setattr(store, "text_search", spy)
    monkeypatch.setattr(fts5_index, "USER_ROWS_PER_TERM_ROW", 8)  # alice's ~200 rows are "many" next to 4
    hits = await memory.text_search("zeppelin", "alice", "s1")
    assert [h.memory.id for h in hits] == [ids["current"]] and plans == [True]
    assert {h.memory.id for h in await memory.text_search("zeppelin", "alice", "s2")} == {
        ids["current"], ids["other_session"]}
    assert [h.memory.id for h in await memory.text_search("office", "alice", top_k=3)] and plans[-1] is False


async def test_a_reader_who_sees_few_of_the_best_keyword_matches_gets_the_visible_ones(
    memory: HierarchicalMemory,
) -> None:
    """The user's best matches (4x the 40 candidates search asks for) are checked
    for visibility in one batch; when too few of them are visible (here: the 200
    best are another session's), every match is checked."""
    await memory.add_many([f"Kayak kayak kayak trip {i}" for i in range(200)], user_id="alice", session_id="s2",
                          dedup=False)
    shared = await memory.add_many([f"Borrowed a kayak and a tent from the neighbours, note {i}" for i in range(3)],
                                   user_id="alice", dedup=False)
    hits = await memory.text_search("kayak", "alice", "s1", top_k=5)
    assert {h.memory.id for h in hits} == {m.id for m in shared}


async def test_a_recall_count_not_waited_for_is_written_before_the_next_statement_and_at_close(
    db_path: Path, embedder: LocalEmbedder
) -> None:
    def stored_count() -> int:
        with contextlib.closing(sqlite3.connect(db_path)) as raw:
            return int(raw.execute("SELECT access_count FROM memories").fetchone()[0])

    async with await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as memory:
        cat = await memory.add("Has a cat called Miso", "alice")
        assert await memory.store.record_access([cat.id], utc_now(), wait=False) == {}
        assert stored_count() == 0  # the caller did not wait for the write
        assert (await memory.get(cat.id)).access_count == 1  # this process reads it at once
        recalled = await memory.recall("what pets does she have", "alice")
        assert [(m.id, m.access_count) for m in recalled] == [(cat.id, 2)]
    assert stored_count() == 2  # close wrote what was left


async def test_rows_read_beside_the_keyword_search_carry_the_recall_counts_not_yet_written(
    db_path: Path, embedder: LocalEmbedder
) -> None:
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as memory:
        cat = await memory.add("Has a cat called Miso", "alice")
        [label] = (await memory.store.visible_embeddings(VectorFilter(user_id="alice")))[0]
        await memory.store.record_access([cat.id], utc_now(), wait=False)  # not written yet
        rows = await memory.store.ranking_rows([label], cat.embedding, beside=True)
        assert rows[label].load().access_count == 1
        assert rows[label].similarity == pytest.approx(1.0, abs=1e-5)
        with contextlib.closing(sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)) as other:
            other.execute("BEGIN IMMEDIATE")  # another writer: the next count's write waits for it
            await memory.store.record_access([cat.id], utc_now(), wait=False)
            await asyncio.sleep(0.05)  # that write has begun (and waits)
            asyncio.get_running_loop().call_later(0.2, other.execute, "ROLLBACK")
            rows = await memory.store.ranking_rows([label], cat.embedding, beside=True)
        assert rows[label].load().access_count == 2


async def test_a_recall_count_that_cannot_be_written_is_logged_and_breaks_nothing(
    db_path: Path, embedder: LocalEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db_path, busy_timeout=0.05),
                                               embedder=embedder) as memory:
        cat = await memory.add("Has a cat called Miso", "alice")
        with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as other_process:
            other_process.execute("BEGIN IMMEDIATE")  # holds the write lock past the busy timeout
            await memory.store.record_access([cat.id], utc_now(), wait=False)
            assert (await memory.get(cat.id)).content == "Has a cat called Miso"
            other_process.execute("ROLLBACK")
        assert "a recall count was not saved" in caplog.text
        assert (await memory.get(cat.id)).access_count == 0
        assert [m.id for m in await memory.recall("what pets does she have", "alice")] == [cat.id]
        assert (await memory.get(cat.id)).access_count == 1


async def test_a_search_never_reads_a_transaction_still_open_on_the_connection(
    db_path: Path, embedder: LocalEmbedder
) -> None:
    """A search reads on the event loop, on the store's own connection, only
    while no statement runs there: one beside an open transaction waits for it."""
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as memory:
        home = await memory.add("Lives in a flat in Lisbon", "alice")
        assert await memory.text_search("flat", "alice")  # counted: her rows (a long read, on the thread)
        with pytest.raises(RuntimeError, match="rolled back"):
            async with memory.store._transaction() as tx:
                await tx.execute("UPDATE memories SET content = 'Lives in a flat in Paris' WHERE id = :id",
                                 {"id": home.id})
                searches = [asyncio.ensure_future(memory.text_search("Paris", "alice")),
                            asyncio.ensure_future(memory.search("Where is her flat?", "alice"))]
                await asyncio.sleep(0.3)
                assert not any(search.done() for search in searches)  # they wait for the transaction to end
                raise RuntimeError("rolled back")
        assert [[r.memory.content for r in await search] for search in searches] == [
            [], ["Lives in a flat in Lisbon"]]


async def test_one_add_waits_for_another_writer_and_a_failed_one_stores_nothing(
    db_path: Path, embedder: LocalEmbedder
) -> None:
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as memory:
        await memory.add("Has a cat called Miso", "alice")
        other_process = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        other_process.execute("BEGIN IMMEDIATE")  # holds the write lock for a while
        add = asyncio.ensure_future(memory.add("Plays the cello", "alice"))
        await asyncio.sleep(0.3)
        assert not add.done()
        other_process.execute("ROLLBACK")
        other_process.close()
        cello = await add
        assert (await memory.get(cello.id)).content == "Plays the cello"
        with pytest.raises(StorageError):
            await memory.store.insert([cello])  # the same id again: refused as a whole
        assert [m.content for m in await memory.query(MemoryFilter(user_id="alice"))] == [
            "Has a cat called Miso", "Plays the cello"]
        assert [r.memory.id for r in await memory.text_search("cello", "alice")] == [cello.id]


async def test_a_write_after_searches_still_waits_for_another_writer(db_path: Path, embedder: LocalEmbedder) -> None:
    """Searches read on the event loop without waiting for a lock (busy_timeout 0,
    left so between them); the next write waits for the lock as configured."""
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as memory:
        cat = await memory.add("Has a cat called Miso", "alice")
        for _ in range(2):
            assert [r.memory.id for r in await memory.search("Which pet does she have?", "alice")] == [cat.id]
        with contextlib.closing(sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)) as other:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock for a while
            add = asyncio.ensure_future(memory.add("Plays the cello", "alice"))
            await asyncio.sleep(0.3)
            assert not add.done()
            other.execute("ROLLBACK")
            cello = await add
        assert [r.memory.id for r in await memory.search("cello", "alice", mode="text")] == [cello.id]


async def test_a_word_no_memory_held_is_found_as_soon_as_one_does(db_path: Path, embedder: LocalEmbedder) -> None:
    config = MemoryConfig(db_path=db_path)
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory, \
            await HierarchicalMemory.create(config, embedder=embedder) as other_process:
        cat = await memory.add("Has a cat called Miso", "alice")
        assert [r.memory.id for r in await memory.text_search("zorro or miso", "alice")] == [cat.id]
        assert await memory.text_search("zorro", "alice") == []  # counted: no memory holds it
        dog = await memory.add("Adopted a dog called Zorro", "alice")
        assert [r.memory.id for r in await memory.text_search("zorro", "alice")] == [dog.id]
        assert await memory.search("quetzal", "alice", mode="text") == []
        parrot = await other_process.add("Her parrot Quetzal talks", "alice")  # another connection
        assert [r.memory.id for r in await memory.search("quetzal", "alice", mode="text")] == [parrot.id]


async def test_words_no_memory_holds_change_no_keyword_score(memory: HierarchicalMemory) -> None:
    await memory.add_many(["Borrowed a kayak from the neighbours", "Paddled the kayak across the lake",
                           "Went hiking in the hills"], user_id="alice")
    reader = VectorFilter(user_id="alice")
    plain = await memory.text_index.search("kayak lake", reader, 10)  # (label, BM25 score)
    assert await memory.text_index.search("kayak xyzzy lake qwertyuiop", reader, 10) == plain
    assert len(plain) == 2 and plain[0][1] > plain[1][1] > 0
