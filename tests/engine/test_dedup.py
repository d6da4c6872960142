"""Near-duplicates are merged and reinforced; near-misses that differ in a way
that matters are kept. Measured on tests/data/paraphrases.json with the real model."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from headroom_memory import HierarchicalMemory, MemoryFilter, NewMemory
from headroom_memory.dedup import is_near_duplicate, signature

PAIRS = json.loads((Path(__file__).resolve().parents[1] / "data" / "paraphrases.json").read_text())


async def test_merge_decisions_on_the_paraphrase_list(memory: HierarchicalMemory) -> None:
    outcomes = {}
    for kind in ("merge", "keep"):
        merged = 0
        for i, (first, second) in enumerate(PAIRS[kind]):
            user = f"{kind}-{i}"
            await memory.add(first, user)
            merged += (await memory.add(second, user)).merged
        outcomes[kind] = merged
    recall = outcomes["merge"] / len(PAIRS["merge"])
    precision = outcomes["merge"] / (outcomes["merge"] + outcomes["keep"])
    print(f"merge recall {recall:.3f}, precision {precision:.3f} on {len(PAIRS['merge'])}+{len(PAIRS['keep'])} pairs")
    assert len(PAIRS["merge"]) >= 40 and len(PAIRS["keep"]) >= 40
    assert recall >= 0.9 and precision >= 0.95


def test_material_differences_block_a_merge_whatever_the_similarity() -> None:
    for old, new in [("Lives in Paris", "Lives in Berlin"), ("Likes jazz", "Doesn't like jazz"),
                     ("Has 2 cats", "Has 3 cats"), ("Has one brother", "Has two brothers")]:
        assert signature(old) != signature(new)
        assert not is_near_duplicate(new, old, similarity=0.99, threshold=0.9)
    assert is_near_duplicate("works at google.", "Works at  Google", similarity=0.0, threshold=0.9)


async def test_a_restated_fact_reinforces_the_existing_memory(memory: HierarchicalMemory) -> None:
    first = await memory.add("Prefers Python for backend work", "alice", category="preference", importance=0.6)
    again = await memory.add("Prefers Python for backend development", "alice", category="preference",
                             importance=0.5)
    assert again.merged and again.id == first.id
    stored = await memory.get(first.id)
    assert stored.access_count == 1 and stored.importance > first.importance and stored.last_accessed
    assert [m.id for m in await memory.query(MemoryFilter(user_id="alice"))] == [first.id]
    assert (await memory.stats(user_id="alice"))["merged"] == 1


async def test_other_scopes_categories_and_users_are_not_merged(memory: HierarchicalMemory) -> None:
    await memory.add("Prefers Python", "alice", category="preference")
    assert not (await memory.add("Prefers Python", "alice", category="fact")).merged
    assert not (await memory.add("Prefers Python", "alice", session_id="s1", category="preference")).merged
    assert not (await memory.add("Prefers Python", "bob", category="preference")).merged
    assert not (await memory.add("Prefers Python", "alice", category="preference", dedup=False)).merged
    assert len(await memory.query(MemoryFilter(include_superseded=True))) == 5


async def test_a_bulk_import_keeps_one_row_per_recurring_fact(memory: HierarchicalMemory) -> None:
    await memory.add("Is allergic to peanuts", "carol")
    items = [NewMemory("Is allergic to peanuts and must avoid them"), NewMemory("Plays the violin"),
             NewMemory("Plays violin"), NewMemory("Is allergic to peanuts"), NewMemory("Has 2 cats"),
             NewMemory("Has 3 cats")]
    result = await memory.add_many(items, user_id="carol", batch_size=2)
    assert [m.merged for m in result] == [True, False, True, True, False, False]
    contents = sorted(m.content for m in await memory.query(MemoryFilter(user_id="carol")))
    assert contents == ["Has 2 cats", "Has 3 cats", "Is allergic to peanuts", "Plays the violin"]


async def test_an_import_matches_each_item_with_what_it_kept_before_in_and_across_batches(
    memory: HierarchicalMemory,
) -> None:
    first = await memory.add("Plays the violin", "gina")
    items = ["Prefers Python for backend work", "Has a dog", "Has 2 cats", "Lives in Paris", "Works as a nurse",
             "Plays violin", "Plays the guitar", "Prefers Python for backend development", "Plays guitar",
             "Plays violin."]
    result = await memory.add_many(items, user_id="gina", batch_size=5)
    assert [m.merged for m in result] == [False] * 5 + [True, False, True, True, True]
    # a stored memory; across batches (Python to the first batch's); within one (guitar to
    # the batch's own); and "Plays violin." to the stored memory, never to "Plays violin",
    # which was merged rather than kept (it sits between them in the batch)
    assert [m.id for m in result[5:]] == [first.id, result[6].id, result[0].id, result[6].id, first.id]
    assert (await memory.get(first.id)).access_count == 2
    assert len(await memory.query(MemoryFilter(user_id="gina"))) == 7


async def test_fresh_recalled_memories_outrank_old_unrecalled_ones(memory: HierarchicalMemory) -> None:
    old = await memory.add("Enjoys sailing", "dan", importance=0.3,
                           created_at=datetime.now(timezone.utc) - timedelta(days=365))
    fresh = await memory.add("Enjoys sailing", "dan", session_id="s1", importance=0.3)
    hits = await memory.search("sailing", "dan", session_id="s1", top_k=2)
    assert [h.memory.id for h in hits] == [fresh.id, old.id]
    assert hits[0].similarity == hits[1].similarity


async def test_merges_within_one_import_are_counted_and_reinforced(memory: HierarchicalMemory) -> None:
    result = await memory.add_many(["Plays the violin", "Plays violin", "Plays the violin."], user_id="eve")
    assert [m.merged for m in result] == [False, True, True]
    stored = await memory.get(result[0].id)
    assert stored.access_count == 2 and (await memory.stats(user_id="eve"))["merged"] == 2


async def test_a_stored_fact_restated_twice_in_one_import_counts_both(memory: HierarchicalMemory) -> None:
    first = await memory.add("Plays the violin", "frank")
    result = await memory.add_many(["Plays violin", "Has a dog", "Plays the violin."], user_id="frank")
    assert [(m.id == first.id, m.merged, m.access_count) for m in result] == [
        (True, True, 1), (False, False, 0), (True, True, 2)]
    assert (await memory.get(first.id)).access_count == 2
    assert (await memory.stats(user_id="frank"))["merged"] == 2
