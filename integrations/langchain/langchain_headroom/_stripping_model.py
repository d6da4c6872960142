"""A chat model that calls another and removes ``<memory>`` blocks from its answers.

The agent middleware swaps it in for the agent's model for one call: the inner
model runs tagged ``nostream`` (LangGraph does not stream its raw tokens), and
this model streams the cleaned tokens and returns the cleaned message, so no
part of a block reaches the agent state or a ``stream_mode="messages"`` reader.
The blocks found are kept on the instance for the middleware to store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field

from headroom_memory import InvalidInputError
from headroom_memory.extraction import BlockFilter

from ._common import clean_output, filter_chunk

__all__ = ["BlockStrippingChatModel"]

_NOSTREAM = "nostream"  # langgraph.constants.TAG_NOSTREAM


class BlockStrippingChatModel(BaseChatModel):
    """Calls ``inner`` and returns its answer without ``<memory>`` blocks (kept in ``blocks``)."""

    inner: BaseChatModel
    blocks: list[str] = Field(default_factory=list)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _llm_type(self) -> str:
        return f"headroom-stripping-{self.inner._llm_type}"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools the way ``inner`` formats them, keeping this model in front."""
        bound = self.inner.bind_tools(tools, tool_choice=tool_choice, **kwargs)
        if not isinstance(bound, RunnableBinding) or bound.bound is not self.inner:
            raise InvalidInputError(
                f"{type(self.inner).__name__}.bind_tools did not return a binding of the model itself; "
                "HeadroomMemoryMiddleware cannot keep memory blocks out of its answers"
            )
        return self.bind(**bound.kwargs)

    def _config(self, run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
                ) -> RunnableConfig:
        """The inner call: a child run of this one, tagged so LangGraph does not stream it."""
        if run_manager is None:
            return {"tags": [_NOSTREAM]}
        is_async = isinstance(run_manager, AsyncCallbackManagerForLLMRun)
        child = (AsyncCallbackManager if is_async else CallbackManager)(handlers=run_manager.inheritable_handlers,
                             inheritable_handlers=run_manager.inheritable_handlers,
                             parent_run_id=run_manager.run_id, inheritable_tags=run_manager.inheritable_tags,
                             inheritable_metadata=run_manager.inheritable_metadata)
        return {"callbacks": child, "tags": [_NOSTREAM]}

    def _result(self, message: BaseMessage) -> ChatResult:
        clean, blocks = clean_output(message)
        self.blocks.extend(blocks)
        return ChatResult(generations=[ChatGeneration(message=clean)])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._result(self.inner.invoke(messages, self._config(run_manager), stop=stop, **kwargs))

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._result(await self.inner.ainvoke(messages, self._config(run_manager), stop=stop, **kwargs))

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        block_filter = BlockFilter()
        for chunk in self.inner.stream(messages, self._config(run_manager), stop=stop, **kwargs):
            yield ChatGenerationChunk(message=filter_chunk(chunk, block_filter))
        yield from self._tail(block_filter)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        block_filter = BlockFilter()
        async for chunk in self.inner.astream(messages, self._config(run_manager), stop=stop, **kwargs):
            yield ChatGenerationChunk(message=filter_chunk(chunk, block_filter))
        for tail in self._tail(block_filter):
            yield tail

    def _tail(self, block_filter: BlockFilter) -> Iterator[ChatGenerationChunk]:
        """The text held back when the stream ended, then record the blocks."""
        text = block_filter.finish()
        self.blocks.extend(block_filter.blocks)
        if text:
            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
