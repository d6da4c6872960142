"""The synchronous facade: one owned event loop on a background thread.

Everything synchronous (``with_memory``'s ``.memory``, LangChain's ``invoke``,
LlamaIndex's ``get``/``put``, a notebook cell) goes through a :class:`LoopThread`.
It works where a loop is already running in the calling thread (Jupyter,
FastAPI), because the engine's coroutines run on the facade's own loop.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from .config import MemoryConfig
from .engine import HierarchicalMemory
from .errors import HeadroomMemoryError, MemoryClosedError

__all__ = ["LoopThread", "SyncMemory", "async_method", "sync_method"]

P = ParamSpec("P")
T = TypeVar("T")


class LoopThread:
    """An event loop running forever on its own daemon thread, until :meth:`close`."""

    def __init__(self, name: str = "headroom-memory-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule ``coro`` on the loop; a concurrent Future of its result."""
        if self._closed:
            coro.close()
            raise MemoryClosedError("this memory was closed; create a new one")
        if threading.current_thread() is self._thread:
            coro.close()
            raise HeadroomMemoryError(
                "a synchronous headroom-memory call was made from its own event loop; "
                "await the async API (HierarchicalMemory) there instead"
            )
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and block until it finishes."""
        return self.submit(coro).result()

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop from another loop, without blocking it."""
        return await asyncio.wrap_future(self.submit(coro))

    def close(self) -> None:
        """Stop the loop and join its thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def sync_method(
    async_fn: Callable[Concatenate[Any, P], Awaitable[T]],
) -> Callable[Concatenate[Any, P], T]:
    """A blocking method that runs ``async_fn`` of ``self._target`` on ``self._runner``."""

    name = async_fn.__name__

    @functools.wraps(async_fn)
    def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = self._runner.run(getattr(self._target, name)(*args, **kwargs))
        return result

    return cast(Callable[Concatenate[Any, P], T], method)


def async_method(
    async_fn: Callable[Concatenate[Any, P], Awaitable[T]],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """An async method that runs ``async_fn`` of ``self._target`` on ``self._runner``'s
    loop and awaits it from the caller's loop (any loop, without blocking it)."""

    name = async_fn.__name__

    @functools.wraps(async_fn)
    async def method(self: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await self._runner.run_async(getattr(self._target, name)(*args, **kwargs))
        return result

    return cast(Callable[Concatenate[Any, P], Coroutine[Any, Any, T]], method)


class SyncMemory:
    """A blocking :class:`HierarchicalMemory`, for scripts and notebooks.

    It owns an event loop thread and the engine running on it; use it as a
    context manager or call :meth:`close`::

        with SyncMemory(MemoryConfig(db_path="m.db")) as memory:
            memory.add("Prefers Python", user_id="alice", category="preference")
            print(memory.search("language", user_id="alice"))

    Every method has the signature and behaviour of the async method of the
    same name. Adapters may be passed as keyword arguments, as to ``create``.
    """

    def __init__(self, config: MemoryConfig | None = None, **adapters: Any) -> None:
        self._runner = LoopThread()
        try:
            self._target = self._runner.run(HierarchicalMemory.create(config, **adapters))
        except BaseException:
            self._runner.close()
            raise

    @property
    def engine(self) -> HierarchicalMemory:
        """The async engine (runs on this facade's loop thread)."""
        return self._target

    @property
    def runner(self) -> LoopThread:
        """The loop thread the engine runs on."""
        return self._runner

    add = sync_method(HierarchicalMemory.add)
    add_many = sync_method(HierarchicalMemory.add_many)
    remember = sync_method(HierarchicalMemory.remember)
    get = sync_method(HierarchicalMemory.get)
    supersede = sync_method(HierarchicalMemory.supersede)
    promote = sync_method(HierarchicalMemory.promote)
    end_turn = sync_method(HierarchicalMemory.end_turn)
    delete = sync_method(HierarchicalMemory.delete)
    clear = sync_method(HierarchicalMemory.clear)
    query = sync_method(HierarchicalMemory.query)
    nodes = sync_method(HierarchicalMemory.nodes)
    get_history = sync_method(HierarchicalMemory.get_history)
    visible = sync_method(HierarchicalMemory.visible)
    stats = sync_method(HierarchicalMemory.stats)
    search = sync_method(HierarchicalMemory.search)
    text_search = sync_method(HierarchicalMemory.text_search)
    recall = sync_method(HierarchicalMemory.recall)
    rebuild_index = sync_method(HierarchicalMemory.rebuild_index)
    optimize = sync_method(HierarchicalMemory.optimize)
    append_messages = sync_method(HierarchicalMemory.append_messages)
    get_messages = sync_method(HierarchicalMemory.get_messages)
    clear_messages = sync_method(HierarchicalMemory.clear_messages)
    restore = sync_method(HierarchicalMemory.restore)
    embeddings = sync_method(HierarchicalMemory.embeddings)

    def close(self) -> None:
        """Close the engine, then stop the loop thread; safe to call twice."""
        if self._runner.closed:
            return
        try:
            self._runner.run(self._target.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncMemory:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        runner = getattr(self, "_runner", None)
        if runner is not None and not runner.closed:
            warnings.warn(
                f"unclosed {type(self).__name__}; call close() or use it as a context manager",
                ResourceWarning,
                stacklevel=2,
            )
