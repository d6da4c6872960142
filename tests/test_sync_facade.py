"""SyncMemory and the identity-bound views: one owned loop, usable inside a running loop."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from pathlib import Path

import pytest

from headroom_memory import (
    HeadroomMemoryError,
    Identity,
    MemoryClosedError,
    MemoryConfig,
    MemoryNotFoundError,
    MemoryView,
    SyncMemory,
    SyncMemoryView,
)
from headroom_memory.adapters import LocalEmbedder


def test_sync_calls_mirror_the_async_api(sync_memory: SyncMemory) -> None:
    mem = sync_memory.add("Prefers Python", user_id="alice", category="preference")
    new = sync_memory.supersede(mem.id, "Prefers Rust")
    assert [m.content for m in sync_memory.get_history(new.id)] == ["Prefers Python", "Prefers Rust"]
    assert sync_memory.search("favourite language", user_id="alice")[0].memory.id == new.id
    assert sync_memory.stats(user_id="alice")["total"] == 1
    assert SyncMemory.add.__doc__ and "Store one memory" in SyncMemory.add.__doc__


def test_sync_facade_works_while_a_loop_runs_in_the_calling_thread(sync_memory: SyncMemory) -> None:
    async def notebook_cell() -> list[str]:
        sync_memory.add("Lives in Oslo", user_id="alice")
        return [r.memory.content for r in sync_memory.search("city", user_id="alice")]

    assert asyncio.run(notebook_cell()) == ["Lives in Oslo"]


def test_sync_facade_is_safe_from_many_threads(sync_memory: SyncMemory) -> None:
    def worker(n: int) -> None:
        for i in range(5):
            sync_memory.add(f"thread {n} fact {i}", user_id=f"u{n}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sync_memory.stats()["total"] == 20


def test_calling_the_sync_api_from_its_own_loop_is_a_clear_error(sync_memory: SyncMemory) -> None:
    async def inside() -> None:
        sync_memory.add("x", user_id="alice")

    with pytest.raises(HeadroomMemoryError, match="own event loop"):
        sync_memory.runner.run(inside())


def test_close_stops_the_loop_and_later_calls_raise(tmp_path: Path, embedder: LocalEmbedder) -> None:
    memory = SyncMemory(MemoryConfig(db_path=tmp_path / "c.db"), embedder=embedder)
    before = threading.active_count()
    memory.close()
    memory.close()
    assert threading.active_count() < before
    with pytest.raises(MemoryClosedError):
        memory.add("x", user_id="alice")


def test_an_unclosed_facade_warns(tmp_path: Path, embedder: LocalEmbedder) -> None:
    memory = SyncMemory(MemoryConfig(db_path=tmp_path / "w.db"), embedder=embedder)
    runner = memory.runner
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del memory
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    runner.close()


def test_a_bound_view_reads_and_writes_only_its_identity(sync_memory: SyncMemory) -> None:
    engine, runner = sync_memory.engine, sync_memory.runner
    alice = SyncMemoryView(MemoryView(engine, Identity("alice", session_id="s1")), runner)
    bob = SyncMemoryView(MemoryView(engine, Identity("bob")), runner)
    secret = bob.add("Bob's PIN is 9876", category="fact", importance=0.9)
    mine = alice.add("Alice prefers dark mode", category="preference")
    session_only = alice.add("Debugging the login page", category="context", scope="session")
    assert {m.id for m in alice.get_all()} == {mine.id, session_only.id}
    assert [m.id for m in bob.search("PIN")] == [secret.id]
    assert all(m.user_id == "alice" for m in alice.search("PIN code", top_k=10))
    for call in (lambda: alice.get(secret.id), lambda: alice.history(secret.id),
                 lambda: alice.supersede(secret.id, "x"), lambda: alice.delete(secret.id)):
        with pytest.raises(MemoryNotFoundError):
            call()
    assert alice.clear() == 1
    assert [m.id for m in alice.get_all()] == [mine.id]
    assert bob.stats()["total"] == 1
