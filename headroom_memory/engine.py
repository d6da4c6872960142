"""HierarchicalMemory: the async orchestrator over the ports."""

from __future__ import annotations

import asyncio
import bisect
import logging
import uuid
from collections.abc import Awaitable, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal

import numpy as np

from .adapters.lru_cache import LRUMemoryCache
from .config import MemoryConfig
from .dedup import is_near_duplicate
from .errors import (
    ConfigurationError,
    EmbedderError,
    HeadroomMemoryError,
    InvalidInputError,
    MemoryClosedError,
    MemoryConflictError,
    MemoryNotFoundError,
    StorageError,
)
from .factory import build_embedder, build_indexes, build_store, check_dimension
from .models import Memory, MemoryCategory, NewMemory, ScopeLevel, SearchResult, updated
from .ports import (
    Embedder,
    MemoryCache,
    MemoryFilter,
    MemoryStore,
    RankingRow,
    TextIndex,
    VectorFilter,
    VectorIndex,
)
from .ranking import FusedCandidate, FusedCandidates, final_score, max_boost, reciprocal_rank_fusion
from .recall_tally import RecallTally, Tallies
from .restatements import BatchRestatements
from .scopes import is_visible, parent_scope, resolve_scope, validate_id
from .timeutil import to_utc, utc_now
from .validation import (
    check_content,
    check_entity_refs,
    check_importance,
    check_metadata,
    check_positive_int,
    check_similarity,
)

__all__ = ["HierarchicalMemory", "SearchMode"]

logger = logging.getLogger("headroom_memory")

SearchMode = Literal["hybrid", "vector", "text"]
_MODES = ("hybrid", "vector", "text")
# An import of at least this many new rows, and a fifth of the store, optimizes the
# text index after it: the merge rewrites the whole index, at most five times what the
# import added to it, so it adds a bounded share to a bulk load.
_OPTIMIZE_AFTER_ROWS = 10_000
_OPTIMIZE_AFTER_SHARE = 5
_ReadAhead = tuple[set[int], "asyncio.Future[dict[int, RankingRow]]"]  # labels, and the read of their rows


class HierarchicalMemory:
    """Hierarchical, temporal memory: scoped, versioned facts with hybrid search.

    Create it with :meth:`create` (it opens the database and loads the
    embedder), use it as an async context manager or call :meth:`close`::

        async with await HierarchicalMemory.create(MemoryConfig(db_path="m.db")) as memory:
            fact = await memory.add("User works at Google", user_id="alice")
            await memory.supersede(fact.id, "User now works at Anthropic")
            hits = await memory.search("employer", user_id="alice")

    Every method validates its arguments first and raises
    :class:`~headroom_memory.InvalidInputError` without changing anything.
    """

    def __init__(
        self,
        config: MemoryConfig,
        store: MemoryStore,
        vector_index: VectorIndex,
        text_index: TextIndex,
        embedder: Embedder,
        cache: MemoryCache | None,
        *,
        owns_embedder: bool = True,
    ) -> None:
        self.config = config
        self.store = store
        self.vector_index = vector_index
        self.text_index = text_index
        self.embedder = embedder
        self.cache = cache
        self._recalls = RecallTally()  # recalls counted since cached answers were read
        self._last_reader: tuple[tuple[Any, ...], VectorFilter] | None = None  # see _reader
        self._owns_embedder = owns_embedder
        self._closed = False

    # -- lifecycle -------------------------------------------------------

    @classmethod
    async def create(
        cls,
        config: MemoryConfig | None = None,
        *,
        store: MemoryStore | None = None,
        vector_index: VectorIndex | None = None,
        text_index: TextIndex | None = None,
        embedder: Embedder | None = None,
        cache: MemoryCache | None = None,
    ) -> HierarchicalMemory:
        """Open a memory: the configured (or given) adapters, ready to use.

        Adapters passed in replace the defaults built from ``config`` (SQLite,
        or PostgreSQL when ``config.postgres_url`` is set); default vector and
        text indexes exist for those two stores only. A given embedder stays
        the caller's: :meth:`close` does not close it.
        """
        config = config if config is not None else MemoryConfig()
        if not isinstance(config, MemoryConfig):
            raise ConfigurationError(f"config must be a MemoryConfig, got {type(config).__name__}")
        own_embedder = embedder is None
        if embedder is None:
            embedder = await build_embedder(config)
        else:
            check_dimension(config, embedder)
        try:
            if store is None:
                store = build_store(config)
            await store.open(model=embedder.model_name, dimension=embedder.dimension)
            if vector_index is None or text_index is None:
                default_vector, default_text = build_indexes(config, store, embedder.dimension)
                vector_index = vector_index or default_vector
                text_index = text_index or default_text
        except BaseException:
            if own_embedder:
                await embedder.close()
            if store is not None:
                await store.close()
            raise
        if cache is None and config.cache_enabled:
            cache = LRUMemoryCache(config.cache_max_size)
        return cls(config, store, vector_index, text_index, embedder, cache, owns_embedder=own_embedder)

    async def close(self) -> None:
        """Persist the vector index and release every adapter; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.vector_index.close()
        finally:
            try:
                await self.store.close()
            finally:
                if self._owns_embedder:
                    await self.embedder.close()

    async def __aenter__(self) -> HierarchicalMemory:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise MemoryClosedError("this HierarchicalMemory was closed; create a new one")

    # -- embedding -------------------------------------------------------

    async def _embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """Embeddings of ``texts``, served from the cache where possible."""
        rows: list[np.ndarray[Any, Any] | None] = [None] * len(texts)
        missing: list[int] = []
        for i, text in enumerate(texts):
            cached = self.cache.get(("embedding", text)) if self.cache is not None else None
            if cached is None:
                missing.append(i)
            else:
                rows[i] = cached
        if missing:
            fresh = await self._call_embedder([texts[i] for i in missing])
            for i, vector in zip(missing, fresh):
                vector.flags.writeable = False
                rows[i] = vector
                if self.cache is not None:
                    self.cache.put(("embedding", texts[i]), vector)
        if not rows:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.vstack([r for r in rows if r is not None])

    async def _call_embedder(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """The embedder's vectors for ``texts``; any failure or wrong shape is an EmbedderError."""
        try:
            vectors = await self.embedder.embed(list(texts))
        except HeadroomMemoryError:
            raise
        except Exception as exc:
            raise EmbedderError(f"the embedder {self.embedder.model_name!r} failed: {exc}") from exc
        array = np.asarray(vectors, dtype=np.float32)
        expected = (len(texts), self.embedder.dimension)
        if array.shape != expected or not np.isfinite(array).all():
            raise EmbedderError(f"the embedder {self.embedder.model_name!r} returned {array.shape} vectors "
                                f"(finite: {bool(np.isfinite(array).all())}); expected {expected}, finite")
        return array

    def _check_vector(self, value: Any, index: int) -> np.ndarray[Any, Any]:
        vector = np.asarray(value, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.embedder.dimension or not np.all(np.isfinite(vector)):
            raise InvalidInputError(
                f"item {index}: embedding must have {self.embedder.dimension} finite numbers, "
                f"got {vector.shape[0]}"
            )
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            raise InvalidInputError(f"item {index}: embedding is all zeros")
        return vector / norm

    # -- writes ----------------------------------------------------------

    def _draft(
        self,
        content: object,
        user_id: object,
        session_id: object,
        agent_id: object,
        turn_id: object,
        category: MemoryCategory | str,
        importance: object,
        entity_refs: object,
        metadata: object,
        scope: ScopeLevel | str | None,
        created_at: datetime | None,
        valid_from: datetime | None,
        ttl: timedelta | float | None = None,
    ) -> Memory:
        """A validated Memory (without embedding) ready to store."""
        text = check_content(content)
        user = validate_id(user_id, "user_id", required=True)
        ids = resolve_scope(
            scope,
            validate_id(session_id, "session_id"),
            validate_id(agent_id, "agent_id"),
            validate_id(turn_id, "turn_id"),
        )
        now = utc_now()
        created = to_utc(created_at, name="created_at") if created_at is not None else now
        valid = to_utc(valid_from, name="valid_from") if valid_from is not None else created
        assert user is not None
        return Memory(
            id=uuid.uuid4().hex,
            content=text,
            user_id=user,
            category=MemoryCategory.parse(category),
            importance=check_importance(importance),
            scope=ids.scope,
            session_id=ids.session_id,
            agent_id=ids.agent_id,
            turn_id=ids.turn_id,
            entity_refs=check_entity_refs(entity_refs),
            metadata=check_metadata(metadata),
            created_at=created,
            valid_from=valid,
            valid_until=self._expiry(valid, ttl, MemoryCategory.parse(category)),
        )

    def _expiry(self, start: datetime, ttl: timedelta | float | None, category: MemoryCategory) -> datetime | None:
        """When a memory expires: ``start + ttl``; CONTEXT memories default to ``config.context_ttl``."""
        if ttl is None and category is MemoryCategory.CONTEXT:
            ttl = self.config.context_ttl
        if ttl is None:
            return None
        if isinstance(ttl, bool) or not isinstance(ttl, (timedelta, int, float)):
            raise InvalidInputError(f"ttl must be a timedelta or seconds, got {ttl!r}")
        span = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)
        if span <= timedelta(0):
            raise InvalidInputError(f"ttl must be positive, got {ttl!r}")
        return start + span

    async def add(
        self,
        content: str,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        category: MemoryCategory | str = MemoryCategory.FACT,
        importance: float = 0.5,
        entity_refs: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        scope: ScopeLevel | str | None = None,
        *,
        created_at: datetime | None = None,
        valid_from: datetime | None = None,
        dedup: bool = True,
        ttl: timedelta | float | None = None,
    ) -> Memory:
        """Store one memory and return it.

        :param ttl: lifetime (a timedelta or seconds) after ``valid_from``; an
            expired memory leaves search, injection and default listings like a
            superseded one, and stays in history. CONTEXT memories default to
            ``config.context_ttl``.

        A near-duplicate of a current memory at the same scope node and category
        (see :mod:`headroom_memory.dedup`) is not stored again: the existing
        memory is reinforced (one more access, importance nudged up) and
        returned with ``merged=True``. ``dedup=False`` always stores.

        :param scope: the level; by default the deepest whose id is given (turn,
            agent, session, else user). Ids below the level are not stored.
        :param created_at: / :param valid_from: past timestamps for imports
            (naive datetimes are UTC); both default to now.
        """
        self._check_open()
        draft = self._draft(content, user_id, session_id, agent_id, turn_id, category,
                            importance, entity_refs, metadata, scope, created_at, valid_from, ttl)
        vector = (await self._embed([draft.content]))[0]
        duplicate = await self._stored_duplicate(draft, vector) if dedup else None
        if duplicate is not None:
            return await self._reinforce(duplicate, draft)
        memory = replace(draft, embedding=vector)
        await self.store.insert([memory])
        logger.debug("added memory %s for %s at %s scope", memory.id, memory.user_id, memory.scope.value)
        return memory

    async def _stored_duplicate(self, draft: Memory, vector: np.ndarray[Any, Any]) -> Memory | None:
        """A current memory at the same node and category that ``draft`` restates."""
        if not self.config.dedup_enabled:
            return None
        node = VectorFilter(user_id=draft.user_id, session_id=draft.session_id, agent_id=draft.agent_id,
                            turn_id=draft.turn_id, categories=[draft.category])
        hits = await self.vector_index.search(vector, node, 5)
        found = await self.store.get_by_labels([label for label, _ in hits])
        for label, similarity in hits:
            old = found.get(label)
            if old is not None and _same_node(old, draft) and is_near_duplicate(
                    draft.content, old.content, similarity, self.config.dedup_similarity):
                return old
        return None

    async def _node_has_memories(self, memory: Memory, known: dict[tuple[Any, ...], bool]) -> bool:
        """Whether the store held memories visible at ``memory``'s node when this
        import first met that node (later rows of the import are checked in memory)."""
        key = (memory.user_id, memory.session_id, memory.agent_id, memory.turn_id, memory.category)
        if key not in known:
            node = VectorFilter(user_id=memory.user_id, session_id=memory.session_id, agent_id=memory.agent_id,
                                turn_id=memory.turn_id, categories=[memory.category])
            known[key] = await self.store.count_visible(node, 1) > 0
        return known[key]

    async def _reinforce(self, existing: Memory, restated: Memory) -> Memory:
        """Count a restatement of ``existing`` instead of storing ``restated``."""
        importance = min(1.0, max(existing.importance, restated.importance) + self.config.reinforce_step)
        now = utc_now()
        await self.store.reinforce(existing.id, now, importance)
        logger.debug("merged a restatement into memory %s", existing.id)
        return replace(existing, importance=importance, access_count=existing.access_count + 1,
                       last_accessed=now, merged=True)

    async def add_many(
        self,
        items: Iterable[NewMemory | Mapping[str, Any] | str],
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        category: MemoryCategory | str = MemoryCategory.FACT,
        importance: float = 0.5,
        scope: ScopeLevel | str | None = None,
        batch_size: int | None = None,
        progress: bool = False,
        dedup: bool = True,
        ttl: timedelta | float | None = None,
    ) -> list[Memory]:
        """Store many memories with batched embedding; returns them in input order.

        Items are :class:`NewMemory`, mappings with the same keys, or plain
        strings; their fields override the keyword defaults. Given
        ``created_at``/``valid_from`` are kept, so importing a past conversation
        is deterministic. Every item is validated before anything is written;
        each batch is one transaction. ``progress=True`` shows a tqdm bar.
        Near-duplicates (of stored memories or of earlier items) are merged as
        in :meth:`add`: their place in the result holds the reinforced memory.
        An import that adds at least 10,000 memories and a fifth of the store
        ends with :meth:`optimize`.
        """
        self._check_open()
        size = check_positive_int(batch_size or self.config.embedder_batch_size, "batch_size")
        drafts: list[Memory] = []
        given: list[Any] = []
        for index, raw in enumerate(items):
            item = _as_new_memory(raw, index)
            try:
                drafts.append(self._draft(
                    item.content,
                    item.user_id if item.user_id is not None else user_id,
                    item.session_id if item.session_id is not None else session_id,
                    item.agent_id if item.agent_id is not None else agent_id,
                    item.turn_id if item.turn_id is not None else turn_id,
                    item.category if item.category is not None else category,
                    item.importance if item.importance is not None else importance,
                    item.entity_refs, item.metadata,
                    item.scope if item.scope is not None else scope,
                    item.created_at, item.valid_from, ttl,
                ))
            except InvalidInputError as exc:
                raise InvalidInputError(f"item {index}: {exc}") from None
            given.append(None if item.embedding is None else self._check_vector(item.embedding, index))
        stored: list[Memory] = []
        inserted = 0
        merging = dedup and self.config.dedup_enabled
        kept = BatchRestatements(self.config.dedup_similarity)
        nodes_seen: dict[tuple[Any, ...], bool] = {}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(drafts), desc="adding memories", unit="mem")
        starts = list(range(0, len(drafts), size))
        # The next batch is embedded while this one is checked and stored.
        pending = asyncio.ensure_future(self._batch_vectors(drafts, given, 0, size)) if starts else None
        try:
            for number, start in enumerate(starts):
                assert pending is not None
                try:
                    vectors = await pending
                except EmbedderError as exc:
                    raise EmbedderError(f"{exc}; the first {start} of {len(drafts)} items were stored, "
                                        "the rest were not") from exc
                pending = None
                if number + 1 < len(starts):
                    pending = asyncio.ensure_future(self._batch_vectors(drafts, given, starts[number + 1], size))
                batch = drafts[start : start + size]
                memories = [replace(m, embedding=v) for m, v in zip(batch, vectors)]
                fresh_rows: list[Memory] = []
                restated: list[tuple[Memory, Memory]] = []
                # Restatements of stored memories are counted after the batch's
                # search for them: each count is a write, and a write makes the
                # next search read the node's embeddings again.
                restating: list[tuple[int, Memory, Memory]] = []  # (place in stored, stored twin, restatement)
                if merging:
                    kept.compare(memories)
                for place, (memory, vector) in enumerate(zip(memories, vectors)):
                    twin = kept.find(place) if merging else None
                    if twin is not None:
                        restated.append((twin, memory))
                        stored.append(replace(twin, merged=True))
                        continue
                    if merging and await self._node_has_memories(memory, nodes_seen):
                        twin = await self._stored_duplicate(memory, vector)
                    if twin is not None:
                        restating.append((len(stored), twin, memory))
                        stored.append(twin)  # replaced by the reinforced twin below
                        continue
                    fresh_rows.append(memory)
                    stored.append(memory)
                    if merging:
                        kept.keep(place)
                await self.store.insert(fresh_rows)
                inserted += len(fresh_rows)
                latest: dict[str, Memory] = {}  # a twin restated twice counts both
                for place, twin, memory in restating:
                    stored[place] = latest[twin.id] = await self._reinforce(latest.get(twin.id, twin), memory)
                for twin, memory in restated:
                    await self._reinforce(twin, memory)
                if bar is not None:
                    bar.update(len(memories))
        finally:
            if pending is not None:
                await _discard(pending)
            if bar is not None:
                bar.close()
        if inserted >= _OPTIMIZE_AFTER_ROWS and inserted * _OPTIMIZE_AFTER_SHARE >= await self.store.max_label():
            try:
                await self.optimize()
            except StorageError as exc:  # what was imported is stored; only the merge failed
                logger.warning("the text index was not optimized after an import: %s", exc)
        return stored

    async def _batch_vectors(
        self, drafts: Sequence[Memory], given: Sequence[np.ndarray[Any, Any] | None], start: int, size: int
    ) -> list[np.ndarray[Any, Any]]:
        """The vectors of ``drafts[start:start + size]``: the given ones, the rest embedded."""
        vectors = given[start : start + size]
        todo = [drafts[start + i].content for i, v in enumerate(vectors) if v is None]
        fresh = iter(await self._call_embedder(todo) if todo else [])
        return [v if v is not None else next(fresh) for v in vectors]

    async def restore(
        self, memories: Sequence[tuple[Memory, np.ndarray[Any, Any] | None]], *, batch_size: int = 500
    ) -> int:
        """Write memories exactly as exported (ids, timestamps, supersession links,
        counters), computing missing embeddings; for imports and backups.

        Raises MemoryConflictError, writing nothing, when an id is already stored.
        """
        self._check_open()
        ids = [m.id for m, _ in memories]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("the memories to restore repeat an id")
        existing = [mid for mid in ids if await self.store.get(mid) is not None]
        if existing:
            raise MemoryConflictError(f"{len(existing)} memories already exist, e.g. {existing[0]!r}")
        for start in range(0, len(memories), batch_size):
            batch = memories[start : start + batch_size]
            vectors = [None if v is None else self._check_vector(v, start + i) for i, (_, v) in enumerate(batch)]
            todo = [i for i, v in enumerate(vectors) if v is None]
            if todo:
                fresh = await self._call_embedder([batch[i][0].content for i in todo])
                for i, vector in zip(todo, fresh):
                    vectors[i] = vector
            await self.store.insert([replace(m, embedding=v) for (m, _), v in zip(batch, vectors)])
        return len(memories)

    async def embeddings(self, memory_ids: Sequence[str]) -> dict[str, np.ndarray[Any, Any]]:
        """The stored embedding of each memory id (unknown ids are left out)."""
        self._check_open()
        return await self.store.embeddings_by_id(list(memory_ids))

    async def remember(
        self,
        content: str,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        category: MemoryCategory | str = MemoryCategory.FACT,
        importance: float = 0.5,
        entity_refs: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        scope: ScopeLevel | str | None = None,
    ) -> Memory:
        """Shorthand for :meth:`add`."""
        return await self.add(content, user_id, session_id, agent_id, turn_id, category=category,
                              importance=importance, entity_refs=entity_refs, metadata=metadata, scope=scope)

    async def get(self, memory_id: str, user_id: str | None = None) -> Memory:
        """One memory by id. With ``user_id``, another user's id is not found."""
        self._check_open()
        mid = validate_id(memory_id, "memory_id", required=True)
        owner = validate_id(user_id, "user_id")
        assert mid is not None
        memory = await self.store.get(mid)
        if memory is None or (owner is not None and memory.user_id != owner):
            raise MemoryNotFoundError(f"no memory with id {memory_id!r}")
        return memory

    async def supersede(
        self,
        old_memory_id: str,
        new_content: str,
        *,
        user_id: str | None = None,
        category: MemoryCategory | str | None = None,
        importance: float | None = None,
        entity_refs: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        valid_from: datetime | None = None,
        ttl: timedelta | float | None = None,
    ) -> Memory:
        """Replace a current memory with a new version; nothing is deleted.

        The old memory is closed (``valid_until`` = the new one's
        ``valid_from``, ``superseded_by`` = its id); the new one keeps the old
        scope and ids, and its category, importance, entity refs and metadata
        unless given; ``ttl`` works as in :meth:`add`. Raises
        MemoryConflictError if the old memory is no longer current (for example
        another process superseded it first).
        """
        old = await self.get(old_memory_id, user_id)
        text = check_content(new_content, "new_content")
        start = to_utc(valid_from, name="valid_from") if valid_from is not None else utc_now()
        if start < old.valid_from:
            raise InvalidInputError("valid_from of the new version is before the old version's")
        kind = old.category if category is None else MemoryCategory.parse(category)
        new = Memory(
            id=uuid.uuid4().hex,
            content=text,
            user_id=old.user_id,
            category=kind,
            importance=old.importance if importance is None else check_importance(importance),
            scope=old.scope,
            session_id=old.session_id,
            agent_id=old.agent_id,
            turn_id=old.turn_id,
            entity_refs=old.entity_refs if entity_refs is None else check_entity_refs(entity_refs),
            metadata=old.metadata if metadata is None else check_metadata(metadata),
            created_at=utc_now(),
            valid_from=start,
            valid_until=self._expiry(start, ttl, kind),
            supersedes=old.id,
        )
        vector = (await self._embed([text]))[0]
        new = replace(new, embedding=vector)
        await self.store.supersede(old.id, new)
        logger.debug("memory %s superseded by %s", old.id, new.id)
        return new

    async def promote(self, memory_id: str, *, user_id: str | None = None, reason: str = "manual") -> Memory:
        """Move a memory one scope level up (turn to agent/session, session to user).

        The promotion is recorded: the memory is superseded by a copy at the
        broader level whose ``promoted_from`` names the old level, and the
        reason is kept in its metadata under ``"promotion_reason"``.
        """
        old = await self.get(memory_id, user_id)
        target = parent_scope(old)
        if target is None:
            raise InvalidInputError(f"memory {memory_id!r} is already at user scope")
        embedding = (await self.store.embeddings_by_id([old.id]))[old.id]  # same text: reuse, not re-embed
        new = replace(
            old,
            id=uuid.uuid4().hex,
            scope=target.scope,
            session_id=target.session_id,
            agent_id=target.agent_id,
            turn_id=target.turn_id,
            metadata={**old.metadata, "promotion_reason": reason},
            created_at=utc_now(),
            valid_from=utc_now(),
            valid_until=None,
            supersedes=old.id,
            superseded_by=None,
            promoted_from=old.scope,
            embedding=embedding,
        )
        await self.store.supersede(old.id, new)
        logger.info("promoted memory %s from %s to %s (%s)", old.id, old.scope.value, target.scope.value, reason)
        return new

    async def end_turn(
        self, user_id: str, session_id: str | None = None, agent_id: str | None = None,
        turn_id: str | None = None,
    ) -> list[Memory]:
        """Close a turn: its TURN memories important enough (``bubble_importance``)
        are promoted one level; the others expire (they stay in history).
        Returns the promoted memories."""
        self._check_open()
        turn = validate_id(turn_id, "turn_id", required=True)
        flt = MemoryFilter(user_id=validate_id(user_id, "user_id", required=True),
                           session_id=session_id, agent_id=agent_id, turn_id=turn,
                           scopes=[ScopeLevel.TURN])
        working = [m for m in await self.store.query(flt)
                   if m.session_id == session_id and m.agent_id == agent_id]
        promoted = [await self.promote(m.id, reason="important at end of turn")
                    for m in working if m.importance >= self.config.bubble_importance]
        rest = [m.id for m in working if m.importance < self.config.bubble_importance]
        await self.store.expire(rest, utc_now())
        return promoted

    async def delete(self, memory_id: str, user_id: str | None = None) -> None:
        """Delete one memory (its row, vector and text entry); its chain is
        relinked around it. With ``user_id``, another user's id is not found."""
        memory = await self.get(memory_id, user_id)
        await self.store.delete([memory.id])

    async def clear(
        self,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
    ) -> int:
        """Delete a user's memories, never more than asked: with ``session_id``
        only that session's (SESSION, AGENT and TURN memories in it), with
        ``agent_id`` or ``turn_id`` only those. Returns how many were deleted."""
        self._check_open()
        user = validate_id(user_id, "user_id", required=True)
        assert user is not None
        count = await self.store.delete_scope(
            user, validate_id(session_id, "session_id"), validate_id(agent_id, "agent_id"),
            validate_id(turn_id, "turn_id"),
        )
        logger.debug("cleared %d memories of %s", count, user)
        return count

    # -- reads -----------------------------------------------------------

    async def query(self, filter: MemoryFilter) -> list[Memory]:
        """List memories matching ``filter`` exactly (no scope inheritance)."""
        self._check_open()
        if not isinstance(filter, MemoryFilter):
            raise InvalidInputError(f"query() takes a MemoryFilter, got {type(filter).__name__}")
        return await self.store.query(filter)

    async def nodes(self, filter: MemoryFilter) -> list[tuple[str, str | None, str | None, str | None]]:
        """The distinct (user, session, agent, turn) ids holding memories that
        match ``filter``, sorted; ids below a memory's level are None."""
        self._check_open()
        if not isinstance(filter, MemoryFilter):
            raise InvalidInputError(f"nodes() takes a MemoryFilter, got {type(filter).__name__}")
        return await self.store.nodes(filter)

    async def get_history(self, memory_id: str, user_id: str | None = None) -> list[Memory]:
        """The whole supersession chain through a memory, oldest first (from either end)."""
        memory = await self.get(memory_id, user_id)
        return await self.store.history(memory.id)

    async def visible(
        self,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        *,
        include_superseded: bool = False,
    ) -> list[Memory]:
        """Every memory a reader at (user, session, agent, turn) sees, oldest first."""
        self._check_open()
        reader = VectorFilter(user_id=user_id, session_id=session_id, agent_id=agent_id, turn_id=turn_id)
        everything = await self.store.query(
            MemoryFilter(user_id=user_id, include_superseded=include_superseded)
        )
        return [m for m in everything if is_visible(m, reader)]

    async def stats(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
    ) -> dict[str, Any]:
        """Counts: ``total`` current memories, ``categories`` and ``scopes`` of
        those, ``superseded`` and ``expired`` versions, ``merged`` adds."""
        self._check_open()
        return await self.store.stats(
            MemoryFilter(user_id=user_id, session_id=session_id, agent_id=agent_id, turn_id=turn_id)
        )

    async def search(
        self,
        query: str,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        top_k: int = 5,
        min_similarity: float = 0.0,
        categories: Sequence[MemoryCategory | str] | None = None,
        *,
        min_importance: float | None = None,
        mode: SearchMode = "hybrid",
        subtree: bool = False,
    ) -> list[SearchResult]:
        """Find the memories a reader sees that best match ``query``.

        ``mode="hybrid"`` (default) fuses semantic and keyword ranks by
        reciprocal-rank fusion, boosted by importance and recency; ``"vector"``
        and ``"text"`` use one of them. Results are current memories on the
        reader's scope path only, ordered by ``score``; each has the cosine
        ``similarity``, and those below ``min_similarity`` are left out.
        ``subtree=True`` searches every memory at or below the given node
        instead (e.g. ``user_id`` alone: all the user's sessions and agents).

        With the cache on (``config.cache_enabled``), query embeddings are
        cached, and on SQLite so are results: a repeated search is answered
        from the cache for as long as no memory changed, in this process or
        any other, and none of its results expired (the recall counts in a cached
        answer include this process's recalls since it was cached, not other processes').
        """
        results, then = await self._found(query, user_id, session_id, agent_id, turn_id, top_k, min_similarity,
                                          categories, min_importance, mode, subtree)
        return self._recalls.caught_up(results, then)

    async def _found(
        self, query: str, user_id: str, session_id: str | None, agent_id: str | None, turn_id: str | None,
        top_k: int, min_similarity: float, categories: Sequence[MemoryCategory | str] | None,
        min_importance: float | None, mode: SearchMode, subtree: bool,
    ) -> tuple[Sequence[SearchResult], Tallies | None]:
        """:meth:`search`'s results as read or cached, and for cached ones the
        recall tallies they were cached with (None: read now, nothing to catch up)."""
        self._check_open()
        if not isinstance(query, str):
            raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
        if mode not in _MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        top_k = check_positive_int(top_k, "top_k")
        threshold = check_similarity(min_similarity)
        reader = self._reader(user_id, session_id, agent_id, turn_id, categories, min_importance, subtree)
        if not query.strip():
            return [], None
        key = ("search", query, reader, top_k, threshold, mode)
        entry = None if self.cache is None else self.cache.get(key)
        token: Hashable | None = _UNREAD  # read now only to check a cached answer (see _ranked)
        if entry is not None:
            token = await self._change_token()
            cached = _unexpired(entry, token)
            if cached is not None:
                self._recalls.follow(token)  # it counts only while a cache holds answers (see recall)
                return cached
        results, token = await self._ranked(query, reader, top_k, threshold, mode, token)
        self._recalls.follow(token)
        if token is not None and self.cache is not None:
            self.cache.put(key, (token, tuple(results), self._recalls.tallies(results)))
        return results, None

    async def _change_token(self) -> Hashable | None:
        """The store's change token; None (no result caching) for a store
        written before the port had ``change_token``."""
        change_token = getattr(self.store, "change_token", None)
        return None if change_token is None else await change_token()

    def _reader(
        self, user_id: str, session_id: str | None, agent_id: str | None, turn_id: str | None,
        categories: Sequence[MemoryCategory | str] | None, min_importance: float | None, subtree: bool,
    ) -> VectorFilter:
        """The reader of a search; the last one again when nothing differs (an
        assistant searches for the same reader turn after turn)."""
        # Only ids are compared: a list of categories may change in place, and
        # True == 1 (a reader checked with subtree=True must not pass subtree=1).
        plain = categories is None and min_importance is None and (subtree is True or subtree is False)
        ids = (user_id, session_id, agent_id, turn_id, subtree)
        last = self._last_reader
        if plain and last is not None and last[0] == ids:
            return last[1]
        reader = VectorFilter(user_id=user_id, session_id=session_id, agent_id=agent_id, turn_id=turn_id,
                              categories=categories, min_importance=min_importance, subtree=subtree)
        if plain:
            self._last_reader = (ids, reader)
        return reader

    async def _ranked(
        self, query: str, reader: VectorFilter, top_k: int, threshold: float, mode: SearchMode,
        token: Hashable | None,
    ) -> tuple[list[SearchResult], Hashable | None]:
        """Hybrid (or one-sided) retrieval, fusion and ranking for :meth:`search`,
        and the store's change token the indexes read under (what was committed
        before it is found): ``token`` when it was read to check a cached answer,
        else read here.

        The token is read once the query is embedded: not during the embedding
        (the embedder's threads need both cores) nor before it unless a cached
        answer needs it. Read first, right after the pause before a question, it
        took 0.13 ms on the event loop (p50); read after the embedding, searches
        were 0.09-0.12 ms faster (medians of paired differences, 300 questions
        each way; 1M-memory store, 100,000-memory user, 2 cores)."""
        pool = max(4 * top_k, 40)
        vector = (await self._embed([query]))[0]
        if token is _UNREAD:
            token = await self._change_token()
        # The keyword search runs while the vector index is searched; if it still
        # runs then, the best vector hits' ranking rows are read beside it.
        keyword = None
        if mode != "vector":
            keyword = asyncio.ensure_future(self.text_index.search(query, reader, pool, token=token))
        ranked: dict[str, list[tuple[int, float]]] = {}
        sims: dict[int, float] = {}
        ahead: _ReadAhead | None = None
        try:
            if mode in ("hybrid", "vector"):
                hits = await self.vector_index.search(vector, reader, pool, token=token)
                ranked["vector"] = hits
                sims.update(hits)
                if keyword is not None and not keyword.done():
                    best = [label for label, _ in hits[:top_k + 5]]
                    ahead = (set(best), asyncio.ensure_future(self.store.ranking_rows(best, vector, beside=True)))
            if keyword is not None:
                ranked["text"] = await keyword
            fused = reciprocal_rank_fusion(
                ranked, {"vector": self.config.vector_weight, "text": self.config.text_weight},
                k=self.config.rrf_k,
            )
            scored = await self._scored(fused, vector, sims, threshold, top_k + 5, ahead)
        finally:
            for task in (keyword, None if ahead is None else ahead[1]):
                if task is not None:
                    await _discard(task)
        results: list[SearchResult] = []
        for score, candidate, row in scored:
            memory = row.load()
            if memory.is_current and is_visible(memory, reader):  # it may have changed since it was found
                results.append(SearchResult(memory, sims[candidate.label], score,
                                            candidate.vector_rank, candidate.text_rank))
                if len(results) == top_k:
                    break
        return results, token

    async def _scored(
        self, fused: FusedCandidates, vector: np.ndarray[Any, Any], sims: dict[int, float],
        threshold: float, wanted: int, ahead: _ReadAhead | None,
    ) -> list[tuple[float, FusedCandidate, RankingRow]]:
        """(final score, candidate, its row) of the best ``wanted`` fused
        candidates, best first, read from the store in fused order until the
        next candidate's fused score times the most importance and recency can
        add cannot reach the ``wanted``-th best score so far: no later
        candidate can, so their rows are never read. The first read takes every
        candidate that can beat the ``wanted``-th fused score (boosts are at
        least 1), which is usually all it takes; later ones ``wanted`` at a time.
        Candidates below ``threshold`` similarity are left out; ``sims`` gains
        the similarity of every candidate read. ``ahead``: the labels whose rows
        are being read already, and that read; a batch needing any of them
        waits for it while the store reads the batch's others."""
        config = self.config
        ceiling = max_boost(config.importance_weight, config.recency_weight)
        now = utc_now()
        scored: list[tuple[float, FusedCandidate, RankingRow]] = []
        rows: dict[int, RankingRow] = {}
        start = 0
        size = wanted if len(fused) <= wanted else bisect.bisect_right(
            fused, -fused[wanted - 1].rrf / ceiling, key=lambda c: -c.rrf)
        while start < len(fused) and (len(scored) < wanted or fused[start].rrf * ceiling >= scored[wanted - 1][0]):
            batch, start, size = fused[start:start + size], start + size, wanted
            pending = set() if ahead is None else ahead[0]
            unread = [c.label for c in batch if c.label not in rows and c.label not in pending]
            if ahead is not None and any(c.label in pending for c in batch):
                rows.update(await _joined(self.store.ranking_rows(unread, vector), ahead[1]))
                ahead = None
            elif unread:
                rows.update(await self.store.ranking_rows(unread, vector))
            for candidate in batch:
                row = rows.get(candidate.label)
                if row is None or sims.setdefault(candidate.label, row.similarity) < threshold:
                    continue  # the vector search's similarity is kept when it has one
                score = final_score(
                    candidate.rrf, row.importance, (now - row.seen).total_seconds() / 86_400,
                    importance_weight=config.importance_weight, recency_weight=config.recency_weight,
                    half_life_days=config.recency_half_life_days,
                )
                scored.append((score, candidate, row))
            scored.sort(key=lambda entry: -entry[0])
        return scored[:wanted]

    async def text_search(
        self,
        query: str,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        top_k: int = 10,
        categories: Sequence[MemoryCategory | str] | None = None,
    ) -> list[SearchResult]:
        """Keyword (BM25) search over the memories a reader sees. Any text is
        safe: operators and punctuation in ``query`` are matched as words."""
        return await self.search(query, user_id, session_id, agent_id, turn_id, top_k=top_k,
                                 min_similarity=-1.0, categories=categories, mode="text")

    async def recall(
        self,
        query: str,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        turn_id: str | None = None,
        top_k: int = 5,
        min_similarity: float = 0.0,
        categories: Sequence[MemoryCategory | str] | None = None,
    ) -> list[Memory]:
        """Search and count the hits as recalled; returns the memories.

        A narrower-than-user memory recalled ``bubble_min_recalls`` times is
        promoted one level (recorded, see :meth:`promote`).
        """
        results, then = await self._found(query, user_id, session_id, agent_id, turn_id, top_k, min_similarity,
                                          categories, None, "hybrid", False)
        before = [r.memory.access_count for r in results]
        if then is not None:  # cached: add this process's recalls counted since
            before = [count + missed for count, missed in zip(before, self._recalls.since(results, then))]
        now = utc_now()
        ids = [r.memory.id for r in results]
        # Each count is one more than before, so it is not waited for unless a
        # memory may be promoted by it (user-level ones are not).
        promotable = any(r.memory.scope is not ScopeLevel.USER for r in results)
        counts = await self.store.record_access(ids, now, wait=promotable) or {}
        if self.cache is not None and not self._recalls.count(ids, now):
            self.cache.clear()  # too many recalls to tally: cached answers are read again
        recalled: list[Memory] = []
        for result, count in zip(results, before):
            memory = result.memory
            memory = updated(memory, access_count=counts.get(memory.id, count + 1), last_accessed=now)
            if memory.scope is not ScopeLevel.USER and memory.access_count >= self.config.bubble_min_recalls:
                memory = await self.promote(memory.id, reason=f"recalled {memory.access_count} times")
            recalled.append(memory)
        return recalled

    # -- raw conversation history ---------------------------------------

    async def append_messages(
        self, user_id: str, session_id: str, messages: Sequence[Mapping[str, Any]]
    ) -> None:
        """Append raw chat messages (JSON-serialisable mappings) to a session's history.

        This is the verbatim conversation kept beside the memories (for chat
        histories of the integrations); it is not searched."""
        self._check_open()
        user = validate_id(user_id, "user_id", required=True)
        session = validate_id(session_id, "session_id", required=True)
        assert user is not None and session is not None
        if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
            raise InvalidInputError("messages must be a list of mappings")
        checked = [check_metadata(m) if isinstance(m, Mapping) else None for m in messages]
        if any(m is None for m in checked):
            raise InvalidInputError("every message must be a mapping")
        await self.store.append_messages(user, session, [m for m in checked if m is not None])

    async def get_messages(self, user_id: str, session_id: str) -> list[dict[str, Any]]:
        """A session's raw chat messages, oldest first."""
        self._check_open()
        user = validate_id(user_id, "user_id", required=True)
        session = validate_id(session_id, "session_id", required=True)
        assert user is not None and session is not None
        return await self.store.get_messages(user, session)

    async def clear_messages(self, user_id: str, session_id: str) -> int:
        """Delete a session's raw chat messages (its memories stay); returns how many."""
        self._check_open()
        user = validate_id(user_id, "user_id", required=True)
        session = validate_id(session_id, "session_id", required=True)
        assert user is not None and session is not None
        return await self.store.clear_messages(user, session)

    async def optimize(self) -> None:
        """Make searches cheaper after many writes; no memory changes.

        The default SQLite text index (FTS5) gains a segment with every write
        and merges them only a few at a time, so a query looks each term up in
        each of them; this merges them into one (it rewrites the index in one
        transaction, which writes wait for and searches do not: worth it after
        a bulk import, or now and then in a large store, like ``VACUUM``). PostgreSQL refreshes the planner's statistics
        (``ANALYZE``). A text index without such a step is left as it is."""
        self._check_open()
        optimize = getattr(self.text_index, "optimize", None)
        if optimize is not None:
            await optimize()

    async def rebuild_index(self) -> int:
        """Rebuild the vector index from the stored embeddings; returns its size."""
        self._check_open()
        return await self.vector_index.rebuild()


_UNREAD: Hashable = object()  # a change token not read yet (None is a store's "no token")
_CachedAnswer = tuple[Hashable, tuple[SearchResult, ...], Tallies]  # (token, results, their tallies)


def _unexpired(entry: _CachedAnswer, token: Hashable | None) -> tuple[Sequence[SearchResult], Tallies] | None:
    """A cached answer's results and the recall tallies they were cached with,
    while no memory changed since (the same store token) and none of them has
    expired; otherwise None."""
    cached_under, results, tallies = entry
    if token is None or cached_under != token or any(r.memory.is_expired for r in results):
        return None
    return results, tallies


async def _joined(
    read: Awaitable[dict[int, RankingRow]], running: asyncio.Future[dict[int, RankingRow]]
) -> dict[int, RankingRow]:
    """The rows of a read started now and of one ``running`` already, the
    first read while the second completes."""
    task = asyncio.ensure_future(read)
    try:
        return {**await running, **await task}
    finally:
        await _discard(task)


async def _discard(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` if it still runs, wait for it to end and collect its
    exception (so none is logged as never retrieved). A cancellation of the
    caller itself still propagates."""
    if not task.done():
        task.cancel()
        await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


def _same_node(a: Memory, b: Memory) -> bool:
    """Same user, scope level and ids."""
    return (a.user_id, a.scope, a.session_id, a.agent_id, a.turn_id) == (
        b.user_id, b.scope, b.session_id, b.agent_id, b.turn_id)


def _as_new_memory(raw: NewMemory | Mapping[str, Any] | str, index: int) -> NewMemory:
    if isinstance(raw, NewMemory):
        return raw
    if isinstance(raw, str):
        return NewMemory(content=raw)
    if isinstance(raw, Mapping):
        try:
            return NewMemory(**raw)
        except TypeError as exc:
            raise InvalidInputError(f"item {index}: {exc}") from None
    raise InvalidInputError(f"item {index} must be a NewMemory, a mapping or a string, got {type(raw).__name__}")
