"""add_many: batched, validated up front, keeps given timestamps."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from headroom_memory import HierarchicalMemory, InvalidInputError, MemoryFilter, NewMemory


async def test_add_many_keeps_timestamps_and_order(memory: HierarchicalMemory) -> None:
    when = datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc)
    items = [
        NewMemory("Caroline: I went to a LGBTQ support group yesterday", session_id="session_1",
                  created_at=when, metadata={"dia_id": "D1:3"}),
        {"content": "Melanie: That's great!", "session_id": "session_1", "created_at": when,
         "metadata": {"dia_id": "D1:4"}},
        "A plain string item",
    ]
    stored = await memory.add_many(items, user_id="conv-26", batch_size=2)
    assert [m.content for m in stored][:2] == [items[0].content, "Melanie: That's great!"]  # type: ignore[union-attr]
    assert stored[0].created_at == when and stored[0].valid_from == when
    assert stored[2].user_id == "conv-26" and stored[2].scope.value == "user"
    listed = await memory.query(MemoryFilter(user_id="conv-26"))
    assert [m.metadata.get("dia_id") for m in listed] == ["D1:3", "D1:4", None]
    hits = await memory.search("support group", "conv-26", session_id="session_1", top_k=1)
    assert hits[0].memory.metadata["dia_id"] == "D1:3"


async def test_add_many_is_validated_before_anything_is_written(memory: HierarchicalMemory) -> None:
    good = [NewMemory(f"fact {i}", user_id="alice") for i in range(5)]
    with pytest.raises(InvalidInputError, match="item 5: importance"):
        await memory.add_many([*good, NewMemory("bad", user_id="alice", importance=7)])
    with pytest.raises(InvalidInputError, match="item 1: user_id is required"):
        await memory.add_many([NewMemory("ok", user_id="a"), NewMemory("no user")])
    with pytest.raises(InvalidInputError, match="item 0: embedding must have 384"):
        await memory.add_many([NewMemory("x", user_id="a", embedding=[0.1, 0.2])])
    with pytest.raises(InvalidInputError, match="item 0"):
        await memory.add_many([{"content": "x", "colour": "red"}], user_id="a")
    assert await memory.query(MemoryFilter(include_superseded=True)) == []


async def test_add_many_uses_precomputed_embeddings(memory: HierarchicalMemory) -> None:
    vector = np.zeros(384, dtype=np.float32)
    vector[0] = 3.0
    stored = await memory.add_many([NewMemory("anything", user_id="a", embedding=vector)])
    kept = await memory.embeddings([stored[0].id])
    assert kept[stored[0].id] == pytest.approx(vector / 3.0)


async def test_add_many_shows_a_progress_bar_when_asked(
    memory: HierarchicalMemory, capsys: pytest.CaptureFixture[str]
) -> None:
    await memory.add_many([f"note {i}" for i in range(10)], user_id="a", batch_size=4, progress=True)
    assert "10/10" in capsys.readouterr().err
