"""HeadroomStore: every LangGraph BaseStore method, sync and async, on a real SQLite
file and the real model; namespaces as scopes; inside a create_agent agent."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.tools import tool
from langchain_headroom import HeadroomStore
from langchain_openai import ChatOpenAI
from langgraph.store.base import GetOp, InvalidNamespaceError, ListNamespacesOp, PutOp, SearchOp
from typing_extensions import TypedDict

from headroom_memory import InvalidInputError, MemoryFilter, SyncMemory
from headroom_memory.testing import ScriptedModel, openai_server, system_texts
from headroom_memory.timeutil import utc_now


@pytest.fixture
def store(sync_memory: SyncMemory) -> Iterator[HeadroomStore]:
    yield HeadroomStore(sync_memory)


def test_put_get_and_a_new_value_supersedes_with_history(store: HeadroomStore, sync_memory: SyncMemory) -> None:
    store.put(("alice",), "diet", {"content": "Alice is vegetarian", "category": "fact", "importance": 0.8})
    first = store.get(("alice",), "diet")
    assert first is not None and first.value["content"] == "Alice is vegetarian"
    assert (first.key, first.namespace) == ("diet", ("alice",))
    store.put(("alice",), "diet", {"content": "Alice is vegan"})
    second = store.get(("alice",), "diet")
    assert second is not None and second.value == {"content": "Alice is vegan"}
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    [current] = sync_memory.query(MemoryFilter(user_id="alice"))
    history = sync_memory.get_history(current.id, user_id="alice")
    assert [m.content for m in history] == ["Alice is vegetarian", "Alice is vegan"]
    assert current.category.value == "fact" and current.importance == 0.8  # kept from the first version
    assert store.get(("alice",), "missing") is None
    assert store.get(("bob",), "diet") is None
    assert store.get(("alice", "s1"), "diet") is None  # namespaces are exact


def test_namespaces_map_onto_scopes_and_users_stay_apart(store: HeadroomStore, sync_memory: SyncMemory) -> None:
    store.put(("alice",), "k", {"text": "Alice lives in Porto"})
    store.put(("alice", "s1"), "k", {"text": "Alice is packing for Lisbon"})
    store.put(("alice", "s1", "planner"), "k", {"text": "Planner booked the Lisbon train"})
    store.put(("bob",), "k", {"text": "Bob lives in Lisbon"})
    levels = {(m.scope.value, m.session_id, m.agent_id) for m in sync_memory.query(MemoryFilter(user_id="alice"))}
    assert levels == {("user", None, None), ("session", "s1", None), ("agent", "s1", "planner")}
    # an item at the user's level is what the engine injects into any session of alice
    seen = sync_memory.search("where does she live", "alice", "another-session", min_similarity=-1)
    assert [r.memory.content for r in seen] == ["Alice lives in Porto"]
    found = store.search(("alice",), query="Lisbon", limit=10)
    assert {i.value["text"] for i in found} == {"Alice lives in Porto", "Alice is packing for Lisbon",
                                                 "Planner booked the Lisbon train"}
    assert all(i.namespace[0] == "alice" and i.score is not None for i in found)
    assert [i.namespace for i in store.search(("alice", "s1", "planner"), query="Lisbon")] == [
        ("alice", "s1", "planner")]
    assert store.list_namespaces() == [("alice",), ("alice", "s1"), ("alice", "s1", "planner"), ("bob",)]
    assert store.list_namespaces(prefix=("alice",), max_depth=2) == [("alice",), ("alice", "s1")]
    assert store.list_namespaces(suffix=("planner",)) == [("alice", "s1", "planner")]
    assert store.list_namespaces(prefix=("*", "s1")) == [("alice", "s1"), ("alice", "s1", "planner")]
    assert store.list_namespaces(limit=1, offset=3) == [("bob",)]


def test_delete_removes_every_version_in_that_namespace_only(store: HeadroomStore,
                                                              sync_memory: SyncMemory) -> None:
    store.put(("alice",), "pet", {"content": "Has a cat"})
    store.put(("alice",), "pet", {"content": "Has two cats"})
    store.put(("alice", "s1"), "pet", {"content": "Has a cat"})
    store.put(("bob",), "pet", {"content": "Has a cat"})
    store.delete(("alice",), "pet")
    assert store.get(("alice",), "pet") is None
    assert sync_memory.query(MemoryFilter(user_id="alice", scopes=["user"], include_superseded=True)) == []
    assert store.get(("alice", "s1"), "pet") is not None and store.get(("bob",), "pet") is not None
    store.delete(("alice",), "pet")  # deleting what is not there is a no-op, as in LangGraph


def test_search_filters_paging_and_listing_without_query(store: HeadroomStore) -> None:
    for i in range(6):
        store.put(("alice", "docs"), f"d{i}", {"content": f"Report number {i} about budgets", "rank": i,
                                               "status": "draft" if i % 2 else "final"})
    newest_first = store.search(("alice", "docs"))
    assert [i.key for i in newest_first] == ["d5", "d4", "d3", "d2", "d1", "d0"]
    assert [i.key for i in store.search(("alice", "docs"), limit=2, offset=1)] == ["d4", "d3"]
    drafts = store.search(("alice", "docs"), query="budget report", filter={"status": "draft"}, limit=10)
    assert sorted(i.key for i in drafts) == ["d1", "d3", "d5"]
    high = store.search(("alice", "docs"), filter={"rank": {"$gte": 4}, "status": {"$ne": "final"}})
    assert [i.key for i in high] == ["d5"]
    with pytest.raises(InvalidInputError, match="operator"):
        store.search(("alice", "docs"), filter={"rank": {"$near": 1}})


def test_index_fields_choose_the_text_that_is_searched(sync_memory: SyncMemory) -> None:
    store = HeadroomStore(sync_memory, index_fields=["profile.summary"])
    store.put(("alice",), "p", {"profile": {"summary": "Enjoys sailing"}, "id": 7})
    store.put(("alice",), "q", {"note": "Enjoys chess", "tags": ["x"]}, index=["note"])
    store.put(("alice",), "r", {"misc": 1}, index=False)
    texts = sorted(m.content for m in sync_memory.query(MemoryFilter(user_id="alice")))
    assert texts == ["Enjoys chess", "Enjoys sailing", '{"misc": 1}']
    assert store.search(("alice",), query="boats and sailing", limit=1)[0].key == "p"


def test_ttl_expires_items(store: HeadroomStore, sync_memory: SyncMemory) -> None:
    store.put(("alice",), "short", {"content": "Parked on level 3"}, ttl=1)
    [memory] = sync_memory.query(MemoryFilter(user_id="alice"))
    assert memory.valid_until is not None
    assert abs((memory.valid_until - memory.valid_from) - timedelta(minutes=1)) < timedelta(seconds=1)
    assert memory.valid_until > utc_now()


def test_memories_written_elsewhere_are_items_keyed_by_id(store: HeadroomStore, sync_memory: SyncMemory) -> None:
    extracted = sync_memory.add("Prefers window seats", "alice", category="preference")
    item = store.get(("alice",), extracted.id)
    assert item is not None and item.value["content"] == "Prefers window seats"
    assert store.get(("bob",), extracted.id) is None  # another user's id is not an item of bob
    store.delete(("alice",), extracted.id)
    assert sync_memory.query(MemoryFilter(user_id="alice")) == []


def test_bad_input_is_refused_with_clear_errors_and_nothing_changes(store: HeadroomStore,
                                                                    sync_memory: SyncMemory) -> None:
    store.put(("alice",), "k", {"content": "kept"})
    with pytest.raises(InvalidNamespaceError, match="1 to 4 labels"):
        store.put(("a", "b", "c", "d", "e"), "k", {"content": "x"})
    with pytest.raises(InvalidNamespaceError, match="user id"):
        store.search((), query="anything")
    with pytest.raises(InvalidNamespaceError):
        store.put(("al.ice",), "k", {"content": "x"})
    with pytest.raises(InvalidInputError, match="value must be a dict"):
        store.batch([PutOp(("alice",), "k", ["not", "a", "dict"])])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="index must be False, None or a list"):
        store.put(("alice",), "k", {"content": "replaced?"}, index="content")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="index_fields"):
        HeadroomStore(sync_memory, index_fields="content")
    assert [m.content for m in sync_memory.query(MemoryFilter(user_id="alice"))] == ["kept"]


def test_batch_runs_ops_in_order(store: HeadroomStore) -> None:
    results = store.batch([
        PutOp(("alice",), "a", {"content": "Alpha"}),
        GetOp(("alice",), "a"),
        SearchOp(("alice",), query="alpha", limit=1),
        ListNamespacesOp(),
        PutOp(("alice",), "a", None),
        GetOp(("alice",), "a"),
    ])
    assert results[0] is None and results[1] is not None and results[1].value == {"content": "Alpha"}
    assert [i.key for i in results[2]] == ["a"]  # type: ignore[union-attr]
    assert results[3] == [("alice",)] and results[4] is None and results[5] is None


async def test_every_async_method(store: HeadroomStore) -> None:
    await store.aput(("carol", "s1"), "k1", {"content": "Carol is training for a marathon"})
    await store.aput(("carol",), "k2", {"content": "Carol's knee hurts after long runs"})
    item = await store.aget(("carol", "s1"), "k1")
    assert item is not None and item.value["content"].startswith("Carol is training")
    found = await store.asearch(("carol",), query="running injury", limit=1)
    assert [i.key for i in found] == ["k2"]
    assert await store.alist_namespaces(prefix=("carol",)) == [("carol",), ("carol", "s1")]
    await store.adelete(("carol", "s1"), "k1")
    assert await store.aget(("carol", "s1"), "k1") is None
    results = await store.abatch([GetOp(("carol",), "k2"), ListNamespacesOp()])
    assert results[0] is not None and results[1] == [("carol",)]


class UserContext(TypedDict):
    user_id: str


@tool
def remember_fact(fact: str, runtime: ToolRuntime[UserContext]) -> str:
    """Save a fact about the user for later conversations."""
    assert runtime.store is not None
    user = runtime.context["user_id"]
    runtime.store.put((user,), f"fact-{len(fact)}", {"content": fact})
    return "saved"


def test_create_agent_with_the_store_shares_facts_across_threads(
    sync_memory: SyncMemory, chat_openai: Callable[[str], ChatOpenAI],
) -> None:
    from langchain_headroom import HeadroomMemoryMiddleware

    call = {"role": "assistant", "content": None, "tool_calls": [{
        "id": "c1", "type": "function",
        "function": {"name": "remember_fact", "arguments": json.dumps({"fact": "Alice's birthday is May 3"})}}]}
    scripted = ScriptedModel(replies=[call, "Saved it.", "Your birthday is May 3.", "I don't know."])
    with openai_server(scripted) as (url, recorded):
        agent = create_agent(chat_openai(url), tools=[remember_fact], store=HeadroomStore(sync_memory),
                             context_schema=UserContext,
                             middleware=[HeadroomMemoryMiddleware(sync_memory, min_similarity=-1.0)])
        agent.invoke({"messages": [{"role": "user", "content": "Remember my birthday is May 3"}]},
                     config={"configurable": {"thread_id": "t1"}}, context={"user_id": "alice"})
        answer = agent.invoke({"messages": [{"role": "user", "content": "When is my birthday?"}]},
                              config={"configurable": {"thread_id": "t2"}}, context={"user_id": "alice"})
        assert answer["messages"][-1].content == "Your birthday is May 3."
        assert "Alice's birthday is May 3" in "\n".join(system_texts(recorded))
        agent.invoke({"messages": [{"role": "user", "content": "When is my birthday?"}]},
                     config={"configurable": {"thread_id": "t3"}}, context={"user_id": "bob"})
        assert "May 3" not in "\n".join(system_texts(recorded))
