"""HeadroomRetriever: LangChain's standard retriever suite plus scope and metadata."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_headroom import HeadroomRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

from headroom_memory import MemoryConfig, SyncMemory
from headroom_memory.adapters import LocalEmbedder

FACTS = ["Prefers Python for backend work", "Uses PostgreSQL at work", "Likes hiking in the Alps",
         "Has a cat called Miso", "Reads science fiction", "Drinks green tea"]


@pytest.fixture(scope="module")
def filled_memory(tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder) -> Iterator[SyncMemory]:
    memory = SyncMemory(MemoryConfig(db_path=tmp_path_factory.mktemp("r") / "r.db"), embedder=embedder)
    memory.add_many(FACTS, user_id="alice")
    memory.add("Bob's private note", user_id="bob")
    memory.add("Alice's session-only note", user_id="alice", session_id="s1")
    yield memory
    memory.close()


class TestHeadroomRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _memory(self, filled_memory: SyncMemory) -> None:
        type(self).memory = filled_memory

    @property
    def retriever_constructor(self) -> type[HeadroomRetriever]:
        return HeadroomRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"memory": self.memory, "user_id": "alice", "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "programming language"


def test_documents_carry_memory_metadata(filled_memory: SyncMemory) -> None:
    docs = HeadroomRetriever(memory=filled_memory, user_id="alice", k=1).invoke("which database?")
    assert docs[0].page_content == "Uses PostgreSQL at work"
    meta = docs[0].metadata
    assert meta["category"] == "fact" and meta["scope"] == "user" and meta["valid_until"] is None
    assert meta["id"] == docs[0].id and meta["valid_from"]


def test_scope_comes_from_config(filled_memory: SyncMemory) -> None:
    retriever = HeadroomRetriever(memory=filled_memory, user_id="alice", k=10)
    plain = {d.page_content for d in retriever.invoke("note")}
    assert "Alice's session-only note" not in plain and "Bob's private note" not in plain
    in_session = {d.page_content for d in retriever.invoke("note", config={"configurable": {"session_id": "s1"}})}
    assert "Alice's session-only note" in in_session
    as_bob = [d.page_content for d in retriever.invoke("note", config={"configurable": {"user_id": "bob"}})]
    assert as_bob == ["Bob's private note"]


async def test_async_retrieval(filled_memory: SyncMemory) -> None:
    docs = await HeadroomRetriever(memory=filled_memory, user_id="alice", k=1).ainvoke("tea")
    assert docs[0].page_content == "Drinks green tea"
