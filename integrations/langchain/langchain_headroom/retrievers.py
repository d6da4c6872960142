"""HeadroomRetriever: a LangChain retriever over one identity's memories."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field

from headroom_memory import SearchResult, SyncMemory

__all__ = ["HeadroomRetriever"]


def _document(result: SearchResult) -> Document:
    memory = result.memory
    return Document(
        page_content=memory.content,
        id=memory.id,
        metadata={
            "id": memory.id,
            "category": memory.category.value,
            "scope": memory.scope.value,
            "user_id": memory.user_id,
            "session_id": memory.session_id,
            "agent_id": memory.agent_id,
            "importance": memory.importance,
            "valid_from": memory.valid_from.isoformat(),
            "valid_until": None if memory.valid_until is None else memory.valid_until.isoformat(),
            "created_at": memory.created_at.isoformat(),
            "similarity": result.similarity,
            "score": result.score,
        },
    )


class HeadroomRetriever(BaseRetriever):
    """Hybrid (semantic + keyword) search over the memories an identity sees.

    The identity comes from the fields, and ``config["configurable"]``
    (``user_id``, ``session_id``, ``agent_id``) overrides them per call::

        retriever = HeadroomRetriever(memory=memory, user_id="alice", k=4)
        docs = retriever.invoke("language preferences")
        docs = retriever.invoke("...", config={"configurable": {"user_id": "bob"}})

    Each Document has the memory's id, category, scope, ids, importance and
    validity in its metadata.
    """

    memory: SyncMemory
    user_id: str | None = None
    session_id: str | None = None
    agent_id: str | None = None
    k: int = Field(default=4, ge=1)
    min_similarity: float = Field(default=-1.0, ge=-1, le=1)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _scoped(self, config: RunnableConfig | None) -> HeadroomRetriever:
        configurable = (config or {}).get("configurable") or {}
        update = {key: configurable[key] for key in ("user_id", "session_id", "agent_id") if configurable.get(key)}
        return self.model_copy(update=update) if update else self

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> list[Document]:
        """Search with the identity of the fields or of ``config['configurable']``."""
        return BaseRetriever.invoke(self._scoped(config), input, config, **kwargs)

    async def ainvoke(self, input: str, config: RunnableConfig | None = None,
                      **kwargs: Any) -> list[Document]:
        """The async form of :meth:`invoke`."""
        return await BaseRetriever.ainvoke(self._scoped(config), input, config, **kwargs)

    def _search_args(self, query: str, k: int | None) -> dict[str, Any]:
        if not self.user_id:
            from headroom_memory import InvalidInputError

            raise InvalidInputError("HeadroomRetriever needs user_id (a field or config['configurable'])")
        return {"query": query, "user_id": self.user_id, "session_id": self.session_id,
                "agent_id": self.agent_id, "top_k": k or self.k, "min_similarity": self.min_similarity}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None) -> list[Document]:
        return [_document(r) for r in self.memory.search(**self._search_args(query, k))]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None) -> list[Document]:
        results = await self.memory.runner.run_async(self.memory.engine.search(**self._search_args(query, k)))
        return [_document(r) for r in results]
