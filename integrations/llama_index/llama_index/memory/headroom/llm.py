"""HeadroomLLM: an LLM whose answers never show a <memory> block, streams included."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.llm import LLM
from pydantic import ConfigDict

from headroom_memory.extraction import BlockFilter, split_reply

__all__ = ["HeadroomLLM"]


class _Cleaner:
    """Running block removal over one streamed answer."""

    def __init__(self) -> None:
        self.filter = BlockFilter()
        self.text = ""

    def feed(self, delta: str | None) -> str:
        visible = self.filter.feed(delta or "")
        self.text += visible
        return visible

    def finish(self) -> str:
        tail = self.filter.finish()
        self.text += tail
        return tail


class HeadroomLLM(LLM):
    """Wraps an LLM for a :class:`HeadroomMemory`: removes ``<memory>`` blocks
    from chat and completion answers (also streamed ones, holding back only what
    could still become the tag) and stores them through the memory. Made by
    ``HeadroomMemory.wrap_llm(llm)``."""

    llm: LLM
    memory: Any

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @classmethod
    def class_name(cls) -> str:
        """Name used in serialisation."""
        return "HeadroomLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """The wrapped LLM's metadata."""
        return self.llm.metadata

    # -- whole answers ------------------------------------------------------

    def _clean_chat(self, response: ChatResponse) -> list[str]:
        if not isinstance(response.message.content, str):
            return []
        clean, blocks = split_reply(response.message.content)
        response.message.content = clean
        return blocks

    def _clean_completion(self, response: CompletionResponse) -> list[str]:
        clean, blocks = split_reply(response.text)
        response.text = clean
        return blocks

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """The wrapped LLM's chat, without the block."""
        response = self.llm.chat(messages, **kwargs)
        self.memory.absorb(self._clean_chat(response))
        return response

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """The async form of :meth:`chat`."""
        response = await self.llm.achat(messages, **kwargs)
        await self.memory.aabsorb(self._clean_chat(response))
        return response

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """The wrapped LLM's completion, without the block."""
        response = self.llm.complete(prompt, formatted=formatted, **kwargs)
        self.memory.absorb(self._clean_completion(response))
        return response

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """The async form of :meth:`complete`."""
        response = await self.llm.acomplete(prompt, formatted=formatted, **kwargs)
        await self.memory.aabsorb(self._clean_completion(response))
        return response

    # -- streams ------------------------------------------------------------

    @staticmethod
    def _chat_chunk(cleaner: _Cleaner, delta: str, raw: Any = None) -> ChatResponse:
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=cleaner.text),
                            delta=delta, raw=raw)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Generator[ChatResponse, None, None]:
        """The wrapped LLM's stream, without any part of the block."""
        cleaner = _Cleaner()
        for chunk in self.llm.stream_chat(messages, **kwargs):
            yield self._chat_chunk(cleaner, cleaner.feed(chunk.delta), chunk.raw)
        tail = cleaner.finish()
        if tail:
            yield self._chat_chunk(cleaner, tail)
        self.memory.absorb(cleaner.filter.blocks)

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> AsyncGenerator[ChatResponse, None]:
        """The async form of :meth:`stream_chat`."""
        upstream = await self.llm.astream_chat(messages, **kwargs)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            cleaner = _Cleaner()
            async for chunk in upstream:
                yield self._chat_chunk(cleaner, cleaner.feed(chunk.delta), chunk.raw)
            tail = cleaner.finish()
            if tail:
                yield self._chat_chunk(cleaner, tail)
            await self.memory.aabsorb(cleaner.filter.blocks)

        return gen()

    def stream_complete(self, prompt: str, formatted: bool = False,
                        **kwargs: Any) -> Generator[CompletionResponse, None, None]:
        """The wrapped LLM's completion stream, without any part of the block."""
        cleaner = _Cleaner()
        for chunk in self.llm.stream_complete(prompt, formatted=formatted, **kwargs):
            delta = cleaner.feed(chunk.delta)
            yield CompletionResponse(text=cleaner.text, delta=delta, raw=chunk.raw)
        tail = cleaner.finish()
        if tail:
            yield CompletionResponse(text=cleaner.text, delta=tail)
        self.memory.absorb(cleaner.filter.blocks)

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> AsyncGenerator[CompletionResponse, None]:
        """The async form of :meth:`stream_complete`."""
        upstream = await self.llm.astream_complete(prompt, formatted=formatted, **kwargs)

        async def gen() -> AsyncGenerator[CompletionResponse, None]:
            cleaner = _Cleaner()
            async for chunk in upstream:
                delta = cleaner.feed(chunk.delta)
                yield CompletionResponse(text=cleaner.text, delta=delta, raw=chunk.raw)
            tail = cleaner.finish()
            if tail:
                yield CompletionResponse(text=cleaner.text, delta=tail)
            await self.memory.aabsorb(cleaner.filter.blocks)

        return gen()
