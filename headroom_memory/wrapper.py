"""with_memory: one-line memory for any OpenAI-compatible client.

The returned client behaves like the one given (every attribute passes
through) except ``chat.completions.create``, which per request:

1. recalls the memories the configured identity sees that match the last user message,
2. adds one system message: the memories as inert reference data with short
   handles, and the instruction to append a ``<memory>`` block,
3. calls the model once,
4. removes the block from the answer (also from a stream, chunk by chunk),
5. stores its items for the configured identity (superseding injected memories
   the block names), and returns the response of the original type.

With ``n > 1`` the block is removed from every choice and stored from the first
choice only. With ``response_format`` (JSON modes) memories are injected but no
block is requested, so the JSON stays intact. Replies without text (tool calls)
are passed through untouched. A failure of the memory itself is logged and never
costs the user the answer.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .config import EmbedderBackend, MemoryConfig
from .errors import HeadroomMemoryError, InvalidInputError
from .extraction import BlockFilter, split_reply
from .inline import InlineMemory, Prepared, last_user_text
from .sync import SyncMemory
from .views import AsyncMemoryView, Identity, MemoryView, SyncMemoryView

__all__ = ["MemoryClient", "with_memory"]

logger = logging.getLogger("headroom_memory")

_NO_MEMORY = Prepared(system_text="")


def with_memory(
    client: Any,
    user_id: str,
    session_id: str | None = None,
    agent_id: str | None = None,
    *,
    db_path: str | Path | None = None,
    top_k: int = 5,
    embedder_backend: EmbedderBackend | str | None = None,
    config: MemoryConfig | None = None,
    memory: SyncMemory | None = None,
    min_similarity: float = 0.1,
    max_injected_chars: int = 2000,
) -> MemoryClient:
    """Wrap an OpenAI-compatible client (``OpenAI``, ``AsyncOpenAI``, Azure, Groq, ...)
    so that it remembers, for one user (optionally one session and agent)::

        client = with_memory(OpenAI(), user_id="alice")
        client.chat.completions.create(model="gpt-4o", messages=[...])
        client.memory.search("python preferences", top_k=5)

    :param db_path: / :param embedder_backend: shorthands for the same fields of ``config``.
    :param memory: share an open :class:`SyncMemory` between wrapped clients
        (it stays the caller's to close); otherwise the client owns one.
    :param top_k: memories injected per request at most.
    :param min_similarity: less similar memories are not injected.
    :param max_injected_chars: budget of injected memory text per request.
    """
    identity = Identity(user_id, session_id, agent_id)
    create = getattr(getattr(getattr(client, "chat", None), "completions", None), "create", None)
    if not callable(create):
        raise InvalidInputError(
            f"{type(client).__name__} has no chat.completions.create; pass an OpenAI-compatible client"
        )
    owns = memory is None
    if memory is None:
        overrides: dict[str, Any] = {}
        if db_path is not None:
            overrides["db_path"] = db_path
        if embedder_backend is not None:
            overrides["embedder_backend"] = embedder_backend
        base = config.model_dump(exclude_unset=True) if config is not None else {}
        memory = SyncMemory(MemoryConfig(**{**base, **overrides}))
    elif config is not None or db_path is not None or embedder_backend is not None:
        raise InvalidInputError("pass either memory= or config/db_path/embedder_backend, not both")
    try:
        inline = InlineMemory(memory.engine, identity, top_k=top_k, min_similarity=min_similarity,
                              max_injected_chars=max_injected_chars)
    except BaseException:
        if owns:
            memory.close()
        raise
    return MemoryClient(client, memory, inline, owns_memory=owns, is_async=_is_async_client(client, create))


def _is_async_client(client: Any, create: Any) -> bool:
    """Whether ``create`` returns a coroutine (AsyncOpenAI, AsyncGroq, ...)."""
    return inspect.iscoroutinefunction(inspect.unwrap(create)) or type(client).__name__.startswith("Async")


def _wants_block(kwargs: Mapping[str, Any]) -> bool:
    """No block where it would corrupt structured output."""
    response_format = kwargs.get("response_format")
    return response_format is None or getattr(response_format, "get", lambda *_: None)("type") == "text"


def _with_system_text(kwargs: dict[str, Any], prepared: Prepared) -> dict[str, Any]:
    """The request with our system message after the caller's leading system messages."""
    if not prepared.system_text:
        return kwargs
    messages = list(kwargs["messages"])
    position = 0
    while position < len(messages) and isinstance(messages[position], Mapping) \
            and messages[position].get("role") in ("system", "developer"):
        position += 1
    messages.insert(position, {"role": "system", "content": prepared.system_text})
    return {**kwargs, "messages": messages}


def _strip_choices(response: Any) -> list[str]:
    """Remove blocks from every choice's text; the blocks of the first choice."""
    first: list[str] = []
    for position, choice in enumerate(getattr(response, "choices", None) or []):
        message: Any = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        if not isinstance(content, str):
            continue
        clean, blocks = split_reply(content)
        message.content = clean
        if position == 0:
            first = blocks
    return first


class _StreamFilters:
    """Per-choice block filters over a stream of chat-completion chunks."""

    def __init__(self) -> None:
        self._filters: dict[int, BlockFilter] = {}
        self._last: Any = None

    def process(self, chunk: Any) -> Any:
        """The chunk with block text removed from each choice's delta."""
        self._last = chunk
        for choice in getattr(chunk, "choices", None) or []:
            delta: Any = getattr(choice, "delta", None)
            index = getattr(choice, "index", 0) or 0
            block_filter = self._filters.setdefault(index, BlockFilter())
            content = getattr(delta, "content", None)
            if isinstance(content, str):
                delta.content = block_filter.feed(content)
            if getattr(choice, "finish_reason", None) is not None and delta is not None:
                tail = block_filter.finish()
                if tail:
                    delta.content = (getattr(delta, "content", None) or "") + tail
        return chunk

    def tail_chunk(self) -> Any | None:
        """A chunk carrying text still held back when the stream ended without a
        finish reason (a copy of the last chunk), or None."""
        tails = {i: f.finish() for i, f in self._filters.items()}
        if not any(tails.values()) or self._last is None:
            return None
        chunk = copy.deepcopy(self._last)
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "delta", None) is not None:
                choice.delta.content = tails.get(getattr(choice, "index", 0) or 0, "")
        return chunk

    @property
    def blocks(self) -> list[str]:
        """The blocks of the first choice."""
        first = self._filters.get(0)
        return first.blocks if first is not None else []


class _SyncStream:
    """A stream of chunks with memory blocks removed; stores them at the end."""

    def __init__(self, stream: Any, client: MemoryClient, prepared: Prepared) -> None:
        self._stream = stream
        self._client = client
        self._prepared = prepared
        self._iterator = self._chunks()

    def _chunks(self) -> Iterator[Any]:
        filters = _StreamFilters()
        for chunk in self._stream:
            yield filters.process(chunk)
        tail = filters.tail_chunk()
        if tail is not None:
            yield tail
        self._client._absorb_sync(filters.blocks, self._prepared)

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> _SyncStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying stream."""
        close = getattr(self._stream, "close", None)
        if callable(close):
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _AsyncStream:
    """The async form of :class:`_SyncStream`."""

    def __init__(self, stream: Any, client: MemoryClient, prepared: Prepared) -> None:
        self._stream = stream
        self._client = client
        self._prepared = prepared
        self._iterator = self._chunks()

    async def _chunks(self) -> AsyncIterator[Any]:
        filters = _StreamFilters()
        async for chunk in self._stream:
            yield filters.process(chunk)
        tail = filters.tail_chunk()
        if tail is not None:
            yield tail
        await self._client._absorb_async(filters.blocks, self._prepared)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the underlying stream."""
        close = getattr(self._stream, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Completions:
    """``chat.completions`` with memory; everything else passes through."""

    def __init__(self, original: Any, client: MemoryClient) -> None:
        self._original = original
        self._client = client
        if client.is_async:
            self.create = self._acreate
        else:
            self.create = self._create

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)

    def _create(self, *args: Any, **kwargs: Any) -> Any:
        if args or not isinstance(kwargs.get("messages"), Sequence):
            return self._original.create(*args, **kwargs)
        prepared = self._client._prepare_sync(kwargs)
        response = self._original.create(**_with_system_text(kwargs, prepared))
        if kwargs.get("stream"):
            return _SyncStream(response, self._client, prepared)
        self._client._absorb_sync(_strip_choices(response), prepared)
        return response

    async def _acreate(self, *args: Any, **kwargs: Any) -> Any:
        if args or not isinstance(kwargs.get("messages"), Sequence):
            return await self._original.create(*args, **kwargs)
        prepared = await self._client._prepare_async(kwargs)
        response = await self._original.create(**_with_system_text(kwargs, prepared))
        if kwargs.get("stream"):
            return _AsyncStream(response, self._client, prepared)
        await self._client._absorb_async(_strip_choices(response), prepared)
        return response


class _Chat:
    def __init__(self, original: Any, client: MemoryClient) -> None:
        self._original = original
        self.completions = _Completions(original.completions, client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class MemoryClient:
    """An OpenAI-compatible client with memory; made by :func:`with_memory`.

    ``memory`` is the identity-bound memory API (blocking for a sync client,
    awaitable for an async one). ``close()`` closes the memory it owns and the
    wrapped client.
    """

    def __init__(self, client: Any, memory: SyncMemory, inline: InlineMemory, *,
                 owns_memory: bool, is_async: bool) -> None:
        self._client = client
        self._memory = memory
        self._inline = inline
        self._owns_memory = owns_memory
        self.is_async = is_async
        view = MemoryView(memory.engine, inline.identity)
        self.memory: SyncMemoryView | AsyncMemoryView = (
            AsyncMemoryView(view, memory.runner) if is_async else SyncMemoryView(view, memory.runner)
        )
        self.chat = _Chat(client.chat, self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def with_options(self, **options: Any) -> MemoryClient:
        """The wrapped client's ``with_options(...)``, with the same memory."""
        return MemoryClient(self._client.with_options(**options), self._memory, self._inline,
                            owns_memory=False, is_async=self.is_async)

    @property
    def wrapped(self) -> Any:
        """The original client."""
        return self._client

    # -- the memory round trip, sync and async over one implementation ----

    def _prepare_sync(self, kwargs: Mapping[str, Any]) -> Prepared:
        try:
            return self._memory.runner.run(self._inline.prepare(
                last_user_text(kwargs["messages"]), extract=_wants_block(kwargs)))
        except HeadroomMemoryError as exc:
            logger.error("memory recall failed; answering without memories: %s", exc)
            return _NO_MEMORY

    async def _prepare_async(self, kwargs: Mapping[str, Any]) -> Prepared:
        try:
            return await self._memory.runner.run_async(self._inline.prepare(
                last_user_text(kwargs["messages"]), extract=_wants_block(kwargs)))
        except HeadroomMemoryError as exc:
            logger.error("memory recall failed; answering without memories: %s", exc)
            return _NO_MEMORY

    def _absorb_sync(self, blocks: list[str], prepared: Prepared) -> None:
        if not blocks:
            return
        try:
            self._memory.runner.run(self._inline.absorb(blocks, prepared))
        except HeadroomMemoryError as exc:
            logger.error("storing extracted memories failed: %s", exc)

    async def _absorb_async(self, blocks: list[str], prepared: Prepared) -> None:
        if not blocks:
            return
        try:
            await self._memory.runner.run_async(self._inline.absorb(blocks, prepared))
        except HeadroomMemoryError as exc:
            logger.error("storing extracted memories failed: %s", exc)

    # -- lifecycle --------------------------------------------------------

    def close(self) -> Any:
        """Close the owned memory and the wrapped client (awaitable for async clients)."""
        if self._owns_memory:
            self._memory.close()
        result = getattr(self._client, "close", lambda: None)()
        return result

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> MemoryClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        result = self.close()
        if inspect.isawaitable(result):
            await result
