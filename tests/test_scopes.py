"""Scope rules as plain functions."""

from __future__ import annotations

import pytest

from headroom_memory import InvalidInputError, Memory, ScopeLevel, VectorFilter
from headroom_memory.scopes import is_visible, parent_scope, resolve_scope


def test_resolve_scope_takes_the_deepest_given_id() -> None:
    assert resolve_scope(None, "s", "a", None).scope is ScopeLevel.AGENT
    ids = resolve_scope("session", "s", "a", "t")
    assert (ids.scope, ids.session_id, ids.agent_id, ids.turn_id) == (ScopeLevel.SESSION, "s", None, None)
    with pytest.raises(InvalidInputError, match="agent_id"):
        resolve_scope("agent", "s", None, None)


def test_parent_scope_goes_one_level_up() -> None:
    turn = Memory(id="1", content="c", user_id="u", scope=ScopeLevel.TURN, session_id="s", turn_id="t")
    assert parent_scope(turn).scope is ScopeLevel.SESSION  # type: ignore[union-attr]
    agent_turn = Memory(id="2", content="c", user_id="u", scope=ScopeLevel.TURN, session_id="s",
                        agent_id="a", turn_id="t")
    assert parent_scope(agent_turn).scope is ScopeLevel.AGENT  # type: ignore[union-attr]
    session = Memory(id="3", content="c", user_id="u", scope=ScopeLevel.SESSION, session_id="s")
    assert parent_scope(session).scope is ScopeLevel.USER  # type: ignore[union-attr]
    assert parent_scope(Memory(id="4", content="c", user_id="u")) is None


def test_visibility_is_the_path_up_the_tree() -> None:
    mem = Memory(id="1", content="c", user_id="u", scope=ScopeLevel.AGENT, session_id="s", agent_id="a")
    assert is_visible(mem, VectorFilter("u", "s", "a"))
    assert is_visible(mem, VectorFilter("u", "s", "a", "t"))
    assert not is_visible(mem, VectorFilter("u", "s"))
    assert not is_visible(mem, VectorFilter("u", "s", "b"))
    assert not is_visible(mem, VectorFilter("v", "s", "a"))
