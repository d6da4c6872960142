"""Graphs of their own for the users who hold many of a large store's memories.

In a store-wide HNSW graph, a user who owns a tenth of it needs ten times the
neighbours to find enough of their own, and the search costs about that much
more. A user with at least ``MIN_LABELS`` labels and at most ``MAX_SHARE`` of
the index is therefore given a graph of their rows only: loaded from disk, or
built in the background after their first search (the store-wide graph
serves them meanwhile), saved beside the index, and caught up with the user's
new rows before each search. Like the store-wide index it is derived from the
store and never trusted over it: results are still checked for visibility.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import hnswlib

from .hnsw_graph import GraphSettings, add_rows, load_graph, save_graph
from .sqlite_sql import user_key
from .sqlite_store import SQLiteMemoryStore

__all__ = ["UserGraph", "UserGraphs"]

logger = logging.getLogger("headroom_memory")

T = TypeVar("T")
MIN_LABELS = 10_000  # a user with at least this many labels ...
MAX_SHARE = 0.5  # ... and at most this share of the index gets a graph of their own
KEPT_VECTORS = 500_000  # vectors of user graphs kept in memory (~1.7 KB each at 384 dimensions)
RETRY_SECONDS = 300.0  # a graph that failed to build is not tried again for this long
_BUILD_BATCH = 2048  # vectors added between checks for close()


class _Stopped(Exception):
    """A build interrupted by close() or rebuild()."""


@dataclass
class UserGraph:
    """One user's graph: their rows with labels up to ``covered`` are in it."""

    graph: hnswlib.Index
    covered: int
    dirty: bool


class UserGraphs:
    """The per-user graphs of one :class:`~headroom_memory.adapters.HNSWVectorIndex`.

    :param store: the store the graphs are derived from.
    :param settings: graph shape (shared with the store-wide index).
    :param folder: where graphs are saved (``None``: memory only).
    :param run: runs a blocking call on the index's worker thread; searches and
        catch-ups of ready graphs go there, builds go to a daemon thread of their own.
    """

    def __init__(
        self,
        store: SQLiteMemoryStore,
        settings: GraphSettings,
        folder: Path | None,
        run: Callable[..., Awaitable[Any]],
    ) -> None:
        self._store = store
        self._settings = settings
        self.folder = folder
        self._run = run
        self._ready: OrderedDict[str, UserGraph] = OrderedDict()
        self._vectors = 0
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._stop = threading.Event()
        self._one_build = asyncio.Lock()  # one graph is loaded or built at a time
        self._failed: dict[str, float] = {}  # when a user's graph last failed to build
        self._lock = asyncio.Lock()

    @staticmethod
    def deserves(owned: int, total: int) -> bool:
        """Whether a user with ``owned`` of the index's ``total`` labels gets a graph."""
        return owned >= MIN_LABELS and owned <= MAX_SHARE * total

    async def ready(self, user_id: str, covered: int) -> UserGraph | None:
        """The user's graph caught up with their rows up to label ``covered``;
        None while it is being loaded or built (which this starts)."""
        found = self._ready.get(user_id)
        if found is None:
            failed = self._failed.get(user_id)
            if failed is not None and time.monotonic() - failed < RETRY_SECONDS:
                return None
            if user_id not in self._pending and not self._stop.is_set():
                self._pending[user_id] = asyncio.ensure_future(self._prepare(user_id, covered))
            return None
        self._ready.move_to_end(user_id)
        if found.covered < covered:
            async with self._lock:
                if found.covered < covered:
                    rows = await self._store.user_embeddings(user_id, found.covered, covered)
                    if rows:
                        await self._run(add_rows, found.graph, rows)
                    found.covered, found.dirty = covered, True
        return found

    async def settled(self) -> None:
        """Wait until every graph being loaded or built is ready (or has failed)."""
        while self._pending:
            await asyncio.gather(*self._pending.values(), return_exceptions=True)

    def _path(self, user_id: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f"{user_key(user_id)}.hnsw"

    def _expected(self, user_id: str) -> dict[str, Any]:
        return {"instance_id": self._store.instance_id, "dimension": self._settings.dimension,
                "user": user_key(user_id)}

    async def _prepare(self, user_id: str, covered: int) -> None:
        """Load the user's saved graph, or build (and save) it from the store."""
        path = self._path(user_id)
        try:
            async with self._one_build:
                loaded = None if path is None else await _off_thread(
                    load_graph, path, self._expected(user_id), self._settings)
                if loaded is not None:
                    made = UserGraph(loaded[0], int(loaded[1]["covered"]), dirty=False)
                else:
                    rows = await self._store.user_embeddings(user_id, 0, covered)
                    made = UserGraph(await _off_thread(self._build, rows), covered, dirty=True)
                    if path is not None:
                        with contextlib.suppress(OSError):  # save_graph reports a folder it cannot write
                            path.parent.mkdir(parents=True, exist_ok=True)
                        made.dirty = not await _off_thread(
                            save_graph, made.graph, path, self._saved_meta(user_id, made))
            if not self._stop.is_set():
                await self._keep(user_id, made)
        except _Stopped:
            pass
        except Exception:  # the store-wide graph keeps serving the user; tried again later
            self._failed[user_id] = time.monotonic()
            logger.warning("could not prepare the vector graph of a large user", exc_info=True)
        finally:
            self._pending.pop(user_id, None)

    def _build(self, rows: list[tuple[int, bytes]]) -> hnswlib.Index:
        graph = self._settings.new_graph(len(rows))
        for start in range(0, len(rows), _BUILD_BATCH):
            if self._stop.is_set():
                raise _Stopped
            add_rows(graph, rows[start : start + _BUILD_BATCH], num_threads=1)
        return graph

    def _saved_meta(self, user_id: str, made: UserGraph) -> dict[str, Any]:
        return {**self._expected(user_id), "covered": made.covered}

    async def _keep(self, user_id: str, made: UserGraph) -> None:
        """Make a graph ready; the least recently searched are dropped (saved
        first if changed) beyond ``KEPT_VECTORS``."""
        self._ready[user_id] = made
        self._vectors += made.graph.get_current_count()
        while self._vectors > KEPT_VECTORS and len(self._ready) > 1:
            oldest, dropped = self._ready.popitem(last=False)
            self._vectors -= dropped.graph.get_current_count()
            await self._save_if_changed(oldest, dropped)

    async def _save_if_changed(self, user_id: str, graph: UserGraph) -> None:
        path = self._path(user_id)
        if graph.dirty and path is not None:
            graph.dirty = not await self._run(save_graph, graph.graph, path, self._saved_meta(user_id, graph))

    async def _stop_builds(self) -> None:
        self._stop.set()
        await self.settled()

    async def drop(self) -> None:
        """Forget every graph, in memory and on disk (the index is being rebuilt)."""
        await self._stop_builds()
        self._ready.clear()
        self._vectors = 0
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self._stop.clear()

    async def close(self) -> None:
        """Stop any build, then save the graphs that changed."""
        await self._stop_builds()
        for user_id, graph in list(self._ready.items()):
            await self._save_if_changed(user_id, graph)


def _off_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run ``fn`` on a daemon thread of its own: a build left running by a
    forgotten close() must not keep the interpreter alive at exit (pool
    threads are joined at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except BaseException as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the event loop is gone
            pass

    threading.Thread(target=work, name="headroom-hnsw-user-graph", daemon=True).start()
    return future
