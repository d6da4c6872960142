"""The headroom-memory engine in one minute, offline (`make demo`).

Scoped memories for two users, a fact that changes (supersession with its
history and what was true at an earlier instant), hybrid search, and the same
memories found again after closing and reopening the database.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from headroom_memory import HierarchicalMemory, MemoryCategory, MemoryConfig, MemoryFilter


def show(title: str) -> None:
    print(f"\n== {title}")


async def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="headroom-demo-"))
    config = MemoryConfig(db_path=folder / "memory.db")
    started = time.perf_counter()
    memory = await HierarchicalMemory.create(config)
    print(f"opened {config.db_path} with the local all-MiniLM-L6-v2 model "
          f"in {time.perf_counter() - started:.1f} s")

    show("Scoped memories (user -> session -> agent)")
    await memory.add("Prefers Python for backend work", user_id="alice",
                     category=MemoryCategory.PREFERENCE, importance=0.8)
    await memory.add("Is migrating the billing service to Kubernetes", user_id="alice",
                     session_id="monday", category=MemoryCategory.CONTEXT)
    await memory.add("Code reviews should point out missing type hints", user_id="alice",
                     session_id="monday", agent_id="reviewer", category=MemoryCategory.DECISION)
    await memory.add("Prefers Go for performance-critical code", user_id="bob",
                     category=MemoryCategory.PREFERENCE)
    for reader in [("alice", None, None), ("alice", "monday", None),
                   ("alice", "monday", "reviewer"), ("alice", "tuesday", None), ("bob", None, None)]:
        seen = await memory.visible(*reader)
        label = " / ".join(x for x in reader if x)
        print(f"{label:<26} sees {len(seen)}: {[m.content for m in seen]}")

    show("A fact changes: supersession keeps the history")
    job = await memory.add("Works at Google", user_id="alice", category=MemoryCategory.FACT)
    before_change = job.valid_from
    await asyncio.sleep(0.01)
    new_job = await memory.supersede(job.id, "Now works at Anthropic")
    for version in await memory.get_history(new_job.id):
        until = version.valid_until.isoformat(timespec="seconds") if version.valid_until else "now"
        print(f"  {version.content:<26} current={version.is_current!s:<5} valid until {until}")
    then = await memory.query(MemoryFilter(user_id="alice", as_of=before_change,
                                           categories=[MemoryCategory.FACT]))
    print(f"  as of {before_change.isoformat(timespec='seconds')}: {[m.content for m in then]}")

    show("Hybrid search (semantic + keyword), scoped to the reader")
    for query in ["Which language should I use for a new API?", "Kubernetes", "where does she work"]:
        results = await memory.search(query, user_id="alice", session_id="monday", top_k=2)
        print(f"  {query!r}")
        for r in results:
            print(f"    [{r.similarity:.2f} sim, {r.score:.4f} score] {r.memory.content}")

    stats = await memory.stats(user_id="alice")
    print(f"\nalice: {stats['total']} current, {stats['superseded']} superseded, "
          f"by category {({k: v for k, v in stats['categories'].items() if v})}")
    await memory.close()

    show("Reopen: everything is still there")
    async with await HierarchicalMemory.create(config) as reopened:
        hits = await reopened.search("Which company is she working for?", user_id="alice", top_k=1)
        print(f"  'Which company is she working for?' -> {hits[0].memory.content}")
        bobs = await reopened.search("Anthropic", user_id="bob")
        print(f"  bob searching 'Anthropic' gets only his own: {[r.memory.content for r in bobs]}")
    print(f"\nfiles: {sorted(p.name for p in folder.iterdir())}")


if __name__ == "__main__":
    asyncio.run(main())
