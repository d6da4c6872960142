"""Supersession chains, history from either end, as_of, promotion and end_turn."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from headroom_memory import (
    HierarchicalMemory,
    InvalidInputError,
    MemoryCategory,
    MemoryConflictError,
    MemoryFilter,
    MemoryNotFoundError,
    ScopeLevel,
)


async def test_the_pages_supersession_flow(memory: HierarchicalMemory) -> None:
    orig = await memory.add(content="User works at Google", user_id="alice", category=MemoryCategory.FACT)
    new = await memory.supersede(old_memory_id=orig.id, new_content="User now works at Anthropic")

    current = await memory.query(MemoryFilter(user_id="alice", include_superseded=False))
    assert [m.content for m in current] == ["User now works at Anthropic"]

    history = await memory.query(MemoryFilter(user_id="alice", include_superseded=True))
    assert [m.content for m in history] == ["User works at Google", "User now works at Anthropic"]

    chain = await memory.get_history(new.id)
    assert [(m.content, m.is_current) for m in chain] == [
        ("User works at Google", False),
        ("User now works at Anthropic", True),
    ]
    old = chain[0]
    assert old.valid_until == new.valid_from
    assert old.superseded_by == new.id and new.supersedes == old.id
    assert new.category is MemoryCategory.FACT


async def test_history_is_the_same_from_either_end_of_a_long_chain(memory: HierarchicalMemory) -> None:
    first = await memory.add("Lives in Lyon", "alice")
    second = await memory.supersede(first.id, "Lives in Paris")
    third = await memory.supersede(second.id, "Lives in Berlin")
    expected = [first.id, second.id, third.id]
    for member in expected:
        assert [m.id for m in await memory.get_history(member)] == expected


async def test_superseded_memories_leave_search_and_text_search(memory: HierarchicalMemory) -> None:
    old = await memory.add("Drives a red Toyota", "alice")
    new = await memory.supersede(old.id, "Drives a blue Volvo")
    hits = await memory.search("what car does she drive", "alice")
    assert [r.memory.id for r in hits] == [new.id]
    assert await memory.text_search("Toyota", "alice") == []


async def test_as_of_lists_what_was_current_at_an_instant(memory: HierarchicalMemory) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    job = await memory.add("Works at Google", "alice", created_at=t0)
    await memory.supersede(job.id, "Works at Anthropic", valid_from=t0 + timedelta(days=30))

    def at(day: int) -> MemoryFilter:
        return MemoryFilter(user_id="alice", as_of=t0 + timedelta(days=day))

    assert [m.content for m in await memory.query(at(10))] == ["Works at Google"]
    assert [m.content for m in await memory.query(at(30))] == ["Works at Anthropic"]
    assert await memory.query(MemoryFilter(user_id="alice", as_of=t0 - timedelta(days=1))) == []
    naive = MemoryFilter(user_id="alice", as_of=datetime(2024, 1, 11))
    assert [m.content for m in await memory.query(naive)] == ["Works at Google"]


async def test_superseding_a_closed_memory_is_a_conflict_and_changes_nothing(
    memory: HierarchicalMemory,
) -> None:
    old = await memory.add("Has a cat", "alice")
    await memory.supersede(old.id, "Has two cats")
    before = await memory.query(MemoryFilter(include_superseded=True))
    with pytest.raises(MemoryConflictError, match="no longer current"):
        await memory.supersede(old.id, "Has a dog")
    assert await memory.query(MemoryFilter(include_superseded=True)) == before


async def test_two_concurrent_supersessions_have_one_winner(memory: HierarchicalMemory) -> None:
    old = await memory.add("Favourite colour is green", "alice")
    outcomes = await asyncio.gather(
        memory.supersede(old.id, "Favourite colour is blue"),
        memory.supersede(old.id, "Favourite colour is red"),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1
    assert isinstance(next(o for o in outcomes if isinstance(o, BaseException)), MemoryConflictError)
    chain = await memory.get_history(old.id)
    assert [m.id for m in chain] == [old.id, winners[0].id]


async def test_supersede_can_change_category_and_importance(memory: HierarchicalMemory) -> None:
    old = await memory.add("Maybe switching to Rust", "alice", category="context", importance=0.3)
    new = await memory.supersede(old.id, "Switched to Rust", category="decision", importance=0.9)
    assert (new.category, new.importance, new.scope) == (MemoryCategory.DECISION, 0.9, ScopeLevel.USER)
    with pytest.raises(InvalidInputError):
        await memory.supersede(new.id, "")


async def test_supersede_of_an_unknown_id_is_not_found(memory: HierarchicalMemory) -> None:
    with pytest.raises(MemoryNotFoundError):
        await memory.supersede("missing", "x")


async def test_deleting_the_middle_of_a_chain_relinks_it(memory: HierarchicalMemory) -> None:
    a = await memory.add("v1", "alice")
    b = await memory.supersede(a.id, "v2")
    c = await memory.supersede(b.id, "v3")
    await memory.delete(b.id)
    assert [m.id for m in await memory.get_history(c.id)] == [a.id, c.id]
    assert [m.id for m in await memory.query(MemoryFilter(user_id="alice"))] == [c.id]


async def test_promotion_is_recorded_in_the_history(memory: HierarchicalMemory) -> None:
    turn = await memory.add("Wants answers in French", "alice", session_id="s1", turn_id="t1")
    promoted = await memory.promote(turn.id, reason="test")
    assert promoted.scope is ScopeLevel.SESSION
    assert promoted.promoted_from is ScopeLevel.TURN
    assert promoted.metadata["promotion_reason"] == "test"
    assert [m.id for m in await memory.get_history(turn.id)] == [turn.id, promoted.id]
    top = await memory.promote(promoted.id)
    assert (top.scope, top.session_id) == (ScopeLevel.USER, None)
    with pytest.raises(InvalidInputError, match="already at user scope"):
        await memory.promote(top.id)


async def test_end_turn_keeps_important_turn_memories_and_expires_the_rest(
    memory: HierarchicalMemory,
) -> None:
    keep = await memory.add("Allergic to peanuts", "alice", session_id="s1", turn_id="t1", importance=0.95)
    drop = await memory.add("Is looking at the menu", "alice", session_id="s1", turn_id="t1", importance=0.2)
    promoted = await memory.end_turn("alice", session_id="s1", turn_id="t1")
    assert [m.content for m in promoted] == [keep.content]
    assert promoted[0].scope is ScopeLevel.SESSION
    next_turn = await memory.visible("alice", session_id="s1", turn_id="t2")
    assert [m.content for m in next_turn] == [keep.content]
    closed = await memory.get(drop.id)
    assert not closed.is_current and closed.valid_until is not None


async def test_recall_promotes_a_memory_recalled_often(memory: HierarchicalMemory) -> None:
    mem = await memory.add("Team uses trunk-based development", "alice", session_id="s1")
    for _ in range(memory.config.bubble_min_recalls - 1):
        recalled = await memory.recall("branching strategy", "alice", session_id="s1")
        assert recalled[0].scope is ScopeLevel.SESSION
    recalled = await memory.recall("branching strategy", "alice", session_id="s1")
    assert recalled[0].scope is ScopeLevel.USER and recalled[0].promoted_from is ScopeLevel.SESSION
    assert (await memory.get(mem.id)).superseded_by == recalled[0].id
    other_session = await memory.search("branching strategy", "alice", session_id="s2")
    assert [r.memory.id for r in other_session] == [recalled[0].id]


async def test_expired_memories_leave_search_but_stay_in_history(memory: HierarchicalMemory) -> None:
    from datetime import timedelta as td

    past = datetime.now(timezone.utc) - td(days=3)
    gone = await memory.add("Is in Rome this week", "alice", category="context", created_at=past, ttl=td(days=1))
    kept = await memory.add("Is in Rome for a year", "alice", category="context", created_at=past, ttl=400 * 86_400)
    assert gone.valid_until == past + td(days=1) and not gone.is_current and gone.is_expired
    assert [r.memory.id for r in await memory.search("where is she staying", "alice")] == [kept.id]
    assert [m.id for m in await memory.query(MemoryFilter(user_id="alice"))] == [kept.id]
    listed = await memory.query(MemoryFilter(user_id="alice", include_superseded=True))
    assert {m.id for m in listed} == {gone.id, kept.id}
    assert (await memory.stats(user_id="alice"))["expired"] == 1
    with pytest.raises(InvalidInputError, match="ttl"):
        await memory.add("x", "alice", ttl=0)


async def test_context_memories_get_the_configured_default_ttl(tmp_path: object, embedder: object) -> None:
    from datetime import timedelta as td

    from headroom_memory import MemoryConfig

    config = MemoryConfig(db_path=tmp_path / "ttl.db", context_ttl=td(hours=2))  # type: ignore[operator]
    async with await HierarchicalMemory.create(config, embedder=embedder) as memory:  # type: ignore[arg-type]
        context = await memory.add("Debugging the login page", "alice", category="context")
        fact = await memory.add("Works at Anthropic", "alice", category="fact")
        assert context.valid_until == context.valid_from + td(hours=2)
        assert fact.valid_until is None
