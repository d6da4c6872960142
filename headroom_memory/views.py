"""Identity-bound views: the ``.memory`` of a wrapped client and of the integrations.

A view is bound to one (user, session, agent) identity. It lists and searches
what that identity sees, writes with that identity's ids, and passes its user
id with every id-based call, so nothing bound to one user can read or change
another user's memory through an id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .engine import HierarchicalMemory
from .models import Memory, MemoryCategory, ScopeLevel, SearchResult
from .scopes import validate_id
from .sync import LoopThread, async_method, sync_method

__all__ = ["AsyncMemoryView", "Identity", "MemoryView", "SyncMemoryView"]


@dataclass(frozen=True)
class Identity:
    """Who reads and writes: a user, optionally inside a session, agent and turn."""

    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None

    def __post_init__(self) -> None:
        validate_id(self.user_id, "user_id", required=True)
        validate_id(self.session_id, "session_id")
        validate_id(self.agent_id, "agent_id")
        validate_id(self.turn_id, "turn_id")


class MemoryView:
    """Async memory API bound to one identity (see :class:`SyncMemoryView` for
    the blocking form)."""

    def __init__(self, engine: HierarchicalMemory, identity: Identity) -> None:
        self.engine = engine
        self.identity = identity

    async def search(
        self,
        query: str,
        top_k: int = 5,
        *,
        min_similarity: float = 0.0,
        categories: Sequence[MemoryCategory | str] | None = None,
    ) -> list[Memory]:
        """The memories this identity sees that best match ``query``."""
        return [r.memory for r in await self.search_results(
            query, top_k, min_similarity=min_similarity, categories=categories)]

    async def search_results(
        self,
        query: str,
        top_k: int = 5,
        *,
        min_similarity: float = 0.0,
        categories: Sequence[MemoryCategory | str] | None = None,
    ) -> list[SearchResult]:
        """Like :meth:`search`, with similarity and score."""
        i = self.identity
        return await self.engine.search(query, i.user_id, i.session_id, i.agent_id, i.turn_id,
                                        top_k=top_k, min_similarity=min_similarity,
                                        categories=categories)

    async def add(
        self,
        content: str,
        category: MemoryCategory | str = MemoryCategory.FACT,
        importance: float = 0.5,
        *,
        scope: ScopeLevel | str | None = ScopeLevel.USER,
        entity_refs: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Memory:
        """Store a memory for this identity (user scope unless ``scope`` says
        otherwise; the scope's id must be part of the identity)."""
        i = self.identity
        return await self.engine.add(content, i.user_id, i.session_id, i.agent_id, i.turn_id,
                                     category=category, importance=importance, scope=scope,
                                     entity_refs=entity_refs, metadata=metadata)

    async def get(self, memory_id: str) -> Memory:
        """One of this user's memories by id."""
        return await self.engine.get(memory_id, self.identity.user_id)

    async def get_all(self, *, include_superseded: bool = False) -> list[Memory]:
        """Every memory this identity sees, oldest first."""
        i = self.identity
        return await self.engine.visible(i.user_id, i.session_id, i.agent_id, i.turn_id,
                                         include_superseded=include_superseded)

    async def supersede(
        self,
        memory_id: str,
        new_content: str,
        *,
        category: MemoryCategory | str | None = None,
        importance: float | None = None,
        entity_refs: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Memory:
        """Replace one of this user's memories with a new version."""
        return await self.engine.supersede(
            memory_id, new_content, user_id=self.identity.user_id, category=category,
            importance=importance, entity_refs=entity_refs, metadata=metadata,
        )

    async def history(self, memory_id: str) -> list[Memory]:
        """The supersession chain of one of this user's memories, oldest first."""
        return await self.engine.get_history(memory_id, self.identity.user_id)

    async def delete(self, memory_id: str) -> None:
        """Delete one of this user's memories."""
        await self.engine.delete(memory_id, self.identity.user_id)

    async def clear(self, scope: ScopeLevel | str | None = None) -> int:
        """Delete memories, never more than the bound node: by default that node's
        (the whole user when only a user is bound, else only that session's, or
        agent's, or turn's); ``scope="user"`` (or "session", ...) widens up to
        that level of the bound identity. Returns how many were deleted."""
        i = self.identity
        depth = 3 if scope is None else ScopeLevel.parse(scope).depth
        return await self.engine.clear(
            i.user_id,
            i.session_id if depth >= 1 else None,
            i.agent_id if depth >= 2 else None,
            i.turn_id if depth >= 3 else None,
        )

    async def stats(self) -> dict[str, Any]:
        """Counts for this user: ``total``, ``categories``, ``scopes``, ..."""
        return await self.engine.stats(self.identity.user_id)


class SyncMemoryView:
    """The blocking form of :class:`MemoryView`; each call runs on the loop
    thread that owns the engine."""

    def __init__(self, view: MemoryView, runner: LoopThread) -> None:
        self._target = view
        self._runner = runner

    @property
    def identity(self) -> Identity:
        """The identity this view is bound to."""
        return self._target.identity

    search = sync_method(MemoryView.search)
    search_results = sync_method(MemoryView.search_results)
    add = sync_method(MemoryView.add)
    get = sync_method(MemoryView.get)
    get_all = sync_method(MemoryView.get_all)
    supersede = sync_method(MemoryView.supersede)
    history = sync_method(MemoryView.history)
    delete = sync_method(MemoryView.delete)
    clear = sync_method(MemoryView.clear)
    stats = sync_method(MemoryView.stats)


class AsyncMemoryView:
    """The async form of :class:`MemoryView` for code running on its own event
    loop (``AsyncOpenAI``, async frameworks): each call runs on the loop thread
    that owns the engine and is awaited without blocking the caller's loop."""

    def __init__(self, view: MemoryView, runner: LoopThread) -> None:
        self._target = view
        self._runner = runner

    @property
    def identity(self) -> Identity:
        """The identity this view is bound to."""
        return self._target.identity

    search = async_method(MemoryView.search)
    search_results = async_method(MemoryView.search_results)
    add = async_method(MemoryView.add)
    get = async_method(MemoryView.get)
    get_all = async_method(MemoryView.get_all)
    supersede = async_method(MemoryView.supersede)
    history = async_method(MemoryView.history)
    delete = async_method(MemoryView.delete)
    clear = async_method(MemoryView.clear)
    stats = async_method(MemoryView.stats)
