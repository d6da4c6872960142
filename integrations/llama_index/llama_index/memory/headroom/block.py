"""HeadroomMemoryBlock: headroom memories inside LlamaIndex's newer ``Memory`` class."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.memory.memory import BaseMemoryBlock
from pydantic import ConfigDict, Field, PrivateAttr

from headroom_memory import Identity, SyncMemory
from headroom_memory.extraction import split_reply
from headroom_memory.inline import InlineMemory, Prepared

__all__ = ["HeadroomMemoryBlock"]


class HeadroomMemoryBlock(BaseMemoryBlock[str]):
    """Injects the memories an identity sees that match the latest user message::

        block = HeadroomMemoryBlock(memory=sync_memory, user_id="alice", session_id="s1")
        memory = Memory.from_defaults(session_id="s1", memory_blocks=[block])

    With ``extract=True`` the block also asks the model for a ``<memory>`` block
    and stores it when messages are flushed from short-term memory (pair it with
    ``HeadroomMemory.wrap_llm`` or another filter so users never see the block).
    """

    name: str = "headroom_memory"
    memory: SyncMemory
    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    top_k: int = Field(default=5, ge=1)
    min_similarity: float = Field(default=0.1, ge=-1, le=1)
    extract: bool = False

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _prepared: Prepared = PrivateAttr(default_factory=lambda: Prepared(system_text=""))

    def _inline(self) -> InlineMemory:
        return InlineMemory(self.memory.engine, Identity(self.user_id, self.session_id, self.agent_id),
                            top_k=self.top_k, min_similarity=self.min_similarity)

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        users = [m for m in messages or [] if m.role == MessageRole.USER and isinstance(m.content, str)]
        query = str(users[-1].content) if users else ""
        self._prepared = await self.memory.runner.run_async(self._inline().prepare(query, extract=self.extract))
        return self._prepared.system_text

    async def _aput(self, messages: list[ChatMessage]) -> None:
        if not self.extract:
            return
        blocks = [block for m in messages if m.role == MessageRole.ASSISTANT and isinstance(m.content, str)
                  for block in split_reply(m.content)[1]]
        if blocks:
            await self.memory.runner.run_async(self._inline().absorb(blocks, self._prepared))
