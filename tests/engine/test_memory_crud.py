"""add / get / query / delete / clear / stats of HierarchicalMemory, on real SQLite files."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from headroom_memory import (
    HierarchicalMemory,
    InvalidInputError,
    MemoryCategory,
    MemoryClosedError,
    MemoryConfig,
    MemoryFilter,
    MemoryNotFoundError,
    ScopeLevel,
)


async def test_add_returns_the_stored_memory(memory: HierarchicalMemory) -> None:
    mem = await memory.add(
        content="User prefers functional programming",
        user_id="alice",
        session_id="sess-123",
        agent_id="code-assistant",
        category=MemoryCategory.PREFERENCE,
        importance=0.9,
        entity_refs=["functional-programming", "coding-style"],
        metadata={"source": "conversation", "confidence": 0.95},
    )
    assert mem.scope is ScopeLevel.AGENT
    stored = await memory.get(mem.id)
    assert stored == mem
    assert stored.entity_refs == ("functional-programming", "coding-style")
    assert stored.metadata == {"source": "conversation", "confidence": 0.95}
    assert stored.created_at.tzinfo is timezone.utc
    assert stored.is_current


async def test_memories_read_back_are_whole_and_share_no_mutable_field(memory: HierarchicalMemory) -> None:
    plain = await memory.add("Has a cat", user_id="alice")  # the default metadata and entity refs
    first, second = await memory.get(plain.id), await memory.get(plain.id)
    assert first == second == plain and first.metadata == {} and first.entity_refs == ()
    assert first.metadata is not second.metadata
    assert first.embedding is None and first.merged is False


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ({}, ScopeLevel.USER),
        ({"session_id": "s"}, ScopeLevel.SESSION),
        ({"session_id": "s", "agent_id": "a"}, ScopeLevel.AGENT),
        ({"session_id": "s", "agent_id": "a", "turn_id": "t"}, ScopeLevel.TURN),
        ({"turn_id": "t"}, ScopeLevel.TURN),
    ],
)
async def test_scope_defaults_to_the_deepest_id_given(
    memory: HierarchicalMemory, ids: dict[str, str], expected: ScopeLevel
) -> None:
    mem = await memory.add("Likes tea", "alice", **ids)
    assert mem.scope is expected


async def test_an_explicit_broader_scope_drops_the_narrower_ids(memory: HierarchicalMemory) -> None:
    mem = await memory.add("Prefers Go", "bob", session_id="morning", scope="user")
    assert (mem.scope, mem.session_id) == (ScopeLevel.USER, None)
    other_session = await memory.search("language preference", "bob", session_id="afternoon")
    assert [r.memory.id for r in other_session] == [mem.id]


async def test_a_scope_whose_id_is_missing_is_refused(memory: HierarchicalMemory) -> None:
    with pytest.raises(InvalidInputError, match="session_id"):
        await memory.add("x", "alice", scope=ScopeLevel.SESSION)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": ""}, "content is empty"),
        ({"content": "   "}, "content is empty"),
        ({"content": 42}, "content must be a string"),
        ({"importance": 1.5}, "importance"),
        ({"importance": -0.1}, "importance"),
        ({"importance": float("nan")}, "importance"),
        ({"importance": True}, "importance"),
        ({"category": "hobby"}, "unknown memory category 'hobby'"),
        ({"scope": "galaxy"}, "unknown scope level"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": None}, "user_id is required"),
        ({"entity_refs": "python"}, "entity_refs"),
        ({"metadata": {"when": datetime.now()}}, "JSON"),
        ({"metadata": {1: "x"}}, "keys must be strings"),
        ({"content": "x" * 20_001}, "limit"),
    ],
)
async def test_bad_input_is_a_clear_error_and_stores_nothing(
    memory: HierarchicalMemory, kwargs: dict[str, object], message: str
) -> None:
    await memory.add("Existing fact", "alice")
    args: dict[str, object] = {"content": "A fact", "user_id": "alice", **kwargs}
    with pytest.raises(InvalidInputError, match=message):
        await memory.add(**args)  # type: ignore[arg-type]
    assert [m.content for m in await memory.query(MemoryFilter(include_superseded=True))] == [
        "Existing fact"
    ]


async def test_category_strings_are_accepted_case_insensitively(memory: HierarchicalMemory) -> None:
    mem = await memory.add("Chose PostgreSQL", "alice", category="Decision")
    assert mem.category is MemoryCategory.DECISION


async def test_get_of_an_unknown_id_raises_not_found(memory: HierarchicalMemory) -> None:
    with pytest.raises(MemoryNotFoundError, match="nope"):
        await memory.get("nope")


async def test_query_filters_exactly_without_inheritance(memory: HierarchicalMemory) -> None:
    user = await memory.add("u", "alice", category="fact", importance=0.9)
    session = await memory.add("s", "alice", session_id="s1", category="context", importance=0.3)
    agent = await memory.add("a", "alice", session_id="s1", agent_id="bot", importance=0.5)
    await memory.add("other", "bob")

    def ids(memories: list) -> list[str]:  # type: ignore[type-arg]
        return [m.id for m in memories]

    assert ids(await memory.query(MemoryFilter(user_id="alice"))) == [user.id, session.id, agent.id]
    assert ids(await memory.query(MemoryFilter(user_id="alice", session_id="s1"))) == [session.id, agent.id]
    assert ids(await memory.query(MemoryFilter(user_id="alice", scopes=["session"]))) == [session.id]
    assert ids(await memory.query(MemoryFilter(user_id="alice", categories=["context"]))) == [session.id]
    assert ids(await memory.query(MemoryFilter(user_id="alice", min_importance=0.5))) == [user.id, agent.id]
    assert ids(await memory.query(MemoryFilter(user_id="alice", limit=2, offset=1))) == [session.id, agent.id]


@pytest.mark.parametrize(
    "kwargs",
    [{"limit": 0}, {"offset": -1}, {"min_importance": 2}, {"categories": ["nope"]}, {"user_id": ""}],
)
def test_memory_filter_validates_its_fields(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        MemoryFilter(**kwargs)  # type: ignore[arg-type]


async def test_delete_removes_one_memory_from_rows_and_both_indexes(memory: HierarchicalMemory) -> None:
    keep = await memory.add("Loves hiking in the Alps", "alice")
    gone = await memory.add("Plays the cello in an orchestra", "alice")
    await memory.delete(gone.id)
    with pytest.raises(MemoryNotFoundError):
        await memory.get(gone.id)
    assert [r.memory.id for r in await memory.search("cello orchestra", "alice")] == [keep.id]
    assert await memory.text_search("cello", "alice") == []


async def test_clear_is_never_wider_than_asked(memory: HierarchicalMemory) -> None:
    user = await memory.add("u", "alice")
    s1 = await memory.add("s1", "alice", session_id="s1")
    s1_agent = await memory.add("s1 agent", "alice", session_id="s1", agent_id="bot")
    s2 = await memory.add("s2", "alice", session_id="s2")
    bob = await memory.add("bob", "bob", session_id="s1")

    assert await memory.clear("alice", session_id="s1") == 2
    remaining = {m.id for m in await memory.query(MemoryFilter(include_superseded=True))}
    assert remaining == {user.id, s2.id, bob.id}
    assert s1.id not in remaining and s1_agent.id not in remaining

    assert await memory.clear("alice") == 2
    assert {m.id for m in await memory.query(MemoryFilter(include_superseded=True))} == {bob.id}


async def test_stats_count_current_memories_by_category(memory: HierarchicalMemory) -> None:
    fact = await memory.add("Works at Google", "alice", category="fact")
    await memory.add("Prefers Python", "alice", category="preference")
    await memory.add("Prefers Go", "bob", category="preference")
    await memory.supersede(fact.id, "Works at Anthropic")
    stats = await memory.stats(user_id="alice")
    assert stats["total"] == 2
    assert stats["categories"]["preference"] == 1
    assert stats["categories"]["fact"] == 1
    assert stats["superseded"] == 1
    assert stats["scopes"]["user"] == 2
    assert (await memory.stats())["total"] == 3


async def test_naive_datetimes_are_taken_as_utc(memory: HierarchicalMemory) -> None:
    mem = await memory.add("Old fact", "alice", created_at=datetime(2023, 5, 8, 13, 56))
    assert mem.created_at == datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)
    assert mem.valid_from == mem.created_at
    plus_two = timezone(timedelta(hours=2))
    aware = await memory.add("Other", "alice", created_at=datetime(2023, 5, 8, 15, 56, tzinfo=plus_two))
    assert aware.created_at == mem.created_at


async def test_memories_persist_across_a_reopen(config: MemoryConfig, embedder: object) -> None:
    async with await HierarchicalMemory.create(config, embedder=embedder) as first:  # type: ignore[arg-type]
        mem = await first.add("Keeps bees on the roof", "alice", category="fact")
    async with await HierarchicalMemory.create(config, embedder=embedder) as second:  # type: ignore[arg-type]
        assert (await second.get(mem.id)).content == "Keeps bees on the roof"
        hits = await second.search("beekeeping hobby", "alice")
        assert hits[0].memory.id == mem.id
        assert (await second.text_search("bees", "alice"))[0].memory.id == mem.id


async def test_calls_after_close_raise_closed(config: MemoryConfig, embedder: object) -> None:
    engine = await HierarchicalMemory.create(config, embedder=embedder)  # type: ignore[arg-type]
    await engine.close()
    await engine.close()
    with pytest.raises(MemoryClosedError):
        await engine.add("x", "alice")
