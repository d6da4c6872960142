"""HeadroomMemoryMiddleware in real ``create_agent`` agents: ChatOpenAI against the
scripted OpenAI-compatible server on 127.0.0.1, tools, threads, streaming, async."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.tools import tool
from langchain_headroom import HeadroomMemoryMiddleware
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver

from headroom_memory import InvalidInputError, MemoryFilter, SyncMemory
from headroom_memory.testing import Recorded, ScriptedModel, openai_server, system_texts


@dataclass
class Context:
    user_id: str


def block(*items: dict[str, Any]) -> str:
    return f"<memory>{json.dumps(list(items))}</memory>"


def tool_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"call_{name}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}


@tool
def snack_shop(kind: str) -> str:
    """List the snacks of a kind the shop has."""
    return f"{kind}: peanut bar, apple chips, rice crackers"


@pytest.fixture
def server() -> Iterator[tuple[ScriptedModel, str, Recorded]]:
    model = ScriptedModel(chunk_size=5)
    with openai_server(model) as (url, recorded):
        yield model, url, recorded


def make_agent(model: ChatOpenAI, memory: SyncMemory, **kwargs: Any) -> Any:
    return create_agent(model, tools=[snack_shop], middleware=[HeadroomMemoryMiddleware(memory, min_similarity=-1.0)],
                        context_schema=Context, checkpointer=InMemorySaver(), name="shopper", **kwargs)


def ask(agent: Any, text: str, user: str, thread: str) -> list[BaseMessage]:
    result = agent.invoke({"messages": [{"role": "user", "content": text}]},
                          config={"configurable": {"thread_id": thread}}, context=Context(user))
    return list(result["messages"])


def all_text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


def test_a_fact_told_in_one_thread_is_used_in_another_and_never_for_another_user(
    server: tuple[ScriptedModel, str, Recorded], sync_memory: SyncMemory,
    chat_openai: Callable[[str], ChatOpenAI],
) -> None:
    scripted, url, recorded = server
    scripted.replies = [
        "Noted, no peanuts.\n" + block({"content": "Alice is allergic to peanuts", "category": "fact",
                                       "importance": 0.9}),
        "Rice crackers.", "Anything you like."]
    agent = make_agent(chat_openai(url), sync_memory)
    first = ask(agent, "I'm allergic to peanuts.", "alice", "t1")
    assert first[-1].content == "Noted, no peanuts."
    assert "<memory" not in all_text(first)
    stored = sync_memory.query(MemoryFilter(user_id="alice"))
    assert [m.content for m in stored] == ["Alice is allergic to peanuts"]
    assert stored[0].session_id is None and stored[0].metadata["source"] == "inline"

    assert ask(agent, "Which snack should I buy?", "alice", "t2")[-1].content == "Rice crackers."
    assert "Alice is allergic to peanuts" in "\n".join(system_texts(recorded))
    ask(agent, "Which snack should I buy?", "bob", "t3")
    assert "peanuts" not in "\n".join(system_texts(recorded))
    assert sync_memory.query(MemoryFilter(user_id="bob")) == []


def test_tool_calling_turns_keep_the_block_out_of_state_and_store_once(
    server: tuple[ScriptedModel, str, Recorded], sync_memory: SyncMemory,
    chat_openai: Callable[[str], ChatOpenAI],
) -> None:
    scripted, url, recorded = server
    scripted.replies = [tool_call("snack_shop", {"kind": "savory"}),
                        "Rice crackers are safe.\n" + block({"content": "Alice likes savory snacks",
                                                              "category": "preference"})]
    known = sync_memory.add("Alice is allergic to peanuts", "alice")
    agent = make_agent(chat_openai(url), sync_memory)
    messages = ask(agent, "Find me a savory snack", "alice", "t1")
    assert any(isinstance(m, ToolMessage) and "rice crackers" in str(m.content) for m in messages)
    assert isinstance(messages[-1], AIMessage) and messages[-1].content == "Rice crackers are safe."
    assert "<memory" not in all_text(messages)
    stored = [m.content for m in sync_memory.query(MemoryFilter(user_id="alice"))]
    assert stored == ["Alice is allergic to peanuts", "Alice likes savory snacks"]
    calls = [body for _, path, body in recorded.requests if path.endswith("/chat/completions")]
    assert len(calls) == 2 and all(call.get("tools") for call in calls)  # tools bound through our model
    assert all("Alice is allergic to peanuts" in "\n".join(system_texts(recorded, i)) for i in (0, 1))
    assert sync_memory.get(known.id).access_count == 1  # one recall for the turn, not one per model call


def test_streamed_tokens_never_show_the_block(
    server: tuple[ScriptedModel, str, Recorded], sync_memory: SyncMemory,
    chat_openai: Callable[[str], ChatOpenAI],
) -> None:
    scripted, url, _ = server
    scripted.replies = ["You told me you love hiking.\n" + block({"content": "Loves hiking"})]
    agent = make_agent(chat_openai(url), sync_memory)
    tokens: list[str] = []
    for chunk, _meta in agent.stream({"messages": [{"role": "user", "content": "I love hiking"}]},
                                     config={"configurable": {"thread_id": "t1"}}, context=Context("alice"),
                                     stream_mode="messages"):
        if isinstance(chunk, AIMessageChunk):
            tokens.append(str(chunk.content))
    assert len(tokens) > 3  # really streamed token by token
    assert "".join(tokens).strip() == "You told me you love hiking."
    state = agent.get_state({"configurable": {"thread_id": "t1"}}).values
    assert state["messages"][-1].content == "You told me you love hiking."
    assert [m.content for m in sync_memory.query(MemoryFilter(user_id="alice"))] == ["Loves hiking"]


async def test_async_invoke_and_stream(
    server: tuple[ScriptedModel, str, Recorded], sync_memory: SyncMemory,
    chat_openai: Callable[[str], ChatOpenAI],
) -> None:
    scripted, url, recorded = server
    scripted.replies = ["Got it.\n" + block({"content": "Works night shifts"}), "Sleep in the morning."]
    agent = make_agent(chat_openai(url), sync_memory)
    result = await agent.ainvoke({"messages": [{"role": "user", "content": "I work night shifts"}]},
                                 config={"configurable": {"thread_id": "a1"}}, context=Context("carol"))
    assert result["messages"][-1].content == "Got it."
    tokens = [str(chunk.content) async for chunk, _ in agent.astream(
        {"messages": [{"role": "user", "content": "When should I sleep?"}]},
        config={"configurable": {"thread_id": "a2"}}, context=Context("carol"), stream_mode="messages")
        if isinstance(chunk, AIMessageChunk)]
    assert "".join(tokens).strip() == "Sleep in the morning."
    assert "Works night shifts" in "\n".join(system_texts(recorded))


def test_identity_from_config_and_agent_name(
    server: tuple[ScriptedModel, str, Recorded], sync_memory: SyncMemory,
    chat_openai: Callable[[str], ChatOpenAI],
) -> None:
    scripted, url, _ = server
    scripted.replies = ["ok\n" + block({"content": "Prefers metric units", "scope": "agent"})]
    agent = create_agent(chat_openai(url), middleware=[HeadroomMemoryMiddleware(sync_memory)], name="planner")
    agent.invoke({"messages": [{"role": "user", "content": "use metric"}]},
                 config={"configurable": {"user_id": "dave", "session_id": "s9"}})
    [stored] = sync_memory.query(MemoryFilter(user_id="dave"))
    assert (stored.session_id, stored.agent_id, stored.scope.value) == ("s9", "planner", "agent")
    with pytest.raises(InvalidInputError, match="user_id"):
        agent.invoke({"messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(InvalidInputError, match="agent_id"):
        HeadroomMemoryMiddleware(sync_memory, agent_id="  ")


def test_no_deprecation_warnings_from_our_code_paths(
    server: tuple[ScriptedModel, str, Recorded], sync_memory: SyncMemory,
    chat_openai: Callable[[str], ChatOpenAI],
) -> None:
    scripted, url, _ = server
    scripted.replies = ["fine\n" + block({"content": "Has a dog"})]
    agent = make_agent(chat_openai(url), sync_memory)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", PendingDeprecationWarning)
        ask(agent, "I have a dog", "erin", "t1")
