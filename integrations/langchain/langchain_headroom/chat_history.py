"""HeadroomChatMessageHistory: the raw conversation of a session, in the memory database."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from headroom_memory import Identity, SyncMemory

from ._common import open_memory

__all__ = ["HeadroomChatMessageHistory"]


class HeadroomChatMessageHistory(BaseChatMessageHistory):
    """A session's messages, stored verbatim beside the memories (same SQLite file).

    Usable with ``RunnableWithMessageHistory``::

        history = HeadroomChatMessageHistory("alice", "s1", memory=memory)
        history.add_messages([HumanMessage("hi"), AIMessage("hello")])

    ``clear()`` deletes this session's messages only; memories stay.
    """

    def __init__(self, user_id: str, session_id: str, *, memory: SyncMemory | None = None,
                 db_path: str | None = None) -> None:
        identity = Identity(user_id, session_id)
        self.user_id, self.session_id = identity.user_id, session_id
        self.memory = open_memory(memory, db_path)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The session's messages, oldest first."""
        return messages_from_dict(self.memory.get_messages(self.user_id, self.session_id))

    async def aget_messages(self) -> list[BaseMessage]:
        """The async form of :attr:`messages`."""
        raw = await self.memory.runner.run_async(self.memory.engine.get_messages(self.user_id, self.session_id))
        return messages_from_dict(raw)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one transaction."""
        self.memory.append_messages(self.user_id, self.session_id, [message_to_dict(m) for m in messages])

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """The async form of :meth:`add_messages`."""
        await self.memory.runner.run_async(self.memory.engine.append_messages(
            self.user_id, self.session_id, [message_to_dict(m) for m in messages]))

    def clear(self) -> None:
        """Delete this session's messages (not its memories)."""
        self.memory.clear_messages(self.user_id, self.session_id)

    async def aclear(self) -> None:
        """The async form of :meth:`clear`."""
        await self.memory.runner.run_async(self.memory.engine.clear_messages(self.user_id, self.session_id))
