"""Search quality basics, path visibility, and isolation between users across every call."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from headroom_memory import (
    HierarchicalMemory,
    InvalidInputError,
    MemoryCategory,
    MemoryConfig,
    MemoryFilter,
    MemoryNotFoundError,
    NewMemory,
    SearchResult,
)
from headroom_memory.adapters import LocalEmbedder


async def test_the_pages_search_example(memory: HierarchicalMemory) -> None:
    mem = await memory.add(
        content="User prefers functional programming", user_id="alice",
        session_id="sess-123", agent_id="code-assistant",
        category=MemoryCategory.PREFERENCE, importance=0.9,
    )
    await memory.add("User's cat is called Miso", "alice", category=MemoryCategory.FACT)
    results = await memory.search(
        query="programming paradigm preferences", user_id="alice", session_id="sess-123",
        agent_id="code-assistant", top_k=5, min_similarity=0.5, categories=[MemoryCategory.PREFERENCE],
    )
    assert [r.memory.id for r in results] == [mem.id]
    assert results[0].similarity >= 0.5
    assert results[0].score > 0
    text_results = await memory.text_search(query="functional", user_id="alice",
                                            session_id="sess-123", agent_id="code-assistant")
    assert [r.memory.id for r in text_results] == [mem.id]
    remembered = await memory.remember("Likes coffee", user_id="alice", importance=0.6)
    relevant = await memory.recall("beverage preferences", user_id="alice")
    assert relevant[0].id == remembered.id


async def test_semantic_search_ranks_the_relevant_memory_first(memory: HierarchicalMemory) -> None:
    facts = [
        "Prefers Python for backend work",
        "Has a golden retriever named Biscuit",
        "Is training for the Berlin marathon",
        "Lives in a flat in Lisbon",
    ]
    for fact in facts:
        await memory.add(fact, "alice")
    for query, expected in [
        ("What programming language should I use?", facts[0]),
        ("tell me about her dog", facts[1]),
        ("running race preparation", facts[2]),
        ("which city does she live in", facts[3]),
    ]:
        assert (await memory.search(query, "alice", top_k=1))[0].memory.content == expected


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
async def test_every_mode_finds_an_exact_keyword(memory: HierarchicalMemory, mode: str) -> None:
    await memory.add("Project Apollo uses React", "alice", category="entity")
    await memory.add("The weather was nice", "alice")
    hits = await memory.search("Apollo", "alice", mode=mode)  # type: ignore[arg-type]
    assert hits[0].memory.content == "Project Apollo uses React"


async def test_a_hybrid_search_ranks_the_same_whichever_search_ends_first(
    memory: HierarchicalMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The best vector hits' rows are read while a slower keyword search runs
    (and the other candidates' rows while that read is still running)."""
    for fact in ["Prefers Python for backend work", "Has a golden retriever named Biscuit",
                 "Is training for the Berlin marathon", "Lives in a flat in Lisbon",
                 "Biscuit the retriever hates the rain", "Ran the Lisbon half marathon in May",
                 "Writes Rust at work but Python at home", "Her flat has a small balcony",
                 *(f"Keeps receipt {i} in the kitchen drawer" for i in range(12))]:
        await memory.add(fact, "alice")
    read_beside: list[int] = []
    slow_beside = [0.0]
    ranking_rows = memory.store.ranking_rows

    async def counted(labels: list[int], vector: np.ndarray, *, beside: bool = False) -> dict:  # type: ignore[type-arg]
        read_beside.extend(labels if beside else [])
        await asyncio.sleep(slow_beside[0] if beside else 0)
        return await ranking_rows(labels, vector, beside=beside)

    monkeypatch.setattr(memory.store, "ranking_rows", counted)

    def delayed(search):  # type: ignore[no-untyped-def]
        async def later(*args, **kwargs):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.05)
            return await search(*args, **kwargs)
        return later

    def ranked(results: list[SearchResult]) -> list[tuple[str, object, float, int | None, int | None]]:
        # the scores of the second search have aged by the delay (recency)
        return [(r.memory.id, pytest.approx(r.score, rel=1e-6), r.similarity, r.vector_rank, r.text_rank)
                for r in results]

    for query in ["Biscuit the dog", "marathon in Lisbon", "which language for work"]:
        with monkeypatch.context() as patch:
            patch.setattr(memory.vector_index, "search", delayed(memory.vector_index.search))
            keyword_first = await memory.search(query, "alice", top_k=2)
        assert not read_beside
        for slow_beside[0] in (0.0, 0.2):  # the read beside ends before the keyword search, then after
            if memory.cache is not None:
                memory.cache.clear()  # not answered from the cache
            with monkeypatch.context() as patch:
                patch.setattr(memory.text_index, "search", delayed(memory.text_index.search))
                vector_first = await memory.search(query, "alice", top_k=2)
            assert read_beside and ranked(vector_first) == ranked(keyword_first)
        read_beside.clear()


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
async def test_each_hit_reports_its_cosine_similarity_and_min_similarity_filters_by_it(
    memory: HierarchicalMemory, embedder: LocalEmbedder, mode: str
) -> None:
    stored = [await memory.add(text, "alice") for text in (
        "Project Apollo uses React", "Apollo the cat sleeps all day", "Lunch was a tomato soup")]
    query = "Which framework does Apollo use?"
    [vector] = await embedder.embed([query])
    kept = await memory.embeddings([m.id for m in stored])
    cosine = {mid: float(np.dot(e, vector) / np.linalg.norm(vector)) for mid, e in kept.items()}
    hits = await memory.search(query, "alice", mode=mode, min_similarity=-1.0)  # type: ignore[arg-type]
    assert hits and all(h.similarity == pytest.approx(cosine[h.memory.id], abs=1e-5) for h in hits)
    cut = sorted(cosine.values())[1] + 1e-4  # between the second and the best
    strict = await memory.search(query, "alice", mode=mode, min_similarity=cut)  # type: ignore[arg-type]
    assert [h.memory.id for h in strict] == [max(cosine, key=cosine.__getitem__)]


async def test_a_low_ranked_but_important_memory_can_still_win(config: MemoryConfig, embedder: LocalEmbedder) -> None:
    """Candidates are scored best fused rank first and the rest skipped once
    they cannot win; a heavy importance weight must still lift the last one."""
    if config.postgres_url:
        pytest.skip("PostgreSQL's text rank does not order these notes by length (the engine code is shared)")
    async with await HierarchicalMemory.create(config.model_copy(update={"importance_weight": 50.0}),
                                               embedder=embedder) as memory:
        await memory.add_many([f"note {n} about pears" for n in range(40)], user_id="alice")
        for n in range(24):  # longer notes rank lower for the keyword
            await memory.add("apple " + " ".join(f"filler{i}" for i in range(n)), "alice", importance=0.0)
        key = await memory.add("apple " + " ".join(f"filler{i}" for i in range(30)), "alice", importance=1.0)
        [hit] = await memory.search("apple", "alice", top_k=1, mode="text")
        assert hit.memory.id == key.id and hit.text_rank == 25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"top_k": 0}, "top_k"), ({"top_k": -3}, "top_k"), ({"min_similarity": 2.0}, "min_similarity"),
     ({"mode": "fuzzy"}, "mode"), ({"user_id": ""}, "user_id"), ({"categories": ["x"]}, "category"),
     ({"subtree": 1}, "subtree"), ({"min_importance": True}, "min_importance")],
)
async def test_search_rejects_bad_arguments(memory: HierarchicalMemory, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    args = {"query": "anything", "user_id": "alice", **kwargs}
    for subtree in (True, False):  # the reader of a valid search just made is not reused for a bad one
        await memory.search("anything", "alice", subtree=subtree)
        with pytest.raises(InvalidInputError, match=message):
            await memory.search(**args)


async def test_a_category_list_changed_in_place_filters_the_next_search(memory: HierarchicalMemory) -> None:
    await memory.add("Prefers window seats", "alice", category="preference")
    await memory.add("Lives in Lisbon", "alice", category="fact")
    wanted = ["preference"]
    [first] = await memory.search("seats and city", "alice", categories=wanted)
    wanted[0] = "fact"
    [second] = await memory.search("seats and city", "alice", categories=wanted)
    assert (first.memory.content, second.memory.content) == ("Prefers window seats", "Lives in Lisbon")


async def test_an_empty_query_finds_nothing(memory: HierarchicalMemory) -> None:
    await memory.add("Something", "alice")
    assert await memory.search("", "alice") == []
    assert await memory.search("   ", "alice") == []


async def test_readers_see_only_their_path_up_the_tree(memory: HierarchicalMemory) -> None:
    user = await memory.add("user level", "alice")
    s1 = await memory.add("session one", "alice", session_id="s1")
    s2 = await memory.add("session two", "alice", session_id="s2")
    s1_bot = await memory.add("agent bot in s1", "alice", session_id="s1", agent_id="bot")
    s1_other = await memory.add("agent other in s1", "alice", session_id="s1", agent_id="other")
    s1_bot_t1 = await memory.add("turn t1", "alice", session_id="s1", agent_id="bot", turn_id="t1")
    await memory.add("bob's", "bob", session_id="s1")

    async def seen(**reader: str) -> set[str]:
        visible = {m.id for m in await memory.visible("alice", **reader)}
        found = {r.memory.id for r in await memory.search("level session agent turn", "alice",
                                                           top_k=50, min_similarity=-1.0, **reader)}
        assert found == visible
        return visible

    assert await seen() == {user.id}
    assert await seen(session_id="s1") == {user.id, s1.id}
    assert await seen(session_id="s2") == {user.id, s2.id}
    assert await seen(session_id="s1", agent_id="bot") == {user.id, s1.id, s1_bot.id}
    assert await seen(session_id="s1", agent_id="other") == {user.id, s1.id, s1_other.id}
    assert await seen(session_id="s1", agent_id="bot", turn_id="t1") == {
        user.id, s1.id, s1_bot.id, s1_bot_t1.id}
    assert await seen(session_id="s1", agent_id="bot", turn_id="t2") == {user.id, s1.id, s1_bot.id}


async def test_one_user_never_reaches_another_users_memory(memory: HierarchicalMemory) -> None:
    """Every public call given alice's identity and bob's memory ids."""
    bob = await memory.add("Bob's secret: the vault code is 4711", "bob", category="fact")
    bob_new = await memory.supersede(bob.id, "Bob's secret: the vault code is 1234")
    await memory.add("Alice likes jazz", "alice")
    bob_before = await memory.query(MemoryFilter(user_id="bob", include_superseded=True))

    for call in (
        memory.get(bob_new.id, user_id="alice"),
        memory.get_history(bob.id, user_id="alice"),
        memory.supersede(bob_new.id, "hijacked", user_id="alice"),
        memory.delete(bob_new.id, user_id="alice"),
        memory.promote(bob_new.id, user_id="alice"),
    ):
        with pytest.raises(MemoryNotFoundError):
            await call
    for mode in ("hybrid", "vector", "text"):
        hits = await memory.search("vault code secret", "alice", mode=mode, min_similarity=-1.0)  # type: ignore[arg-type]
        assert all(r.memory.user_id == "alice" for r in hits)
    assert all(m.user_id == "alice" for m in await memory.recall("vault code", "alice"))
    assert all(m.user_id == "alice" for m in await memory.visible("alice", include_superseded=True))
    assert (await memory.stats(user_id="alice"))["total"] == 1
    await memory.clear("alice")
    assert await memory.query(MemoryFilter(user_id="bob", include_superseded=True)) == bob_before


async def test_search_is_exact_for_a_small_user_among_many_others(
    tmp_path: object, embedder: LocalEmbedder
) -> None:
    """3 memories of one user in a store of 50,000 of other users, whose vectors
    sit closer to the query than hers: all 3 come back, nobody else's."""
    config = MemoryConfig(db_path=tmp_path / "big.db", hnsw_ef_construction=32, hnsw_m=8)  # type: ignore[operator]
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:
        query = "What does Carol do on weekends?"
        qvec = (await embedder.embed([query]))[0]
        rng = np.random.default_rng(7)
        noise = rng.normal(size=(50_000, qvec.shape[0])).astype(np.float32) * 0.05
        others = [
            NewMemory(content=f"memory {i} of someone else", user_id=f"user-{i % 500}", embedding=qvec + n)
            for i, n in enumerate(noise)
        ]
        await memory.add_many(others, batch_size=5_000, dedup=False)
        mine = [await memory.add(text, "carol") for text in
                ["Carol goes climbing on weekends", "Carol bakes sourdough", "Carol studies Japanese"]]
        hits = await memory.search(query, "carol", top_k=5, min_similarity=-1.0, mode="vector")
        assert {r.memory.id for r in hits} == {m.id for m in mine}
        hybrid = await memory.search(query, "carol", top_k=5, min_similarity=-1.0)
        assert {r.memory.id for r in hybrid} == {m.id for m in mine}
        big_user = await memory.search(query, "user-3", top_k=10, mode="vector")
        assert len(big_user) == 10 and all(r.memory.user_id == "user-3" for r in big_user)


async def test_subtree_search_sees_every_session_of_the_user_and_no_other_user(
    memory: HierarchicalMemory,
) -> None:
    s1 = await memory.add("Booked a flight to Lisbon for March", "alice", session_id="s1")
    s2 = await memory.add("Hotel in Lisbon is near the river", "alice", session_id="s2", agent_id="travel")
    top = await memory.add("Alice is vegetarian", "alice")
    await memory.add("Bob is flying to Lisbon too", "bob", session_id="s1")
    path = await memory.search("Lisbon trip", "alice", top_k=10, min_similarity=-1)
    assert [r.memory.id for r in path] == [top.id]  # looking up: only user-level memories
    below = await memory.search("Lisbon trip", "alice", top_k=10, min_similarity=-1, subtree=True)
    assert {r.memory.id for r in below} == {s1.id, s2.id, top.id}
    session = await memory.search("Lisbon", "alice", "s2", top_k=10, min_similarity=-1, subtree=True)
    assert [r.memory.id for r in session] == [s2.id]
    text = await memory.search("Lisbon", "alice", top_k=10, mode="text", subtree=True)
    assert {r.memory.id for r in text} == {s1.id, s2.id}
    with pytest.raises(InvalidInputError, match="subtree"):
        await memory.search("Lisbon", "alice", subtree="yes")  # type: ignore[arg-type]


async def test_query_by_metadata_and_listing_nodes(memory: HierarchicalMemory) -> None:
    keyed = await memory.add("Prefers dark mode", "alice", "s1", metadata={"key": "ui", "n": 2, "ok": True})
    await memory.add("Prefers tea", "alice", "s1", metadata={"key": "drink"})
    await memory.add("Prefers dark mode", "bob", metadata={"key": "ui"})
    found = await memory.query(MemoryFilter(user_id="alice", metadata={"key": "ui"}))
    assert [m.id for m in found] == [keyed.id]
    assert [m.id for m in await memory.query(MemoryFilter(metadata={"n": 2, "ok": True}))] == [keyed.id]
    assert await memory.query(MemoryFilter(metadata={"key": "nothing"})) == []
    with pytest.raises(InvalidInputError, match="metadata filter values"):
        MemoryFilter(metadata={"key": ["ui"]})  # type: ignore[dict-item]
    assert await memory.nodes(MemoryFilter()) == [("alice", "s1", None, None), ("bob", None, None, None)]
    assert await memory.nodes(MemoryFilter(user_id="bob")) == [("bob", None, None, None)]
