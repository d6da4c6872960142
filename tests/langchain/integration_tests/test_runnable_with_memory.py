"""RunnableWithMemory with real LangChain objects: fake chat models, prompts,
ChatOpenAI against the loopback server, callbacks and event streams."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_headroom import RunnableWithMemory
from langchain_openai import ChatOpenAI

from headroom_memory import InvalidInputError, SyncMemory
from headroom_memory.testing import ScriptedModel, openai_server, system_texts


def block(*items: dict[str, Any]) -> str:
    return f"<memory>{json.dumps(list(items))}</memory>"


def config(user: str, session: str | None = None) -> dict[str, Any]:
    return {"configurable": {"user_id": user, "session_id": session}}


class RecordingModel:
    """A chat 'model' as a RunnableLambda that records the messages it received."""

    def __init__(self, replies: list[str]) -> None:
        self.replies, self.received = replies, []  # type: ignore[var-annotated]

    def __call__(self, messages: list[BaseMessage]) -> AIMessage:
        self.received.append(messages)
        return AIMessage(content=self.replies[min(len(self.received) - 1, len(self.replies) - 1)])

    def system_text(self, call: int = -1) -> str:
        return "\n".join(str(m.content) for m in self.received[call] if isinstance(m, SystemMessage))


def test_a_fact_told_in_one_session_is_recalled_in_another(sync_memory: SyncMemory) -> None:
    model = RecordingModel(["Nice!\n" + block({"content": "Prefers Go for services", "category": "preference"}),
                            "Use Go."])
    chain = RunnableWithMemory(runnable=RunnableLambda(model), memory=sync_memory)
    first = chain.invoke("I like Go for services", config=config("alice", "s1"))
    assert first.content == "Nice!"
    assert chain.invoke("Which language for my API?", config=config("alice", "s2")).content == "Use Go."
    assert "Prefers Go for services" in model.system_text()


def test_users_and_sessions_never_see_each_other(sync_memory: SyncMemory) -> None:
    model = RecordingModel(["ok\n" + block({"content": "Alice's session note", "scope": "session"}),
                            "ok", "ok", "ok"])
    chain = RunnableWithMemory(runnable=RunnableLambda(model), memory=sync_memory, min_similarity=-1.0)
    chain.invoke("note this", config=config("alice", "s1"))
    chain.invoke("anything noted?", config=config("alice", "s1"))
    assert "Alice's session note" in model.system_text()
    chain.invoke("anything noted?", config=config("alice", "s2"))
    assert "Alice's session note" not in model.system_text()
    chain.invoke("anything noted?", config=config("bob", "s1"))
    assert "Alice's session note" not in model.system_text()


def test_config_specs_declare_the_identity_keys(sync_memory: SyncMemory) -> None:
    chain = RunnableWithMemory(runnable=GenericFakeChatModel(messages=iter([])), memory=sync_memory)
    assert {"user_id", "session_id", "agent_id"} <= {spec.id for spec in chain.config_specs}


def test_a_missing_user_id_names_the_key(sync_memory: SyncMemory) -> None:
    chain = RunnableWithMemory(runnable=GenericFakeChatModel(messages=iter([AIMessage("x")])), memory=sync_memory)
    with pytest.raises(InvalidInputError, match=r"config\['configurable'\]\['user_id'\]"):
        chain.invoke("hi")


def test_works_after_a_prompt_template_and_before_a_parser(sync_memory: SyncMemory) -> None:
    model = RecordingModel(["Answer.\n" + block({"content": "Lives in Porto"})])
    prompt = ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "{question}")])
    chain = prompt | RunnableWithMemory(runnable=RunnableLambda(model), memory=sync_memory) | StrOutputParser()
    assert chain.invoke({"question": "I live in Porto"}, config=config("carol")) == "Answer."
    received = model.received[0]
    assert received[0].content == "You are terse." and "<memories>" in str(received[1].content)


@pytest.mark.parametrize("answer", [
    "Streaming works fine here. " + block({"content": "Enjoys long streams"}) + " Bye.",
])
def test_stream_and_astream_never_show_the_block(sync_memory: SyncMemory, answer: str) -> None:
    def make() -> RunnableWithMemory:
        return RunnableWithMemory(runnable=GenericFakeChatModel(messages=iter([AIMessage(content=answer)])),
                                  memory=sync_memory)

    chunks = list(make().stream("hi", config=config("dana")))
    text = "".join(c.content for c in chunks)
    assert text == "Streaming works fine here. Bye."
    assert not any("memory" in c.content or "<" in c.content for c in chunks)
    assert [m.content for m in sync_memory.visible("dana")] == ["Enjoys long streams"]


async def test_async_invoke_stream_batch_and_events(sync_memory: SyncMemory) -> None:
    answer = "Async answer here. " + block({"content": "Likes async code"})
    fake = GenericFakeChatModel(messages=iter([AIMessage(content=answer)] * 10))
    chain = RunnableWithMemory(runnable=fake, memory=sync_memory)
    assert (await chain.ainvoke("hi", config=config("erin"))).content == "Async answer here."
    pieces = [c.content async for c in chain.astream("hi", config=config("erin"))]
    assert "".join(pieces) == "Async answer here."
    outputs = await chain.abatch(["a", "b"], config=config("erin"))
    assert [o.content for o in outputs] == ["Async answer here."] * 2
    assert [o.content for o in chain.batch(["c"], config=config("erin"))] == ["Async answer here."]
    events = [e async for e in chain.astream_events("hi", config=config("erin"), version="v2")]
    streamed = [e for e in events if e["event"] == "on_chat_model_stream"]
    assert streamed, "the inner model's token events are present"
    for event in events:
        data = event.get("data", {})
        rendered = json.dumps({k: v for k, v in data.items() if k in ("chunk", "output")}, default=str)
        assert "<memory>" not in rendered and "Likes async code" not in rendered.replace("\\", "")
    # six calls (ainvoke, astream, abatch x2, batch, astream_events) restate one fact: one row, reinforced
    stored = sync_memory.visible("erin")
    assert [m.content for m in stored] == ["Likes async code"]
    assert sync_memory.stats(user_id="erin")["merged"] == 5


def test_callbacks_see_the_wrapper_and_the_model(sync_memory: SyncMemory) -> None:
    class Names(BaseCallbackHandler):
        def __init__(self) -> None:
            self.chains: list[str] = []
            self.models = 0

        def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
            self.chains.append(kwargs.get("name") or "")

        def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            self.models += 1

    handler = Names()
    chain = RunnableWithMemory(runnable=GenericFakeChatModel(messages=iter([AIMessage("hi")])), memory=sync_memory)
    chain.invoke("hello", config={**config("fay"), "callbacks": [handler]})
    assert "RunnableWithMemory" in handler.chains and handler.models == 1


def test_chat_openai_against_the_loopback_server(sync_memory: SyncMemory,
                                                 chat_openai: Callable[[str], ChatOpenAI]) -> None:
    scripted = ScriptedModel(["Sure.\n" + block({"content": "Drinks oat milk", "category": "preference"}),
                              "Oat milk, as usual. " + block({"content": "Wants it hot"})], chunk_size=3)
    with openai_server(scripted) as (url, recorded):
        chain = RunnableWithMemory(runnable=chat_openai(url), memory=sync_memory)
        assert chain.invoke("I drink oat milk", config=config("gus")).content == "Sure."
        pieces = [c.content for c in chain.stream("What milk do I like?", config=config("gus"))]
        assert "".join(pieces) == "Oat milk, as usual."
        assert "Drinks oat milk" in system_texts(recorded)[0]
    assert sorted(m.content for m in sync_memory.visible("gus")) == ["Drinks oat milk", "Wants it hot"]
