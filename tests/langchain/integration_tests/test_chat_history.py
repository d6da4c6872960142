"""HeadroomChatMessageHistory, alone and under RunnableWithMessageHistory."""

from __future__ import annotations

import warnings

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_headroom import HeadroomChatMessageHistory

from headroom_memory import SyncMemory


def test_messages_round_trip_per_session(sync_memory: SyncMemory) -> None:
    s1 = HeadroomChatMessageHistory("alice", "s1", memory=sync_memory)
    s2 = HeadroomChatMessageHistory("alice", "s2", memory=sync_memory)
    bob = HeadroomChatMessageHistory("bob", "s1", memory=sync_memory)
    s1.add_messages([HumanMessage("hi"), AIMessage("hello", additional_kwargs={"x": 1})])
    s2.add_user_message("other session")
    assert [(type(m).__name__, m.content) for m in s1.messages] == [("HumanMessage", "hi"), ("AIMessage", "hello")]
    assert s1.messages[1].additional_kwargs == {"x": 1}
    assert bob.messages == []
    s1.clear()
    assert s1.messages == [] and [m.content for m in s2.messages] == ["other session"]


async def test_async_methods(sync_memory: SyncMemory) -> None:
    history = HeadroomChatMessageHistory("alice", "async", memory=sync_memory)
    await history.aadd_messages([HumanMessage("a"), AIMessage("b")])
    assert [m.content for m in await history.aget_messages()] == ["a", "b"]
    await history.aclear()
    assert await history.aget_messages() == []


def test_history_survives_a_reopen(tmp_path: object, embedder: object) -> None:
    from headroom_memory import MemoryConfig

    path = tmp_path / "h.db"  # type: ignore[operator]
    with SyncMemory(MemoryConfig(db_path=path), embedder=embedder) as memory:
        HeadroomChatMessageHistory("u", "s", memory=memory).add_user_message("persist me")
    with SyncMemory(MemoryConfig(db_path=path), embedder=embedder) as memory:
        assert [m.content for m in HeadroomChatMessageHistory("u", "s", memory=memory).messages] == ["persist me"]


def test_with_runnable_with_message_history(sync_memory: SyncMemory) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("first reply"), AIMessage("second reply")]))
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{input}")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # RunnableWithMessageHistory is deprecated in 1.x
        chain = RunnableWithMessageHistory(
            prompt | model,
            lambda session_id: HeadroomChatMessageHistory("alice", session_id, memory=sync_memory),
            input_messages_key="input", history_messages_key="history",
        )
        chain.invoke({"input": "one"}, config={"configurable": {"session_id": "s9"}})
        chain.invoke({"input": "two"}, config={"configurable": {"session_id": "s9"}})
    stored = HeadroomChatMessageHistory("alice", "s9", memory=sync_memory).messages
    assert [m.content for m in stored] == ["one", "first reply", "two", "second reply"]
