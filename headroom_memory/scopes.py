"""Scope rules as plain functions: which level a write lands at, who sees what,
and where a promotion goes. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidInputError
from .models import Memory, ScopeLevel
from .ports import VectorFilter

__all__ = ["ScopeIds", "is_visible", "parent_scope", "resolve_scope", "validate_id"]


@dataclass(frozen=True)
class ScopeIds:
    """The ids a memory carries: exactly those down to its level."""

    scope: ScopeLevel
    session_id: str | None
    agent_id: str | None
    turn_id: str | None


def validate_id(value: object, name: str, *, required: bool = False) -> str | None:
    """Return ``value`` if it is a usable id; raise InvalidInputError naming ``name``."""
    if value is None:
        if required:
            raise InvalidInputError(f"{name} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > 512:
        raise InvalidInputError(f"{name} is longer than 512 characters")
    return value


def resolve_scope(
    scope: ScopeLevel | str | None,
    session_id: str | None,
    agent_id: str | None,
    turn_id: str | None,
) -> ScopeIds:
    """The level and ids a new memory is stored with.

    Without ``scope`` the level is the deepest whose id is given (turn, then
    agent, then session, else user). With a ``scope``, its own id must be given,
    and ids below it are dropped: a USER memory written from inside a session is
    visible in every session of that user.
    """
    if scope is None:
        if turn_id is not None:
            level = ScopeLevel.TURN
        elif agent_id is not None:
            level = ScopeLevel.AGENT
        elif session_id is not None:
            level = ScopeLevel.SESSION
        else:
            level = ScopeLevel.USER
    else:
        level = ScopeLevel.parse(scope)
    required = {ScopeLevel.SESSION: ("session_id", session_id),
                ScopeLevel.AGENT: ("agent_id", agent_id),
                ScopeLevel.TURN: ("turn_id", turn_id)}.get(level)
    if required is not None and required[1] is None:
        raise InvalidInputError(f"scope {level.value!r} needs {required[0]}, which was not given")
    depth = level.depth
    return ScopeIds(
        scope=level,
        session_id=session_id if depth >= 1 else None,
        agent_id=agent_id if depth >= 2 else None,
        turn_id=turn_id if depth >= 3 else None,
    )


def is_visible(memory: Memory, reader: VectorFilter) -> bool:
    """Whether ``reader`` sees ``memory`` by path visibility, or by subtree
    visibility when ``reader.subtree`` (currency aside)."""
    if memory.user_id != reader.user_id:
        return False
    if reader.subtree:
        return all(wanted is None or wanted == have for wanted, have in (
            (reader.session_id, memory.session_id), (reader.agent_id, memory.agent_id),
            (reader.turn_id, memory.turn_id)))
    depth = memory.scope.depth
    if depth >= 1 and memory.session_id != reader.session_id:
        return False
    if depth >= 2 and memory.agent_id != reader.agent_id:
        return False
    return not (depth >= 3 and memory.turn_id != reader.turn_id)


def parent_scope(memory: Memory) -> ScopeIds | None:
    """Where a promotion of ``memory`` goes: the next broader level whose id the
    memory carries (turn to agent or session, agent to session or user, session
    to user); ``None`` for a USER memory."""
    order = [ScopeLevel.USER, ScopeLevel.SESSION, ScopeLevel.AGENT, ScopeLevel.TURN]
    ids = {ScopeLevel.SESSION: memory.session_id, ScopeLevel.AGENT: memory.agent_id}
    for level in reversed(order[: memory.scope.depth]):
        if level is ScopeLevel.USER or ids.get(level) is not None:
            return resolve_scope(level, memory.session_id, memory.agent_id, memory.turn_id)
    return None
