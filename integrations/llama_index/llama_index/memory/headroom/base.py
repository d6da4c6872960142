"""HeadroomMemory: a LlamaIndex BaseMemory over headroom-memory."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.memory.types import BaseMemory
from pydantic import Field, PrivateAttr

from headroom_memory import Identity, MemoryConfig, SyncMemory
from headroom_memory.extraction import split_reply
from headroom_memory.inline import InlineMemory, Prepared

__all__ = ["HeadroomMemory"]


def _text(message: ChatMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else ""


class HeadroomMemory(BaseMemory):
    """Long-term, scoped memory for LlamaIndex chat engines and agents.

    ``get(input)`` returns one system message (the memories this identity sees
    that match ``input`` or the last user message, as delimited reference data,
    plus the instruction to append a ``<memory>`` block) followed by the
    session's chat buffer. ``put`` of an assistant message strips its block
    (in place, so the engine returns the clean text) and stores what it held.
    The chat buffer is kept in the same database, per user and session;
    ``reset()`` clears this session's buffer only, never any memory.

    Use :meth:`wrap_llm` on the engine's LLM so that streamed answers
    (``stream_chat``/``astream_chat``) never show any part of the block.
    """

    user_id: str
    session_id: str = "default"
    agent_id: str | None = None
    top_k: int = Field(default=5, ge=1)
    min_similarity: float = Field(default=0.1, ge=-1, le=1)
    chat_history_limit: int = Field(default=40, ge=1, description="Buffer messages returned by get().")

    _memory: SyncMemory = PrivateAttr()
    _owns_memory: bool = PrivateAttr(default=False)
    _inline: InlineMemory = PrivateAttr()
    _prepared: Prepared = PrivateAttr(default_factory=lambda: Prepared(system_text=""))

    @classmethod
    def class_name(cls) -> str:
        """Name used in serialisation."""
        return "HeadroomMemory"

    @classmethod
    def from_defaults(  # type: ignore[override]
        cls,
        user_id: str,
        session_id: str = "default",
        agent_id: str | None = None,
        *,
        db_path: str | None = None,
        config: MemoryConfig | None = None,
        memory: SyncMemory | None = None,
        top_k: int = 5,
        min_similarity: float = 0.1,
        chat_history_limit: int = 40,
        **kwargs: Any,
    ) -> HeadroomMemory:
        """Open (or share, with ``memory=``) a headroom memory for one identity."""
        instance = cls(user_id=user_id, session_id=session_id, agent_id=agent_id, top_k=top_k,
                       min_similarity=min_similarity, chat_history_limit=chat_history_limit, **kwargs)
        if memory is None:
            settings = config.model_dump(exclude_unset=True) if config is not None else {}
            if db_path is not None:
                settings["db_path"] = db_path
            memory, instance._owns_memory = SyncMemory(MemoryConfig(**settings)), True
        instance._memory = memory
        instance._inline = InlineMemory(memory.engine, Identity(user_id, session_id, agent_id),
                                        top_k=top_k, min_similarity=min_similarity)
        return instance

    @property
    def memory(self) -> SyncMemory:
        """The underlying headroom memory (for search, history, stats...)."""
        return self._memory

    # -- reading -----------------------------------------------------------

    def _buffer(self, raw: list[dict[str, Any]]) -> list[ChatMessage]:
        return [ChatMessage.model_validate(m) for m in raw][-self.chat_history_limit:]

    def _query(self, input: str | None, buffer: list[ChatMessage]) -> str:
        if input:
            return input
        users = [m for m in buffer if m.role == MessageRole.USER]
        return _text(users[-1]) if users else ""

    def _compose(self, prepared: Prepared, buffer: list[ChatMessage]) -> list[ChatMessage]:
        self._prepared = prepared
        return [ChatMessage(role=MessageRole.SYSTEM, content=prepared.system_text), *buffer]

    def get(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        """The memory system message, then the session's chat buffer."""
        buffer = self.get_all()
        prepared = self._memory.runner.run(self._inline.prepare(self._query(input, buffer)))
        return self._compose(prepared, buffer)

    async def aget(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        """The async form of :meth:`get`."""
        buffer = await self.aget_all()
        prepared = await self._memory.runner.run_async(self._inline.prepare(self._query(input, buffer)))
        return self._compose(prepared, buffer)

    def get_all(self) -> list[ChatMessage]:
        """The session's chat buffer (no memories)."""
        return self._buffer(self._memory.get_messages(self.user_id, self.session_id))

    async def aget_all(self) -> list[ChatMessage]:
        """The async form of :meth:`get_all`."""
        raw = await self._memory.runner.run_async(self._memory.engine.get_messages(self.user_id, self.session_id))
        return self._buffer(raw)

    # -- writing -------------------------------------------------------------

    def _clean(self, message: ChatMessage) -> list[str]:
        """Strip blocks from an assistant message in place; returns them."""
        if message.role != MessageRole.ASSISTANT or not isinstance(message.content, str):
            return []
        clean, blocks = split_reply(message.content)
        if blocks:
            message.content = clean
        return blocks

    def absorb(self, blocks: list[str]) -> None:
        """Store the items of blocks removed from an answer (used by :meth:`wrap_llm`)."""
        if blocks:
            self._memory.runner.run(self._inline.absorb(blocks, self._prepared))

    async def aabsorb(self, blocks: list[str]) -> None:
        """The async form of :meth:`absorb`."""
        if blocks:
            await self._memory.runner.run_async(self._inline.absorb(blocks, self._prepared))

    def put(self, message: ChatMessage) -> None:
        """Add a message to the buffer; an assistant message's block is stripped and stored."""
        self.absorb(self._clean(message))
        self._memory.append_messages(self.user_id, self.session_id, [message.model_dump(mode="json")])

    async def aput(self, message: ChatMessage) -> None:
        """The async form of :meth:`put`."""
        await self.aabsorb(self._clean(message))
        await self._memory.runner.run_async(self._memory.engine.append_messages(
            self.user_id, self.session_id, [message.model_dump(mode="json")]))

    def set(self, messages: list[ChatMessage]) -> None:
        """Replace this session's buffer."""
        self._memory.clear_messages(self.user_id, self.session_id)
        for message in messages:
            self.put(message)

    def reset(self) -> None:
        """Clear this session's buffer; long-term memories (any session's) stay."""
        self._memory.clear_messages(self.user_id, self.session_id)

    def wrap_llm(self, llm: Any) -> Any:
        """``llm`` with every ``<memory>`` block removed from its answers, streams
        included; the removed blocks are stored through this memory."""
        from .llm import HeadroomLLM

        return HeadroomLLM(llm=llm, memory=self)

    def close(self) -> None:
        """Close the headroom memory if this object opened it."""
        if self._owns_memory:
            self._memory.close()
