"""Tenant isolation as a property (hypothesis stateful testing).

Random sequences of public operations for three users with random sessions and
agents, through every layer that takes an identity: the engine (sync facade),
with_memory's identity-bound ``.memory`` view, inline ``<memory>`` blocks (with
``supersedes`` naming handles and other users' raw ids), LangChain's retriever
and LangGraph store. Every operation is also tried with other users' memory ids.

After every step: nothing read through one identity belongs to another, and no
user's memories changed unless that user acted (and then only as asked).
``HEADROOM_RELIABILITY_SCALE`` (default 1) multiplies the number of runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from langchain_headroom import HeadroomRetriever, HeadroomStore

from headroom_memory import (
    HeadroomMemoryError,
    Identity,
    MemoryFilter,
    MemoryNotFoundError,
    SyncMemory,
)
from headroom_memory.adapters import LocalEmbedder
from headroom_memory.inline import InlineMemory
from headroom_memory.views import MemoryView, SyncMemoryView

SCALE = int(os.environ.get("HEADROOM_RELIABILITY_SCALE", "1"))
USERS = ["alice", "bob", "carol"]
SESSIONS = [None, "s1", "s2"]
AGENTS = [None, "a1"]
WORDS = ["tea", "coffee", "Berlin", "Lisbon", "cats", "dogs", "Python", "Go", "piano", "chess", "June", "May"]

users = st.sampled_from(USERS)
sessions = st.sampled_from(SESSIONS)
agents = st.sampled_from(AGENTS)
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(lambda w: "Likes " + " and ".join(w))


class IsolationMachine(RuleBasedStateMachine):
    """One SQLite file, three users; ``owners`` is what the store should hold."""

    embedder: LocalEmbedder
    folder: Path
    total_operations = 0

    def __init__(self) -> None:
        super().__init__()
        self.memory = SyncMemory(_config(self.folder), embedder=self.embedder)
        self.store = HeadroomStore(self.memory)
        self.owners: dict[str, str] = {}  # memory id -> user, every version ever stored and not deleted

    def teardown(self) -> None:
        self.memory.close()

    # -- helpers -------------------------------------------------------------------

    def _snapshot(self) -> dict[str, str]:
        return {m.id: m.user_id for m in self.memory.query(MemoryFilter(include_superseded=True))}

    def _act(self, actor: str, action: Any, *, deletes: bool = False) -> Any:
        """Run ``action``; afterwards no other user's memories changed, and the
        actor lost memories only when the action deletes."""
        before = self._snapshot()
        try:
            result = action()
        finally:
            after = self._snapshot()
            IsolationMachine.total_operations += 1
            for user in USERS:
                was = {i for i, u in before.items() if u == user}
                now = {i for i, u in after.items() if u == user}
                if user != actor:
                    assert was == now, f"{user}'s memories changed when {actor} acted"
                elif not deletes:
                    assert was <= now, f"{actor} lost memories in an operation that does not delete"
            assert all(after[i] == u for i, u in before.items() if i in after), "a memory changed owner"
            self.owners = after
        return result

    def _reads_only(self, actor: str, memories: Any) -> None:
        for memory in memories:
            assert memory.user_id == actor, f"{actor} read a memory of {memory.user_id}"

    def _foreign_or_own(self, data: st.DataObject) -> str | None:
        """Any stored id, by its position in creation order (ids themselves are random,
        so drawing a position keeps replays of the same choices consistent)."""
        if not self.owners:
            return None
        return list(self.owners)[data.draw(st.integers(0, 10**6)) % len(self.owners)]

    # -- writes --------------------------------------------------------------------------

    @rule(user=users, session=sessions, agent=agents, text=texts)
    def add_through_engine(self, user: str, session: str | None, agent: str | None, text: str) -> None:
        added = self._act(user, lambda: self.memory.add(text, user, session, agent))
        assert added.user_id == user

    @rule(user=users, session=sessions, text=texts)
    def add_through_identity_view(self, user: str, session: str | None, text: str) -> None:
        view = SyncMemoryView(MemoryView(self.memory.engine, Identity(user, session)), self.memory.runner)
        self._act(user, lambda: view.add(text))

    @rule(user=users, session=sessions, text=texts, data=st.data())
    def inline_block(self, user: str, session: str | None, text: str, data: st.DataObject) -> None:
        """A model reply's block for this identity; ``supersedes`` names a handle
        (only this user's injected memories have one) or another user's raw id."""
        inline = InlineMemory(self.memory.engine, Identity(user, session), min_similarity=-1.0)
        target = data.draw(st.sampled_from(["m1", "m2", self._foreign_or_own(data) or "m1"]))
        item = f'{{"content": "{text}", "supersedes": "{target}"}}'

        def run() -> None:
            prepared = self.memory.runner.run(inline.prepare(text))
            self._reads_only(user, prepared.injected)
            stored = self.memory.runner.run(inline.absorb([f"[{item}]"], prepared))
            self._reads_only(user, stored)

        self._act(user, run)

    @rule(user=users, text=texts, key=st.sampled_from(["k1", "k2"]))
    def store_put(self, user: str, text: str, key: str) -> None:
        self._act(user, lambda: self.store.put((user,), key, {"content": text}))

    @precondition(lambda self: bool(self.owners))
    @rule(user=users, text=texts, data=st.data())
    def supersede_any_id(self, user: str, text: str, data: st.DataObject) -> None:
        target = self._foreign_or_own(data)
        assert target is not None
        owner = self.owners[target]

        def run() -> None:
            try:
                new = self.memory.supersede(target, text, user_id=user)
            except MemoryNotFoundError:
                assert owner != user, "the owner could not supersede their own memory"
            except HeadroomMemoryError:
                pass  # e.g. MemoryConflictError: that version is no longer current
            else:
                assert owner == user and new.user_id == user

        self._act(user, run)

    @precondition(lambda self: bool(self.owners))
    @rule(user=users, data=st.data(), through=st.sampled_from(["engine", "view", "store"]))
    def delete_any_id(self, user: str, data: st.DataObject, through: str) -> None:
        target = self._foreign_or_own(data)
        assert target is not None
        owner = self.owners[target]

        def run() -> None:
            try:
                if through == "engine":
                    self.memory.delete(target, user_id=user)
                elif through == "view":
                    SyncMemoryView(MemoryView(self.memory.engine, Identity(user)), self.memory.runner).delete(target)
                else:
                    self.store.delete((user,), target)
                    return
            except MemoryNotFoundError:
                assert owner != user
            else:
                assert owner == user

        self._act(user, run, deletes=True)
        if owner != user:
            assert target in self.owners

    @rule(user=users, session=sessions)
    def clear_a_scope(self, user: str, session: str | None) -> None:
        self._act(user, lambda: self.memory.clear(user, session), deletes=True)

    # -- reads -----------------------------------------------------------------------------

    @precondition(lambda self: bool(self.owners))
    @rule(user=users, data=st.data())
    def read_any_id(self, user: str, data: st.DataObject) -> None:
        target = self._foreign_or_own(data)
        assert target is not None
        owner = self.owners[target]
        for read in (lambda: [self.memory.get(target, user_id=user)],
                     lambda: self.memory.get_history(target, user_id=user)):
            try:
                self._reads_only(user, read())
            except MemoryNotFoundError:
                assert owner != user
        item = self.store.get((user,), target)
        assert item is None or owner == user

    @rule(user=users, session=sessions, agent=agents, query=texts, mode=st.sampled_from(["hybrid", "text"]))
    def search_everywhere(self, user: str, session: str | None, agent: str | None, query: str, mode: str) -> None:
        self._reads_only(user, [r.memory for r in self.memory.search(query, user, session, agent, top_k=20,
                                                                      min_similarity=-1, mode=mode)])
        self._reads_only(user, [r.memory for r in self.memory.search(query, user, top_k=20, subtree=True)])
        self._reads_only(user, self.memory.visible(user, session, agent))
        docs = HeadroomRetriever(memory=self.memory, user_id=user, session_id=session, k=20).invoke(query)
        assert all(self.owners.get(d.metadata["id"]) == user for d in docs)
        assert all(i.namespace[0] == user for i in self.store.search((user,), query=query, limit=20))

    @invariant()
    def every_stored_memory_has_its_owner(self) -> None:
        for user in USERS:
            self._reads_only(user, self.memory.query(MemoryFilter(user_id=user, include_superseded=True)))


def _config(folder: Path) -> Any:
    import uuid

    from headroom_memory import MemoryConfig

    return MemoryConfig(db_path=folder / f"{uuid.uuid4().hex}.db")


def test_no_identity_ever_reads_or_changes_another(tmp_path: Path, embedder: LocalEmbedder,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    IsolationMachine.embedder, IsolationMachine.folder = embedder, tmp_path
    machine = settings(max_examples=12 * SCALE, stateful_step_count=25, deadline=None,
                       suppress_health_check=list(HealthCheck))
    IsolationMachine.TestCase.settings = machine
    IsolationMachine.TestCase().runTest()
    assert IsolationMachine.total_operations >= 50 * SCALE  # the machine really ran
    with capsys.disabled():
        print(f"\nisolation: {IsolationMachine.total_operations} checked write/delete operations")
