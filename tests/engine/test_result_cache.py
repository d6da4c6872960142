"""The search result cache: a repeated question is answered without searching
again, and never with an answer that a change (here, in another connection, or
by time) made wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from headroom_memory import HierarchicalMemory, Memory, MemoryConfig, SearchResult
from headroom_memory.adapters import LocalEmbedder
from headroom_memory.models import assembled, updated
from headroom_memory.recall_tally import RecallTally


def count_index_searches(memory: HierarchicalMemory) -> list[int]:
    """Counts the vector index searches ``memory`` runs (a search not served from the cache)."""
    calls = [0]
    search: Callable[..., Awaitable[Any]] = memory.vector_index.search

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return await search(*args, **kwargs)

    memory.vector_index.search = counted  # type: ignore[method-assign]
    return calls


async def ids(memory: HierarchicalMemory, query: str = "what pets does she have", **scope: Any) -> list[str]:
    return [r.memory.id for r in await memory.search(query, "alice", **scope)]


async def test_every_change_shows_in_the_next_search(memory: HierarchicalMemory) -> None:
    cat = await memory.add("Has a cat called Miso", "alice")
    assert await ids(memory) == [cat.id]
    dog = await memory.add("Has a dog called Rex", "alice", dedup=False)
    assert set(await ids(memory)) == {cat.id, dog.id}
    newer = await memory.supersede(cat.id, "Has a cat called Miso and a kitten called Yuzu", user_id="alice")
    assert set(await ids(memory)) == {newer.id, dog.id}
    await memory.delete(dog.id)
    assert await ids(memory) == [newer.id]
    await memory.clear("alice")
    assert await ids(memory) == []


async def test_a_repeated_search_is_served_from_the_cache(db_path: Path, embedder: LocalEmbedder) -> None:
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as memory:
        cat = await memory.add("Has a cat called Miso", "alice")
        searches = count_index_searches(memory)
        for _ in range(3):
            assert await ids(memory) == [cat.id]
        assert searches[0] == 1
        assert await ids(memory, session_id="s1") == [cat.id]  # another reader is another entry
        assert searches[0] == 2
        dog = await memory.add("Has a dog called Rex", "alice", dedup=False)
        for _ in range(3):  # the stale answer is read again once, then cached again
            assert set(await ids(memory)) == {cat.id, dog.id}
        assert searches[0] == 3


async def test_writes_through_another_connection_invalidate_the_cache(
    db_path: Path, embedder: LocalEmbedder
) -> None:
    config = MemoryConfig(db_path=db_path)
    async with await HierarchicalMemory.create(config, embedder=embedder) as reader, \
            await HierarchicalMemory.create(config, embedder=embedder) as writer:
        cat = await writer.add("Has a cat called Miso", "alice")
        assert await ids(reader) == [cat.id]
        dog = await writer.add("Has a dog called Rex", "alice", dedup=False)
        assert set(await ids(reader)) == {cat.id, dog.id}
        await writer.delete(cat.id)
        assert await ids(reader) == [dog.id]


async def test_a_cached_result_that_expires_is_not_served(memory: HierarchicalMemory) -> None:
    brief = await memory.add("Is feeding the neighbour's cat this week", "alice", ttl=3.0)
    assert await ids(memory, "whose cat is she feeding") == [brief.id]
    assert brief.valid_until is not None
    await asyncio.sleep(max(0.0, (brief.valid_until - datetime.now(timezone.utc)).total_seconds()) + 0.1)
    assert await ids(memory, "whose cat is she feeding") == []


async def test_recalls_answered_from_the_cache_are_still_counted(memory: HierarchicalMemory) -> None:
    cat = await memory.add("Has a cat called Miso", "alice")
    for expected in (1, 2, 3):
        recalled = await memory.recall("what pets does she have", "alice")
        assert [(m.id, m.access_count) for m in recalled] == [(cat.id, expected)]
    assert (await memory.get(cat.id)).access_count == 3


async def test_a_cached_answer_shows_the_recalls_counted_since_it_was_cached(
    db_path: Path, embedder: LocalEmbedder
) -> None:
    async with await HierarchicalMemory.create(MemoryConfig(db_path=db_path), embedder=embedder) as memory:
        cat = await memory.add("Has a cat called Miso", "alice")
        searches = count_index_searches(memory)
        [before] = await memory.search("what pets does she have", "alice")
        assert before.memory.access_count == 0
        for expected in (1, 2):  # another question recalls the same memory
            [recalled] = await memory.recall("does she have a cat", "alice")
            assert recalled.access_count == expected
        [cached] = await memory.search("what pets does she have", "alice")
        assert searches[0] == 2  # the first question's answer came from the cache ...
        assert cached.memory.access_count == 2  # ... with the two recalls since
        assert cached.memory.last_accessed == recalled.last_accessed
        assert (await memory.get(cat.id)).access_count == 2


def test_the_recall_tally_starts_again_when_the_store_changes_or_it_is_full() -> None:
    tally = RecallTally(kept=2)
    result = SearchResult(Memory(id="m1", content="Has a cat", user_id="alice", access_count=4), 0.9, 0.1)
    tally.follow("token 1")
    then = tally.tallies([result])
    now = datetime.now(timezone.utc)
    assert tally.count([result.memory.id], now)
    [caught_up] = tally.caught_up([result], then)
    assert (caught_up.memory.access_count, caught_up.memory.last_accessed) == (5, now)
    tally.follow("token 2")  # the store changed: answers cached before are stale, and so is the tally
    assert tally.tallies([result]) == (0,)
    assert tally.count([result.memory.id, "b"], now) and tally.tallies([result]) == (1,)
    assert not tally.count(["c"], now)  # more ids than kept: the caller drops its cached answers ...
    assert tally.tallies([result]) == (0,)  # ... and the tally starts again
    tally.follow(None)  # a store without a change token caches no answers: nothing to tally
    assert tally.count([result.memory.id] * 3, now) and tally.tallies([result]) == (0,)


def test_updating_a_cached_memory_equals_replace_and_refuses_unknown_fields() -> None:
    memory = Memory(id="m1", content="Has a cat", user_id="alice", access_count=4)
    now = datetime.now(timezone.utc)
    assert updated(memory, access_count=5, last_accessed=now) == replace(memory, access_count=5, last_accessed=now)
    assert memory.access_count == 4  # a copy, the original unchanged
    with pytest.raises(TypeError, match="acces_count"):
        updated(memory, acces_count=5)


def test_a_memory_assembled_from_its_fields_equals_one_built_and_refuses_a_missing_or_unknown_field() -> None:
    built = Memory(id="m1", content="Has a cat", user_id="alice", metadata={"k": 1}, access_count=4)
    assert assembled(dict(built.__dict__)) == built
    fields = {name: value for name, value in built.__dict__.items() if name != "merged"}
    with pytest.raises(TypeError, match="merged"):
        assembled(fields)
    with pytest.raises(TypeError, match="acces_count"):
        assembled({**built.__dict__, "acces_count": 5})
