"""Memories as JSON objects: every field, timestamps in ISO 8601 UTC (export/import)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .models import Memory, MemoryCategory, ScopeLevel
from .timeutil import to_utc
from .validation import check_content, check_entity_refs, check_importance, check_metadata

__all__ = ["memory_from_json", "memory_to_json"]

_TIMES = ("created_at", "valid_from", "valid_until", "last_accessed")


def memory_to_json(memory: Memory, *, embedding: np.ndarray[Any, Any] | None = None) -> dict[str, Any]:
    """A JSON-ready dict of every field (and the embedding, when given)."""
    data: dict[str, Any] = {
        "id": memory.id, "content": memory.content, "user_id": memory.user_id,
        "category": memory.category.value, "importance": memory.importance, "scope": memory.scope.value,
        "session_id": memory.session_id, "agent_id": memory.agent_id, "turn_id": memory.turn_id,
        "entity_refs": list(memory.entity_refs), "metadata": dict(memory.metadata),
        "supersedes": memory.supersedes, "superseded_by": memory.superseded_by,
        "promoted_from": None if memory.promoted_from is None else memory.promoted_from.value,
        "access_count": memory.access_count,
    }
    for name in _TIMES:
        value = getattr(memory, name)
        data[name] = None if value is None else value.isoformat()
    if embedding is not None:
        data["embedding"] = [float(x) for x in embedding]
    return data


def _time(data: dict[str, Any], name: str, required: bool) -> datetime | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidInputError(f"{name} is missing")
        return None
    try:
        return to_utc(datetime.fromisoformat(str(value)), name=name)
    except ValueError:
        raise InvalidInputError(f"{name} is not an ISO 8601 datetime: {value!r}") from None


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidInputError(f"{name} must be a non-empty string or null, got {value!r}")
    return value


def memory_from_json(data: Any) -> tuple[Memory, np.ndarray[Any, Any] | None]:
    """(Memory, embedding or None) from :func:`memory_to_json` output, validated."""
    if not isinstance(data, dict):
        raise InvalidInputError("a memory must be a JSON object")
    for name in ("id", "user_id"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise InvalidInputError(f"{name} must be a non-empty string")
    count = data.get("access_count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidInputError(f"access_count must be a non-negative integer, got {count!r}")
    promoted = data.get("promoted_from")
    memory = Memory(
        id=data["id"], content=check_content(data.get("content")), user_id=data["user_id"],
        category=MemoryCategory.parse(data.get("category", "fact")),
        importance=check_importance(data.get("importance", 0.5)),
        scope=ScopeLevel.parse(data.get("scope", "user")),
        session_id=_optional_str(data, "session_id"), agent_id=_optional_str(data, "agent_id"),
        turn_id=_optional_str(data, "turn_id"),
        entity_refs=check_entity_refs(data.get("entity_refs") or []),
        metadata=check_metadata(data.get("metadata") or {}),
        created_at=_time(data, "created_at", True),  # type: ignore[arg-type]
        valid_from=_time(data, "valid_from", True),  # type: ignore[arg-type]
        valid_until=_time(data, "valid_until", False),
        supersedes=_optional_str(data, "supersedes"), superseded_by=_optional_str(data, "superseded_by"),
        promoted_from=None if promoted is None else ScopeLevel.parse(promoted),
        access_count=count, last_accessed=_time(data, "last_accessed", False),
    )
    raw = data.get("embedding")
    if raw is None:
        return memory, None
    try:
        vector = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError("embedding must be a list of numbers") from None
    return memory, vector
