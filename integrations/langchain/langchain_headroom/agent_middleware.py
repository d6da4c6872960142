"""HeadroomMemoryMiddleware: inline memory for LangChain 1.x agents (``create_agent``).

Needs the optional ``langchain`` package (``pip install 'langchain-headroom[agents]'``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.config import get_config

from headroom_memory import Identity, InvalidInputError, SyncMemory
from headroom_memory.inline import InlineMemory, Prepared
from headroom_memory.validation import check_positive_int, check_similarity

from ._common import last_human_text, open_memory
from ._stripping_model import BlockStrippingChatModel

__all__ = ["HeadroomMemoryMiddleware"]

_PREPARED_KEPT = 256  # recalls kept for the tool-calling steps of recent turns


class HeadroomMemoryMiddleware(AgentMiddleware):
    """Give a ``create_agent`` agent memory: recall before each model call,
    extract from its answer.

    Around every model call it adds the memories visible to the identity (and
    the extraction instruction) to the system message, swaps in a model that
    removes the ``<memory>`` block from the answer (streamed tokens included)
    before it enters the agent state, and stores what the block held::

        agent = create_agent(model, tools, middleware=[HeadroomMemoryMiddleware(memory)])
        agent.invoke({"messages": [...]}, config={"configurable": {"thread_id": "t1"}},
                     context={"user_id": "alice"})

    The identity: ``user_id`` from the runtime context (an object or mapping
    with that field) or ``config["configurable"]["user_id"]``, required;
    ``session_id`` from the same places, else the LangGraph ``thread_id``;
    ``agent_id`` given here, else from context/config, else the agent's
    ``name``. The recall for one user message is reused across that turn's
    tool-calling steps, so a memory counts one recall per turn.
    """

    def __init__(
        self,
        memory: SyncMemory | None = None,
        *,
        db_path: str | None = None,
        agent_id: str | None = None,
        top_k: int = 5,
        min_similarity: float = 0.1,
        max_injected_chars: int = 2000,
    ) -> None:
        super().__init__()
        self.memory = open_memory(memory, db_path)
        if agent_id is not None and (not isinstance(agent_id, str) or not agent_id.strip()):
            raise InvalidInputError(f"agent_id must be a non-empty string or None, got {agent_id!r}")
        self.agent_id = agent_id
        self.top_k = check_positive_int(top_k, "top_k")
        self.min_similarity = check_similarity(min_similarity)
        self.max_injected_chars = check_positive_int(max_injected_chars, "max_injected_chars")
        self._prepared: OrderedDict[tuple[Any, ...], Prepared] = OrderedDict()

    # -- the hooks ---------------------------------------------------------

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Recall, call the model once through a block-stripping model, store the block."""
        inline = self._inline(request)
        key = self._turn_key(inline.identity, request)
        prepared = self._prepared.get(key) or self._remember(
            key, self.memory.runner.run(inline.prepare(last_human_text(request.messages))))
        stripping = BlockStrippingChatModel(inner=request.model)
        response = handler(self._with_memory(request, prepared, stripping))
        if stripping.blocks:
            self.memory.runner.run(inline.absorb(stripping.blocks, prepared))
        return response

    async def awrap_model_call(
        self, request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """The async form of :meth:`wrap_model_call`."""
        inline = self._inline(request)
        key = self._turn_key(inline.identity, request)
        prepared = self._prepared.get(key) or self._remember(
            key, await self.memory.runner.run_async(inline.prepare(last_human_text(request.messages))))
        stripping = BlockStrippingChatModel(inner=request.model)
        response = await handler(self._with_memory(request, prepared, stripping))
        if stripping.blocks:
            await self.memory.runner.run_async(inline.absorb(stripping.blocks, prepared))
        return response

    # -- helpers -------------------------------------------------------------

    def _inline(self, request: ModelRequest[Any]) -> InlineMemory:
        return InlineMemory(self.memory.engine, self._identity(request), top_k=self.top_k,
                            min_similarity=self.min_similarity, max_injected_chars=self.max_injected_chars)

    def _identity(self, request: ModelRequest[Any]) -> Identity:
        context = getattr(request.runtime, "context", None)
        config = _current_config()
        configurable: Mapping[str, Any] = config.get("configurable") or {}
        metadata: Mapping[str, Any] = config.get("metadata") or {}

        def pick(name: str) -> Any:
            value = context.get(name) if isinstance(context, Mapping) else getattr(context, name, None)
            return value or configurable.get(name) or None

        user_id = pick("user_id")
        if not user_id:
            raise InvalidInputError(
                "HeadroomMemoryMiddleware needs a user_id: pass context={'user_id': ...} to the agent "
                "(with a context_schema that has user_id) or config={'configurable': {'user_id': ...}}"
            )
        session_id = pick("session_id") or configurable.get("thread_id") or None
        agent_id = self.agent_id or pick("agent_id") or metadata.get("lc_agent_name") or None
        return Identity(user_id, None if session_id is None else str(session_id), agent_id)

    def _turn_key(self, identity: Identity, request: ModelRequest[Any]) -> tuple[Any, ...]:
        """One key per user message: its position and id in the thread."""
        for position in range(len(request.messages) - 1, -1, -1):
            message = request.messages[position]
            if isinstance(message, HumanMessage):
                return (identity, position, message.id, last_human_text([message]))
        return (identity, None)

    def _remember(self, key: tuple[Any, ...], prepared: Prepared) -> Prepared:
        self._prepared[key] = prepared
        while len(self._prepared) > _PREPARED_KEPT:
            self._prepared.popitem(last=False)
        return prepared

    @staticmethod
    def _with_memory(request: ModelRequest[Any], prepared: Prepared,
                     model: BlockStrippingChatModel) -> ModelRequest[Any]:
        system = request.system_message
        if system is None:
            merged = SystemMessage(content=prepared.system_text)
        elif isinstance(system.content, str):
            merged = SystemMessage(content=f"{system.content}\n\n{prepared.system_text}")
        else:
            merged = SystemMessage(content=[*system.content, {"type": "text", "text": prepared.system_text}])
        return request.override(model=model, system_message=merged)


def _current_config() -> Mapping[str, Any]:
    """The running graph's config, or {} outside one."""
    try:
        return get_config()
    except RuntimeError:
        return {}
