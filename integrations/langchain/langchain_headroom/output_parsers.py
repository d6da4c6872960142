"""HeadroomMemoryOutputParser: the answer without its <memory> block, also streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import BaseTransformOutputParser
from pydantic import PrivateAttr

from headroom_memory.extraction import BlockFilter, ExtractedMemory, parse_blocks, split_reply

__all__ = ["HeadroomMemoryOutputParser"]


def _text(chunk: str | BaseMessage) -> str:
    if isinstance(chunk, BaseMessage):
        return chunk.content if isinstance(chunk.content, str) else ""
    return chunk


class HeadroomMemoryOutputParser(BaseTransformOutputParser[str]):
    """Returns the clean answer text; the block's items are in :attr:`last_memories`.

    Use it as ``model | HeadroomMemoryOutputParser()``; streaming yields text as
    it arrives and never any part of the block. To read the items of a given
    text without state, call :meth:`parse_with_memories`. (The parser only
    parses; storing is done by :class:`RunnableWithMemory` or your code.)
    """

    _last: list[ExtractedMemory] = PrivateAttr(default_factory=list)

    @property
    def last_memories(self) -> list[ExtractedMemory]:
        """The items of the last parsed or streamed answer."""
        return list(self._last)

    def parse_with_memories(self, text: str) -> tuple[str, list[ExtractedMemory]]:
        """(clean text, the block's valid items)."""
        clean, blocks = split_reply(text)
        return clean, parse_blocks(blocks)

    def parse(self, text: str) -> str:
        """The text without blocks (their items go to :attr:`last_memories`)."""
        clean, self._last = self.parse_with_memories(text)
        return clean

    def _finish(self, block_filter: BlockFilter) -> str:
        """The held-back tail of a streamed answer; records the block's items."""
        tail = block_filter.finish()
        self._last = parse_blocks(block_filter.blocks)
        return tail

    def _transform(self, input: Iterator[str | BaseMessage]) -> Iterator[str]:
        block_filter = BlockFilter()
        for chunk in input:
            visible = block_filter.feed(_text(chunk))
            if visible:
                yield visible
        tail = self._finish(block_filter)
        if tail:
            yield tail

    async def _atransform(self, input: AsyncIterator[str | BaseMessage]) -> AsyncIterator[str]:
        block_filter = BlockFilter()
        async for chunk in input:
            visible = block_filter.feed(_text(chunk))
            if visible:
                yield visible
        tail = self._finish(block_filter)
        if tail:
            yield tail

    @property
    def _type(self) -> str:
        return "headroom_memory_output_parser"

    def get_format_instructions(self) -> str:
        """The extraction instruction a prompt can include."""
        from headroom_memory import ScopeLevel
        from headroom_memory.extraction import memory_instruction

        return memory_instruction([ScopeLevel.USER])

    def __repr_args__(self) -> Any:
        return []
