"""The ports of the engine: filters and the Protocols every adapter implements.

:class:`HierarchicalMemory` talks only to these. A store row has a *label*, an
integer sequence number that grows with every committed row; the vector and
text indexes speak in labels, the store turns labels back into memories.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from .errors import InvalidInputError
from .models import Memory, MemoryCategory, ScopeLevel
from .timeutil import to_utc

__all__ = [
    "Embedder",
    "MemoryCache",
    "MemoryFilter",
    "MemoryStore",
    "TextIndex",
    "VectorFilter",
    "VectorIndex",
]

Vector = np.ndarray[Any, np.dtype[np.float32]]


def _check_id(value: str | None, name: str) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise InvalidInputError(f"{name} must be a non-empty string or None, got {value!r}")


def _categories(values: Iterable[MemoryCategory | str] | None) -> tuple[MemoryCategory, ...] | None:
    if values is None:
        return None
    if isinstance(values, (str, MemoryCategory)):
        values = [values]
    return tuple(MemoryCategory.parse(v) for v in values)


def _importance_bound(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInputError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _metadata_match(value: Any) -> dict[str, str | int | float | bool]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"metadata must be a mapping of key to value, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"metadata filter keys must be non-empty strings, got {key!r}")
        if not isinstance(item, (str, int, float, bool)):
            raise InvalidInputError(
                f"metadata filter values must be strings, numbers or booleans, got {type(item).__name__} for {key!r}"
            )
    return dict(value)


@dataclass(frozen=True)
class MemoryFilter:
    """A low-level listing filter for :meth:`HierarchicalMemory.query`.

    It matches exactly the fields given, with no scope inheritance: ``user_id``
    alone lists every memory of that user at every level, ``session_id`` adds an
    exact match on the session, and so on. ``scopes`` keeps only those levels.

    By default only current memories are listed; ``include_superseded=True`` adds
    superseded and expired versions; ``as_of`` lists what was current at that
    instant (naive datetimes are taken as UTC). ``metadata`` keeps memories whose
    metadata has each given top-level key with exactly that value (strings,
    numbers, booleans). Results are ordered by ``valid_from`` then creation
    order, paged by ``limit``/``offset``.
    """

    user_id: str | None = None
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    scopes: Sequence[ScopeLevel | str] | None = None
    categories: Sequence[MemoryCategory | str] | None = None
    min_importance: float | None = None
    max_importance: float | None = None
    include_superseded: bool = False
    as_of: datetime | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int | None = None
    offset: int = 0
    metadata: Mapping[str, str | int | float | bool] | None = None

    def __post_init__(self) -> None:
        for name in ("user_id", "session_id", "agent_id", "turn_id"):
            _check_id(getattr(self, name), name)
        if self.metadata is not None:
            object.__setattr__(self, "metadata", _metadata_match(self.metadata))
        object.__setattr__(self, "categories", _categories(self.categories))
        if self.scopes is not None:
            scopes = [self.scopes] if isinstance(self.scopes, (str, ScopeLevel)) else self.scopes
            object.__setattr__(self, "scopes", tuple(ScopeLevel.parse(s) for s in scopes))
        object.__setattr__(self, "min_importance", _importance_bound(self.min_importance, "min_importance"))
        object.__setattr__(self, "max_importance", _importance_bound(self.max_importance, "max_importance"))
        for name in ("as_of", "created_after", "created_before"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, to_utc(value, name=name))
        bad_limit = isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1
        if self.limit is not None and bad_limit:
            raise InvalidInputError(f"limit must be a positive integer or None, got {self.limit!r}")
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise InvalidInputError(f"offset must be a non-negative integer, got {self.offset!r}")


@dataclass(frozen=True)
class VectorFilter:
    """What a search may return: the memories visible to one reader.

    The reader stands at (``user_id``, ``session_id``, ``agent_id``, ``turn_id``)
    and sees the memories on its path up the scope tree: the user's USER
    memories, its session's SESSION memories, its agent's AGENT memories and its
    turn's TURN memories; never a sibling's, never another user's. Only current
    memories are returned; ``categories`` and ``min_importance`` narrow further.

    ``subtree=True`` looks down instead of up: the reader sees every memory at or
    below its node (the ids given match exactly, at any level), e.g. all of a
    user's memories in every session; still never another user's.
    """

    user_id: str
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    categories: Sequence[MemoryCategory | str] | None = None
    min_importance: float | None = None
    subtree: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.subtree, bool):
            raise InvalidInputError(f"subtree must be True or False, got {self.subtree!r}")
        if not isinstance(self.user_id, str) or not self.user_id.strip():
            raise InvalidInputError(f"user_id must be a non-empty string, got {self.user_id!r}")
        for name in ("session_id", "agent_id", "turn_id"):
            _check_id(getattr(self, name), name)
        object.__setattr__(self, "categories", _categories(self.categories))
        object.__setattr__(self, "min_importance", _importance_bound(self.min_importance, "min_importance"))


class RankingRow(NamedTuple):
    """What search ranks a stored memory by, read with the memory itself."""

    importance: float
    seen: datetime  #: last recalled, else valid_from: where recency counts from
    similarity: float  #: cosine similarity of the stored embedding to the query
    load: Callable[[], Memory]  #: the whole memory, built only for those that win


@runtime_checkable
class MemoryStore(Protocol):
    """Rows, filters and supersession chains: the source of truth."""

    async def open(self, *, model: str, dimension: int) -> None:
        """Create or open the store; raise ConfigurationError if it was made for
        another embedding model or dimension."""

    async def close(self) -> None:
        """Release connections; further calls raise MemoryClosedError."""

    async def insert(self, memories: Sequence[Memory]) -> None:
        """Write memories (with embeddings) in one transaction."""

    async def get(self, memory_id: str) -> Memory | None:
        """One memory by id, or None."""

    async def get_by_labels(self, labels: Sequence[int]) -> dict[int, Memory]:
        """Memories by label (missing labels are left out)."""

    async def embeddings_by_id(self, memory_ids: Sequence[str]) -> dict[str, Vector]:
        """Stored embeddings by memory id."""

    async def ranking_rows(
        self, labels: Sequence[int], vector: Vector, *, beside: bool = False
    ) -> dict[int, RankingRow]:
        """What ranking needs of each labelled memory, its similarity to ``vector``
        included, from one read (missing labels are left out). ``beside``: the
        caller is running another read meanwhile (a store may read elsewhere)."""

    async def query(self, flt: MemoryFilter) -> list[Memory]:
        """Memories matching a low-level filter."""

    async def count(self, flt: MemoryFilter) -> int:
        """How many memories match a low-level filter (limit/offset ignored)."""

    async def nodes(self, flt: MemoryFilter) -> list[tuple[str, str | None, str | None, str | None]]:
        """The distinct (user, session, agent, turn) ids of memories matching a
        filter, sorted (limit/offset ignored)."""

    async def supersede(self, old_id: str, new: Memory) -> None:
        """Close ``old_id`` at ``new.valid_from`` and insert ``new`` in one transaction;
        raise MemoryConflictError if ``old_id`` is no longer current."""

    async def history(self, memory_id: str) -> list[Memory]:
        """The whole supersession chain through ``memory_id``, oldest first."""

    async def delete(self, memory_ids: Sequence[str]) -> int:
        """Delete memories (rows, text entries, links); returns how many."""

    async def delete_scope(
        self, user_id: str, session_id: str | None, agent_id: str | None, turn_id: str | None
    ) -> int:
        """Delete the memories of a user, or of one session/agent/turn of it."""

    async def expire(self, memory_ids: Sequence[str], at: datetime) -> int:
        """Set ``valid_until`` of current memories; returns how many."""

    async def reinforce(self, memory_id: str, at: datetime, importance: float) -> None:
        """Count a restatement of a memory (access, last seen, importance floor, merged counter)."""

    async def record_access(
        self, memory_ids: Sequence[str], at: datetime, *, wait: bool = True
    ) -> dict[str, int]:
        """Count one recall of each memory; returns their access counts after it.

        With ``wait=False`` a store may count them in the background and return
        ``{}`` at once, provided every later call of this store sees the counts."""

    async def change_token(self) -> Hashable | None:
        """A value that differs after any change to memories (rows, validity,
        importance) by any process or connection, so a reader can tell its
        cached results are still right; recall bookkeeping need not change it.
        ``None`` when the store cannot tell (nothing is then cached)."""

    async def count_visible(self, flt: VectorFilter, cap: int) -> int:
        """How many memories ``flt`` sees, counting at most ``cap``."""

    async def filter_labels(self, labels: Sequence[int], flt: VectorFilter) -> set[int]:
        """The subset of ``labels`` that ``flt`` sees."""

    def rows_after(self, label: int, batch_size: int) -> AsyncIterator[list[tuple[int, bytes]]]:
        """(label, embedding bytes) of rows committed after ``label``, in label order."""

    async def max_label(self) -> int:
        """The highest committed label (0 when empty)."""

    async def append_messages(self, user_id: str, session_id: str, messages: Sequence[Mapping[str, Any]]) -> None:
        """Append raw conversation messages (JSON objects) to a session."""

    async def get_messages(self, user_id: str, session_id: str) -> list[dict[str, Any]]:
        """A session's raw messages, oldest first."""

    async def clear_messages(self, user_id: str, session_id: str) -> int:
        """Delete a session's raw messages."""

    async def stats(self, flt: MemoryFilter) -> dict[str, Any]:
        """Counts by category and scope, current/superseded/expired, merged adds."""


@runtime_checkable
class TextIndex(Protocol):
    """Keyword search over memory content, transactional with the rows."""

    async def search(
        self, query: str, flt: VectorFilter, limit: int, *, token: Hashable | None = None
    ) -> list[tuple[int, float]]:
        """(label, score) of visible memories matching ``query``, best first.
        Any user text is safe: it is quoted, never interpreted as query syntax.
        ``token``, when given, is the store's change token read as the search began."""


@runtime_checkable
class VectorIndex(Protocol):
    """Nearest neighbours by cosine similarity, exact for the visible set."""

    async def search(
        self, vector: Vector, flt: VectorFilter, k: int, *, token: Hashable | None = None
    ) -> list[tuple[int, float]]:
        """(label, cosine similarity) of the ``k`` visible memories nearest ``vector``.

        ``token``, when given, is the store's change token read as the search
        began: an index that needs one uses it instead of reading it again."""

    async def sync(self) -> int:
        """Catch up with rows committed since the index was last brought up to date
        (by this or another process); returns how many were added."""

    async def rebuild(self) -> int:
        """Rebuild from the store; returns the number of vectors indexed."""

    async def close(self) -> None:
        """Persist (when backed by a file) and release resources."""


@runtime_checkable
class Embedder(Protocol):
    """Text to unit-length float32 vectors."""

    @property
    def dimension(self) -> int:
        """Length of the vectors produced."""

    @property
    def model_name(self) -> str:
        """Name that identifies the model (recorded in the store)."""

    async def embed(self, texts: Sequence[str]) -> Vector:
        """A (len(texts), dimension) float32 array of L2-normalised embeddings."""

    async def close(self) -> None:
        """Release resources (threads, HTTP clients)."""


@runtime_checkable
class MemoryCache(Protocol):
    """A bounded key-value cache (query embeddings)."""

    def get(self, key: Hashable) -> Any | None:
        """The cached value or None."""

    def put(self, key: Hashable, value: Any) -> None:
        """Cache a value, evicting the least recently used entry when full."""

    def clear(self) -> None:
        """Drop everything."""

    def __len__(self) -> int: ...
