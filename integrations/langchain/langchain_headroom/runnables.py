"""RunnableWithMemory: inline memory around any chat model or chain taking messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.runnables import Runnable, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config
from langchain_core.runnables.schema import StreamEvent
from langchain_core.runnables.utils import ConfigurableFieldSpec, get_unique_config_specs
from pydantic import ConfigDict, Field

from headroom_memory import SyncMemory
from headroom_memory.extraction import BlockFilter, split_reply
from headroom_memory.inline import InlineMemory

from ._common import clean_output, filter_chunk, identity_from_config, inject, last_human_text, tail_chunk, to_messages

__all__ = ["RunnableWithMemory"]


class RunnableWithMemory(RunnableSerializable[Any, Any]):
    """Give a chat model or chain (taking messages or a prompt value) memory.

    Per call it recalls the memories visible to the identity in
    ``config["configurable"]`` (``user_id`` required, ``session_id`` and
    ``agent_id`` optional), adds them as one system message with the extraction
    instruction, calls the wrapped runnable once, removes the ``<memory>`` block
    from its output (also when streaming) and stores what the block held::

        chain = RunnableWithMemory(prompt | model, memory=SyncMemory(MemoryConfig(db_path="m.db")))
        chain.invoke({"question": "hi"} , config={"configurable": {"user_id": "alice"}})

    (``prompt | model`` receives the messages, so wrap a chain whose first step
    takes messages, e.g. a chat model, or ``ChatPromptTemplate`` fed upstream.)
    """

    runnable: Runnable[Any, Any]
    memory: SyncMemory
    top_k: int = Field(default=5, ge=1)
    min_similarity: float = Field(default=0.1, ge=-1, le=1)
    max_injected_chars: int = Field(default=2000, ge=1)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        """The wrapped runnable's specs plus ``user_id``, ``session_id``, ``agent_id``."""
        ours = [
            ConfigurableFieldSpec(id="user_id", annotation=str, name="User ID",
                                  description="Whose memories are read and written.", default="", is_shared=True),
            ConfigurableFieldSpec(id="session_id", annotation=str, name="Session ID",
                                  description="The conversation session (optional).", default="", is_shared=True),
            ConfigurableFieldSpec(id="agent_id", annotation=str, name="Agent ID",
                                  description="The agent within the session (optional).", default="",
                                  is_shared=True),
        ]
        return get_unique_config_specs([*self.runnable.config_specs, *ours])

    def _inline(self, config: RunnableConfig | None) -> InlineMemory:
        return InlineMemory(self.memory.engine, identity_from_config(config, type(self).__name__),
                            top_k=self.top_k, min_similarity=self.min_similarity,
                            max_injected_chars=self.max_injected_chars)

    # -- invoke -----------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Recall, call the wrapped runnable once, strip and store the block."""
        return self._call_with_config(self._invoke, input, config, **kwargs)

    def _invoke(self, input: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig,
                **kwargs: Any) -> Any:
        inline = self._inline(config)
        messages = to_messages(input)
        prepared = self.memory.runner.run(inline.prepare(last_human_text(messages)))
        output = self.runnable.invoke(inject(messages, prepared),
                                      patch_config(config, callbacks=run_manager.get_child()), **kwargs)
        clean, blocks = clean_output(output)
        if blocks:
            self.memory.runner.run(inline.absorb(blocks, prepared))
        return clean

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """The async form of :meth:`invoke`."""
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    async def _ainvoke(self, input: Any, run_manager: AsyncCallbackManagerForChainRun,
                       config: RunnableConfig, **kwargs: Any) -> Any:
        inline = self._inline(config)
        messages = to_messages(input)
        prepared = await self.memory.runner.run_async(inline.prepare(last_human_text(messages)))
        output = await self.runnable.ainvoke(inject(messages, prepared),
                                             patch_config(config, callbacks=run_manager.get_child()), **kwargs)
        clean, blocks = clean_output(output)
        if blocks:
            await self.memory.runner.run_async(inline.absorb(blocks, prepared))
        return clean

    # -- streaming ----------------------------------------------------------

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None,
                  **kwargs: Any) -> Iterator[Any]:
        """Stream the wrapped runnable's output without any part of the block."""
        yield from self._transform_stream_with_config(input, self._transform, config, **kwargs)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        """Stream the answer as it arrives; the block is stored when the stream ends."""
        yield from self.transform(iter([input]), config, **kwargs)

    def _transform(self, inputs: Iterator[Any], run_manager: CallbackManagerForChainRun,
                   config: RunnableConfig, **kwargs: Any) -> Iterator[Any]:
        inline = self._inline(config)
        messages = to_messages(_single(inputs))
        prepared = self.memory.runner.run(inline.prepare(last_human_text(messages)))
        block_filter, last = BlockFilter(), None
        for chunk in self.runnable.stream(inject(messages, prepared),
                                          patch_config(config, callbacks=run_manager.get_child()), **kwargs):
            last = chunk
            yield filter_chunk(chunk, block_filter)
        tail = _tail(block_filter, last)
        if tail is not None:
            yield tail
        if block_filter.blocks:
            self.memory.runner.run(inline.absorb(block_filter.blocks, prepared))

    async def atransform(self, input: AsyncIterator[Any], config: RunnableConfig | None = None,
                         **kwargs: Any) -> AsyncIterator[Any]:
        """The async form of :meth:`transform`."""
        async for chunk in self._atransform_stream_with_config(input, self._atransform, config, **kwargs):
            yield chunk

    async def astream(self, input: Any, config: RunnableConfig | None = None,
                      **kwargs: Any) -> AsyncIterator[Any]:
        """The async form of :meth:`stream`."""

        async def once() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(once(), config, **kwargs):
            yield chunk

    async def _atransform(self, inputs: AsyncIterator[Any], run_manager: AsyncCallbackManagerForChainRun,
                          config: RunnableConfig, **kwargs: Any) -> AsyncIterator[Any]:
        inline = self._inline(config)
        messages = to_messages([item async for item in inputs][-1])
        prepared = await self.memory.runner.run_async(inline.prepare(last_human_text(messages)))
        block_filter, last = BlockFilter(), None
        async for chunk in self.runnable.astream(inject(messages, prepared),
                                                 patch_config(config, callbacks=run_manager.get_child()), **kwargs):
            last = chunk
            yield filter_chunk(chunk, block_filter)
        tail = _tail(block_filter, last)
        if tail is not None:
            yield tail
        if block_filter.blocks:
            await self.memory.runner.run_async(inline.absorb(block_filter.blocks, prepared))

    async def astream_events(  # type: ignore[override]
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent]:
        """LangChain's event stream (versions v1 and v2), with the block removed
        from every event, including the wrapped model's own token and end events."""
        filters: dict[str, BlockFilter] = {}
        async for event in super().astream_events(input, config, **kwargs):
            yield _clean_event(event, filters)


def _tail(block_filter: BlockFilter, last: Any) -> Any | None:
    """A chunk with the text held back when the stream ended, or None."""
    text = block_filter.finish()
    return tail_chunk(last, text) if text and last is not None else None


def _single(inputs: Iterator[Any]) -> Any:
    items = list(inputs)
    return items[-1]


def _clean_event(event: StreamEvent, filters: dict[str, BlockFilter]) -> StreamEvent:
    """An event with block text removed from its chunk (streams) or output (ends)."""
    data = dict(event.get("data") or {})
    kind = event["event"]
    if kind.endswith("_stream") and "chunk" in data:
        data["chunk"] = filter_chunk(data["chunk"], filters.setdefault(event["run_id"], BlockFilter()))
    elif kind.endswith("_end") and "output" in data:
        output = data["output"]
        generations = getattr(output, "generations", None)
        if generations is None:
            data["output"] = clean_output(output)[0]
        else:
            for group in generations:
                for generation in group:
                    if isinstance(getattr(generation, "text", None), str):
                        generation.text = split_reply(generation.text)[0]
                    message = getattr(generation, "message", None)
                    if message is not None:
                        generation.message = clean_output(message)[0]
    return cast(StreamEvent, {**event, "data": data})
