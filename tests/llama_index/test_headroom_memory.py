"""HeadroomMemory with real LlamaIndex chat engines and an agent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, CompletionResponse, LLMMetadata, MessageRole
from llama_index.core.chat_engine import CondensePlusContextChatEngine, ContextChatEngine, SimpleChatEngine
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import CustomLLM
from llama_index.core.memory import Memory
from llama_index.core.storage.chat_store.sql import SQLAlchemyChatStore
from llama_index.memory.headroom import HeadroomMemory, HeadroomMemoryBlock
from pydantic import PrivateAttr
from sqlalchemy.ext.asyncio import create_async_engine

from headroom_memory import SyncMemory
from headroom_memory.testing import ScriptedModel, openai_server, system_texts


def block(*items: dict[str, Any]) -> str:
    return f"<memory>{json.dumps(list(items))}</memory>"


class ScriptedLLM(CustomLLM):
    """A scripted LLM that records its prompts and streams word by word."""

    replies: list[str]
    _prompts: list[str] = PrivateAttr(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted")

    @property
    def prompts(self) -> list[str]:
        return self._prompts

    def _next(self, prompt: str) -> str:
        if "standalone question" in prompt.lower():  # CondensePlusContext's rewrite step
            return "the question"
        self._prompts.append(prompt)
        return self.replies[min(len(self._prompts) - 1, len(self.replies) - 1)]

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._next(prompt))

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Iterator[CompletionResponse]:
        text, sent = self._next(prompt), ""
        for i in range(0, len(text), 3):
            sent += text[i : i + 3]
            yield CompletionResponse(text=sent, delta=text[i : i + 3])


def memory_for(sync_memory: SyncMemory, user: str, session: str) -> HeadroomMemory:
    return HeadroomMemory.from_defaults(user_id=user, session_id=session, memory=sync_memory)


PORTO = "Nice city!\n" + block({"content": "Lives in Porto", "category": "fact", "importance": 0.8})


def test_simple_chat_engine_remembers_across_sessions(sync_memory: SyncMemory) -> None:
    llm = ScriptedLLM(replies=[PORTO, "You live in Porto."])
    first = SimpleChatEngine.from_defaults(llm=llm, memory=memory_for(sync_memory, "alice", "s1"))
    assert str(first.chat("I live in Porto")) == "Nice city!"
    history = first.chat_history
    assert [m.content for m in history] == ["I live in Porto", "Nice city!"]
    second = SimpleChatEngine.from_defaults(llm=llm, memory=memory_for(sync_memory, "alice", "s2"))
    assert str(second.chat("Where do I live?")) == "You live in Porto."
    assert "Lives in Porto" in llm.prompts[-1] and "<memories>" in llm.prompts[-1]


def test_two_users_never_see_each_other(sync_memory: SyncMemory) -> None:
    llm = ScriptedLLM(replies=[PORTO, "I don't know."])
    SimpleChatEngine.from_defaults(llm=llm, memory=memory_for(sync_memory, "alice", "s1")).chat("I live in Porto")
    bob = memory_for(sync_memory, "bob", "s1")
    SimpleChatEngine.from_defaults(llm=llm, memory=bob).chat("Where do I live?")
    assert "Porto" not in llm.prompts[-1]
    assert bob.get_all()[0].content == "Where do I live?"


def test_stream_chat_with_the_wrapped_llm_never_shows_the_block(sync_memory: SyncMemory) -> None:
    memory = memory_for(sync_memory, "carol", "s1")
    engine = SimpleChatEngine.from_defaults(llm=memory.wrap_llm(ScriptedLLM(replies=[PORTO])), memory=memory)
    response = engine.stream_chat("I live in Porto")
    tokens = list(response.response_gen)
    assert "".join(tokens) == "Nice city!"
    assert not any("<" in t or "memory" in t for t in tokens)
    thread = response.write_response_to_history_thread
    if thread is not None:
        thread.join(timeout=10)
    deadline = time.monotonic() + 10
    while len(memory.get_all()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.content for m in sync_memory.visible("carol")] == ["Lives in Porto"]
    assert memory.get_all()[-1].content == "Nice city!"


async def test_async_chat_and_stream(sync_memory: SyncMemory) -> None:
    memory = memory_for(sync_memory, "dana", "s1")
    llm = memory.wrap_llm(ScriptedLLM(replies=[PORTO, "Streamed. " + block({"content": "Likes trams"})]))
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
    assert str(await engine.achat("I live in Porto")) == "Nice city!"
    response = await engine.astream_chat("I like trams")
    tokens = [t async for t in response.async_response_gen()]
    assert "".join(tokens) == "Streamed."
    assert sorted(m.content for m in sync_memory.visible("dana")) == ["Likes trams", "Lives in Porto"]


def test_reset_and_set_touch_only_this_sessions_buffer(sync_memory: SyncMemory) -> None:
    memory = memory_for(sync_memory, "erin", "s1")
    other = memory_for(sync_memory, "erin", "s2")
    SimpleChatEngine.from_defaults(llm=ScriptedLLM(replies=[PORTO]), memory=memory).chat("I live in Porto")
    other.put(ChatMessage(role=MessageRole.USER, content="other session"))
    memory.reset()
    assert memory.get_all() == [] and [m.content for m in other.get_all()] == ["other session"]
    assert [m.content for m in sync_memory.visible("erin")] == ["Lives in Porto"]
    memory.set([ChatMessage(role=MessageRole.USER, content="a"), ChatMessage(role=MessageRole.ASSISTANT, content="b")])
    assert [m.content for m in memory.get_all()] == ["a", "b"]
    messages = memory.get("where?")
    assert messages[0].role == MessageRole.SYSTEM and "Lives in Porto" in str(messages[0].content)


@pytest.mark.parametrize("engine_class", [ContextChatEngine, CondensePlusContextChatEngine])
def test_context_engines_use_the_memory(sync_memory: SyncMemory, engine_class: Any) -> None:
    index = VectorStoreIndex.from_documents([Document(text="Porto is in Portugal.")],
                                            embed_model=MockEmbedding(embed_dim=8))
    llm = ScriptedLLM(replies=[PORTO, "Porto, Portugal."])
    memory = memory_for(sync_memory, "fay", "s1")
    engine = engine_class.from_defaults(retriever=index.as_retriever(), llm=memory.wrap_llm(llm), memory=memory)
    assert str(engine.chat("I live in Porto")) == "Nice city!"
    assert str(engine.chat("Where do I live?")) == "Porto, Portugal."
    assert "Lives in Porto" in llm.prompts[-1]


async def test_function_agent_with_openai_llm_against_loopback(sync_memory: SyncMemory) -> None:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.llms.openai import OpenAI

    scripted = ScriptedModel([PORTO, "You live in Porto."])
    with openai_server(scripted) as (url, recorded):
        llm = OpenAI(model="gpt-4o-mini", api_key="sk-test", api_base=url)

        def echo(text: str) -> str:
            """Echo a text."""
            return text

        agent = FunctionAgent(tools=[echo], llm=llm)
        first = await agent.run("I live in Porto", memory=memory_for(sync_memory, "gus", "t1"))
        assert str(first) == "Nice city!"
        second = await agent.run("Where do I live?", memory=memory_for(sync_memory, "gus", "t2"))
        assert str(second) == "You live in Porto."
        assert "Lives in Porto" in "\n".join(system_texts(recorded))


async def test_memory_block_for_the_new_memory_class(sync_memory: SyncMemory) -> None:
    sync_memory.add("Prefers window seats", user_id="hal", category="preference")
    sync_memory.add("Bob's secret", user_id="bob")
    block_ = HeadroomMemoryBlock(memory=sync_memory, user_id="hal", min_similarity=-1.0)
    # LlamaIndex keeps the chat in SQLite through SQLAlchemy; the engine is ours to close.
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    chat_store = SQLAlchemyChatStore(table_name="chat", async_engine=engine)
    memory = Memory.from_defaults(session_id="s1", memory_blocks=[block_], chat_store=chat_store)
    try:
        await memory.aput(ChatMessage(role=MessageRole.USER, content="Book me a flight seat"))
        messages = await memory.aget()
    finally:
        await engine.dispose()
    rendered = "\n".join(str(m.content) for m in messages)
    assert "Prefers window seats" in rendered and "Bob's secret" not in rendered
