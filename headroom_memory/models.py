"""The data model: categories, scope levels, memories and search results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import numpy as np

from .errors import InvalidInputError
from .timeutil import to_utc, utc_now

__all__ = [
    "Memory",
    "MemoryCategory",
    "NewMemory",
    "ScopeLevel",
    "SearchResult",
]

_Record = TypeVar("_Record", "Memory", "SearchResult")


class MemoryCategory(str, Enum):
    """What kind of knowledge a memory holds."""

    PREFERENCE = "preference"
    """Likes, dislikes, preferred approaches ("Prefers Python")."""
    FACT = "fact"
    """Identity, role, constraints ("Senior engineer at a fintech startup")."""
    CONTEXT = "context"
    """Current goals and ongoing tasks ("Migrating to microservices")."""
    ENTITY = "entity"
    """Information about other entities ("Project Apollo uses React")."""
    DECISION = "decision"
    """Decisions made ("Chose PostgreSQL over MySQL")."""
    INSIGHT = "insight"
    """Derived insights ("Tends to prefer typed languages")."""

    @classmethod
    def parse(cls, value: MemoryCategory | str) -> MemoryCategory:
        """Return the category named by ``value`` (case-insensitive) or raise
        :class:`InvalidInputError` naming the allowed values."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        allowed = ", ".join(c.value for c in cls)
        raise InvalidInputError(f"unknown memory category {value!r}; expected one of: {allowed}")


class ScopeLevel(str, Enum):
    """How far a memory reaches, from broadest to narrowest.

    A memory at a level carries the ids down to that level: USER has only the
    user id, SESSION adds the session id, AGENT adds the agent id, TURN the turn id.
    """

    USER = "user"
    SESSION = "session"
    AGENT = "agent"
    TURN = "turn"

    @classmethod
    def parse(cls, value: ScopeLevel | str) -> ScopeLevel:
        """Return the level named by ``value`` (case-insensitive) or raise
        :class:`InvalidInputError` naming the allowed values."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        allowed = ", ".join(s.value for s in cls)
        raise InvalidInputError(f"unknown scope level {value!r}; expected one of: {allowed}")

    @property
    def depth(self) -> int:
        """0 for USER up to 3 for TURN."""
        return _DEPTH[self]


_DEPTH = {ScopeLevel.USER: 0, ScopeLevel.SESSION: 1, ScopeLevel.AGENT: 2, ScopeLevel.TURN: 3}


@dataclass(frozen=True)
class Memory:
    """One stored memory, as it is at the moment it was read.

    Timestamps are aware UTC datetimes. ``valid_from``/``valid_until`` bound the
    interval in which the memory was true; a superseded memory has
    ``valid_until`` set and ``superseded_by`` naming its successor.
    """

    id: str
    content: str
    user_id: str
    category: MemoryCategory = MemoryCategory.FACT
    importance: float = 0.5
    scope: ScopeLevel = ScopeLevel.USER
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    entity_refs: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utc_now)
    valid_from: datetime = field(default_factory=utc_now)
    valid_until: datetime | None = None
    supersedes: str | None = None
    superseded_by: str | None = None
    promoted_from: ScopeLevel | None = None
    access_count: int = 0
    last_accessed: datetime | None = None
    embedding: np.ndarray[Any, Any] | None = field(default=None, compare=False, repr=False)
    merged: bool = field(default=False, compare=False)
    """True on the memory an add returned instead of storing a near-duplicate
    (the existing memory, reinforced)."""

    @property
    def is_superseded(self) -> bool:
        """True once a newer memory replaced this one."""
        return self.superseded_by is not None

    @property
    def is_expired(self) -> bool:
        """True once ``valid_until`` has passed (for a superseded memory too)."""
        return self.valid_until is not None and self.valid_until <= utc_now()

    @property
    def is_current(self) -> bool:
        """Not superseded and not expired."""
        return not self.is_superseded and not self.is_expired

    def is_current_at(self, instant: datetime) -> bool:
        """Whether this memory was the current version at ``instant`` (naive = UTC)."""
        at = to_utc(instant, name="instant")
        return self.valid_from <= at and (self.valid_until is None or at < self.valid_until)


@dataclass(frozen=True)
class SearchResult:
    """One hit of :meth:`HierarchicalMemory.search`.

    ``similarity`` is the cosine similarity of the memory to the query (-1..1);
    ``score`` is the fused ranking score the results are ordered by (hybrid
    vector and keyword ranks, importance and recency); ``text_rank`` and
    ``vector_rank`` are the 1-based ranks in each list, ``None`` when absent.
    """

    memory: Memory
    similarity: float
    score: float
    vector_rank: int | None = None
    text_rank: int | None = None


def updated(record: _Record, **changes: Any) -> _Record:
    """``dataclasses.replace`` for a Memory or a SearchResult without running
    ``__init__`` again (about 1 µs against 13 µs): every search answered
    from the cache brings the recall counts of its results up to date, and
    neither class checks its fields there. Unknown field names are refused, as there."""
    unknown = changes.keys() - record.__dict__.keys()
    if unknown:
        raise TypeError(f"{type(record).__name__} has no field {', '.join(sorted(unknown))}")
    return _without_init(type(record), record.__dict__, **changes)


def assembled(fields: dict[str, Any]) -> Memory:
    """A Memory from every one of its fields, without running ``__init__`` (a
    frozen dataclass sets each field through ``object.__setattr__``: 7 µs
    against 1.5 µs): for memories read back from the store, which were checked
    when they were written. A missing or unknown field is refused."""
    if fields.keys() != _MEMORY_FIELDS:
        raise TypeError(f"Memory fields expected: {sorted(_MEMORY_FIELDS)}, got {sorted(fields)}")
    return _without_init(Memory, fields)


_MEMORY_FIELDS = frozenset(Memory.__dataclass_fields__)


def _without_init(kind: type[_Record], fields: Mapping[str, Any], **changes: Any) -> _Record:
    """An instance of ``kind`` holding ``fields`` (and ``changes``), set without ``__init__``."""
    record = object.__new__(kind)
    record.__dict__.update(fields, **changes)
    return record


@dataclass(frozen=True)
class NewMemory:
    """One memory to write with :meth:`HierarchicalMemory.add_many`.

    Fields left ``None`` take the defaults of ``add_many``'s keyword arguments.
    ``created_at`` and ``valid_from`` keep past timestamps (imports of old
    conversations); naive datetimes are taken as UTC. ``embedding`` lets a
    caller supply a precomputed vector (it must match the embedder's dimension).
    """

    content: str
    user_id: str | None = None
    session_id: str | None = None
    agent_id: str | None = None
    turn_id: str | None = None
    category: MemoryCategory | str | None = None
    importance: float | None = None
    scope: ScopeLevel | str | None = None
    entity_refs: Sequence[str] | None = None
    metadata: Mapping[str, Any] | None = None
    created_at: datetime | None = None
    valid_from: datetime | None = None
    embedding: Sequence[float] | np.ndarray[Any, Any] | None = None
