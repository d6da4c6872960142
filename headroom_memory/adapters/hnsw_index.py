"""The default VectorIndex: hnswlib, persisted beside the database, derived from it.

SQLite is the source of truth. The index holds one vector per row label and
knows the highest label it covers; before every search it catches up on rows
committed after that, by this process or any other. A missing, stale, foreign or
corrupt index file (its checksum is kept in a sidecar) is rebuilt from the
stored embeddings, never trusted.

Search is exact for the reader's visible set: a visible set of up to
``exact_search_threshold`` memories is scored exhaustively; a larger one is
searched with HNSW, asking for as many neighbours as the user's share of the
index and the share of the user's the reader saw last time say will hold
enough, kept if they are the user's (their labels are kept in memory) and
visible (checked against the store). A user
too rare in the index for that, or a reader who sees too few of the
candidates, is scored exhaustively too. A user who holds many of a large
store's memories is searched in a graph of their own (:mod:`.user_graphs`).

Graphs are grown, saved and queried on one worker thread, one job at a time, so
a graph is never read while it is written; a search's keyword half runs on the
event loop meanwhile (hnswlib releases the GIL while it searches).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import hnswlib
import numpy as np

from ..errors import MemoryClosedError
from ..ports import VectorFilter
from .hnsw_graph import GraphSettings, add_rows, load_graph, nearest, save_graph
from .sqlite_store import SQLiteMemoryStore
from .user_graphs import UserGraphs

__all__ = ["HNSWVectorIndex"]

logger = logging.getLogger("headroom_memory")

T = TypeVar("T")
_SYNC_BATCH = 4096
_VisibleSet = tuple[list[int], np.ndarray[Any, Any]]  # labels and their embeddings
_VISIBLE_CACHE_BYTES = 64 << 20  # embeddings of small visible sets kept between searches ...
_VISIBLE_CACHE_ENTRIES = 4096  # ... for at most this many readers
_MAX_CANDIDATES = 8192  # HNSW candidates tried before filtering to the visible set
_OWNED_LABELS_KEPT = 1_000_000  # labels of large readers' users kept in memory (~70 bytes each)
_SEEN_SHARES_KEPT = 4096  # the share of their user's candidates each of this many readers saw last
_SPARE = 1.25  # HNSW is asked for this many times the candidates expected to hold k visible ones


def _top_k(
    vector: np.ndarray[Any, Any], labels: Sequence[int],
    embeddings: Sequence[np.ndarray[Any, Any]] | np.ndarray[Any, Any], k: int,
) -> list[tuple[int, float]]:
    """Exact cosine top-k of unit vectors (a list or a matrix of them), best first."""
    if not len(labels):
        return []
    matrix = embeddings if isinstance(embeddings, np.ndarray) else np.vstack(embeddings)
    sims = matrix @ np.asarray(vector, dtype=np.float32)
    top = min(k, len(labels))
    best = np.argpartition(-sims, top - 1)[:top]
    best = best[np.argsort(-sims[best], kind="stable")]
    return [(int(labels[i]), float(sims[i])) for i in best]


class HNSWVectorIndex:
    """An hnswlib index over the embeddings of a :class:`SQLiteMemoryStore`.

    :param store: the store the index is derived from.
    :param dimension: vector length.
    :param path: index file (``None`` keeps it in memory only).
    :param exact_search_threshold: visible sets up to this size are scored exactly.
    """

    def __init__(
        self,
        store: SQLiteMemoryStore,
        dimension: int,
        path: str | Path | None = None,
        *,
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 50,
        exact_search_threshold: int = 2_000,
    ) -> None:
        self._store = store
        self.dimension = dimension
        self.path = None if path is None else Path(path)
        self._settings = GraphSettings(dimension, m, ef_construction, ef_search)
        self.exact_search_threshold = exact_search_threshold
        self._index: hnswlib.Index | None = None
        self._visible_sets: OrderedDict[VectorFilter, tuple[Hashable, _VisibleSet | None]] = OrderedDict()
        self._visible_bytes = 0
        self._owned: OrderedDict[str, tuple[int, set[int]]] = OrderedDict()
        self._owned_count = 0
        self._seen_shares: OrderedDict[VectorFilter, float] = OrderedDict()
        self._covered = 0
        self._synced_at: Hashable | None = None  # the store's change token when last caught up
        self._dirty = False
        self._lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="headroom-hnsw"
        )
        users_folder = None if self.path is None else self.path.with_name(self.path.name + ".users")
        self._user_graphs = UserGraphs(store, self._settings, users_folder, self._run)

    # -- plumbing --------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise MemoryClosedError("the vector index is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _expected_meta(self) -> dict[str, Any]:
        return {"instance_id": self._store.instance_id, "dimension": self.dimension}

    def _load_file(self) -> tuple[hnswlib.Index, int] | None:
        """The persisted index and the label it covers, or None if it cannot be trusted."""
        loaded = None if self.path is None else load_graph(self.path, self._expected_meta(), self._settings)
        if loaded is None:
            return None
        index, meta = loaded
        labels = index.get_ids_list()
        covered = int(max(labels)) if len(labels) else 0
        return (index, covered) if covered == meta.get("covered") else None

    async def _ensure_loaded(self) -> hnswlib.Index:
        if self._index is None:
            loaded = await self._run(self._load_file)
            if loaded is None:
                if self.path is not None and self.path.exists():
                    logger.warning("vector index %s is stale or corrupt; rebuilding it", self.path)
                self._index, self._covered = self._settings.new_graph(1024), 0
                self._dirty = True
            else:
                self._index, self._covered = loaded
        return self._index

    # -- VectorIndex -----------------------------------------------------

    async def sync(self) -> int:
        """Add rows committed after the covered label; returns how many were added."""
        async with self._lock:
            index = await self._ensure_loaded()
            added = 0
            async for batch in self._store.rows_after(self._covered, _SYNC_BATCH):
                await self._run(add_rows, index, batch)
                self._covered = batch[-1][0]
                self._dirty = True
                added += len(batch)
            return added

    async def rebuild(self) -> int:
        """Drop the index and rebuild it from every stored embedding."""
        async with self._lock:
            await self._user_graphs.drop()
            self._index, self._covered, self._dirty = self._settings.new_graph(1024), 0, True
            self._synced_at = None
        return await self.sync()

    async def search(
        self, vector: np.ndarray[Any, Any], flt: VectorFilter, k: int, *, token: Hashable | None = None
    ) -> list[tuple[int, float]]:
        """(label, cosine similarity) of the ``k`` visible memories nearest ``vector``.

        Up to ``exact_search_threshold`` visible memories are scored exactly
        from their stored embeddings (the index is not needed); beyond that the
        index is caught up and searched. ``token`` is the store's change token
        as the search began (read now when not given): what was committed
        before it is found, and kept answers are reused only under it.
        """
        if token is None:
            token = await self._store.change_token()
        small = await self._visible_set(flt, token, at_most=self.exact_search_threshold)
        if small is not None:
            return _top_k(vector, *small, k)
        if token is None or token != self._synced_at:  # nothing was committed since the last catch-up
            await self.sync()
            self._synced_at = token
        return await self._approximate(vector, flt, k, token)

    async def _visible_set(
        self, flt: VectorFilter, token: Hashable | None, *, at_most: int | None = None
    ) -> _VisibleSet | None:
        """The reader's visible labels and embeddings; None if there are more
        than ``at_most``. Kept (within ``_VISIBLE_CACHE_BYTES``) while the
        store's change token stays the same, so a reader's next question does
        not read them again. A reader who had at most ``at_most`` when last
        read is read at once (one more row says they have more); anyone else
        is counted first, so a large reader's embeddings are not read for nothing."""
        cached = self._visible_sets.get(flt)
        if cached is not None and token is not None and cached[0] == token and (
            cached[1] is not None or at_most is not None  # a kept None only says "more than at_most"
        ):
            self._visible_sets.move_to_end(flt)
            return cached[1]
        found: _VisibleSet | None = None
        if at_most is None:
            found = await self._store.visible_embeddings(flt)
        elif cached is not None and cached[1] is not None:
            found = await self._store.visible_embeddings(flt, limit=at_most + 1)
            found = found if len(found[0]) <= at_most else None
        elif await self._store.count_visible(flt, at_most + 1) <= at_most:
            found = await self._store.visible_embeddings(flt)
        self._keep_visible_set(flt, token, found)
        return found

    def _keep_visible_set(self, flt: VectorFilter, token: Hashable | None, found: _VisibleSet | None) -> None:
        self._forget_visible_set(flt)
        if token is None:
            return
        self._visible_sets[flt] = (token, found)
        self._visible_bytes += 0 if found is None else found[1].nbytes
        while self._visible_bytes > _VISIBLE_CACHE_BYTES or len(self._visible_sets) > _VISIBLE_CACHE_ENTRIES:
            self._forget_visible_set(next(iter(self._visible_sets)))

    def _forget_visible_set(self, flt: VectorFilter) -> None:
        dropped = self._visible_sets.pop(flt, None)
        if dropped is not None and dropped[1] is not None:
            self._visible_bytes -= dropped[1][1].nbytes

    async def _approximate(
        self, vector: np.ndarray[Any, Any], flt: VectorFilter, k: int, token: Hashable | None
    ) -> list[tuple[int, float]]:
        """HNSW candidates, as many as the user's share of the graph says hold
        ``k`` of theirs, kept if the user's (a set in memory) and then if visible
        (the store); more while too few were, up to ``_MAX_CANDIDATES``. A large
        user with a graph of their own (see :mod:`.user_graphs`) is searched in
        it. A user too rare in the index for that, or a reader seeing too few
        of the candidates, is scored exactly over the visible set instead."""
        index = await self._ensure_loaded()
        owned = await self._owned_labels(flt.user_id)
        total = index.get_current_count()
        own = None
        if UserGraphs.deserves(len(owned), total):
            own = await self._user_graphs.ready(flt.user_id, self._covered)
        graph, share = (own.graph, 1.0) if own is not None else (index, len(owned) / max(total, 1))
        size = graph.get_current_count()
        # The graph is searched as widely as for 2k of the user's labels (at least 64) if
        # they are spread like everyone's, however few candidates are taken from it: enough
        # to hold k visible ones if the reader sees the share of them they saw last time
        # (2k of the user's until a reader's first search).
        ef = max(self._settings.ef_search, min(size, max(64, int(2 * k / max(share, 1e-9)))))
        seen = self._seen_shares.get(flt)
        theirs_wanted = 2 * k if seen is None else _SPARE * k / seen
        wanted = min(size, max(k + 8, int(theirs_wanted / max(share, 1e-9))))
        while wanted <= _MAX_CANDIDATES:
            try:
                labels, sims = await self._run(nearest, graph, vector, wanted, ef)
            except RuntimeError:
                break
            # A graph of the user's own holds only their labels.
            theirs = labels if own is not None else [label for label in labels if label in owned]
            allowed = await self._store.filter_labels(theirs, flt)
            self._note_seen_share(flt, len(allowed), len(theirs))
            hits = [(label, sim) for label, sim in zip(labels, sims) if label in allowed]
            if len(hits) >= k or wanted >= size:
                return hits[:k]
            wanted = min(size, 2 * wanted * k // max(len(hits), 1))
            if not hits:
                break
        everything = await self._visible_set(flt, token)
        assert everything is not None
        return _top_k(vector, *everything, k)

    def _note_seen_share(self, flt: VectorFilter, seen: int, of: int) -> None:
        """Keep the share of their user's candidates the reader saw (at least 1 in 100)."""
        if of:
            self._seen_shares[flt] = max(seen / of, 0.01)
            self._seen_shares.move_to_end(flt)
            if len(self._seen_shares) > _SEEN_SHARES_KEPT:
                self._seen_shares.popitem(last=False)

    async def _owned_labels(self, user_id: str) -> set[int]:
        """Every label the index holds for ``user_id``'s rows (deleted and
        superseded ones too: the store check drops those). Labels only grow,
        so a kept set is caught up with the rows indexed since."""
        covered = self._covered
        upto, labels = self._owned.get(user_id, (0, set()))
        if upto >= covered:
            self._owned.move_to_end(user_id)
            return labels
        fresh = await self._store.user_labels(user_id, upto, covered)
        self._forget_owned(user_id)
        labels.update(fresh)
        self._owned[user_id] = (covered, labels)
        self._owned_count += len(labels)
        while self._owned_count > _OWNED_LABELS_KEPT and len(self._owned) > 1:
            self._forget_owned(next(iter(self._owned)))
        return labels

    def _forget_owned(self, user_id: str) -> None:
        dropped = self._owned.pop(user_id, None)
        if dropped is not None:
            self._owned_count -= len(dropped[1])

    async def wait_for_user_graphs(self) -> None:
        """Wait until the graphs of large users being loaded or built are ready
        (searches never wait for them; benchmarks and tests do)."""
        await self._user_graphs.settled()

    async def close(self) -> None:
        """Persist the index and the users' graphs if they changed, then stop the worker threads."""
        if self._executor is None:
            return
        try:
            async with self._lock:
                if self._dirty and self._index is not None and self.path is not None:
                    meta = {**self._expected_meta(), "covered": self._covered}
                    self._dirty = not await self._run(save_graph, self._index, self.path, meta)
            await self._user_graphs.close()
        finally:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=True)

    @property
    def covered_label(self) -> int:
        """The highest row label the in-memory index holds."""
        return self._covered
