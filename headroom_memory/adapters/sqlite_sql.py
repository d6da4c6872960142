"""SQL builders for the SQLite adapters: plain functions returning (sql, params).

Values always travel as named parameters; the only text spliced into SQL is
column names and fixed keywords chosen here, never caller input.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..models import ScopeLevel
from ..ports import MemoryFilter, VectorFilter
from ..timeutil import to_micros

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "current_clause",
    "fts_match",
    "filter_clause",
    "select_sql",
    "user_key",
    "visibility_clause",
]

SCHEMA_VERSION = 1

COLUMNS = (
    "seq, id, content, category, importance, scope, user_id, session_id, agent_id, turn_id, "
    "entity_refs, metadata, created_at, valid_from, valid_until, supersedes, superseded_by, "
    "promoted_from, access_count, last_accessed"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS memories (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    content TEXT NOT NULL,
    category TEXT NOT NULL,
    importance REAL NOT NULL,
    scope TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT,
    agent_id TEXT,
    turn_id TEXT,
    user_key TEXT NOT NULL,
    entity_refs TEXT NOT NULL DEFAULT '[]',
    metadata TEXT NOT NULL DEFAULT '{}',
    embedding BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    valid_from INTEGER NOT NULL,
    valid_until INTEGER,
    supersedes TEXT,
    superseded_by TEXT,
    promoted_from TEXT,
    access_count INTEGER NOT NULL DEFAULT 0,
    last_accessed INTEGER
);
CREATE INDEX IF NOT EXISTS idx_memories_path
    ON memories (user_id, scope, session_id, agent_id, turn_id);
CREATE INDEX IF NOT EXISTS idx_memories_user_time ON memories (user_id, valid_from);
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(
    content, user_key, content='memories', content_rowid='seq',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, content, user_key) VALUES (new.seq, new.content, new.user_key);
END;
CREATE TRIGGER IF NOT EXISTS memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content, user_key)
        VALUES ('delete', old.seq, old.content, old.user_key);
END;
CREATE TRIGGER IF NOT EXISTS memories_fts_update AFTER UPDATE OF content ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content, user_key)
        VALUES ('delete', old.seq, old.content, old.user_key);
    INSERT INTO memories_fts (rowid, content, user_key) VALUES (new.seq, new.content, new.user_key);
END;
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_messages_session ON messages (user_id, session_id, seq);
CREATE TABLE IF NOT EXISTS counters (
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, name)
);
"""


def user_key(user_id: str) -> str:
    """The single FTS token standing for a user: 'u' + 16 hex digits of a hash.

    The text index is searched with ``user_key : "<key>" AND content : (...)``, so
    FTS5 intersects the query terms with that user's short posting list instead
    of scoring every user's matches. It only narrows: visibility is still
    checked exactly in SQL, so a (vanishingly unlikely) hash collision cannot leak.
    """
    return "u" + hashlib.blake2b(user_id.encode("utf-8"), digest_size=8).hexdigest()


def fts_match(terms: str, user_id: str) -> str:
    """The MATCH expression for quoted ``terms`` (see :func:`fts_query`) of one user."""
    return f'user_key : "{user_key(user_id)}" AND content : ({terms})'


def current_clause(now: int, alias: str = "m") -> tuple[str, dict[str, Any]]:
    """Rows neither superseded nor expired at ``now`` (microseconds)."""
    return (
        f"{alias}.superseded_by IS NULL AND ({alias}.valid_until IS NULL OR {alias}.valid_until > :now)",
        {"now": now},
    )


def visibility_clause(flt: VectorFilter, now: int, alias: str = "m") -> tuple[str, dict[str, Any]]:
    """Current rows on the reader's path up the scope tree (or, with
    ``flt.subtree``, at or below its node), plus category and importance filters."""
    a = alias
    params: dict[str, Any] = {
        "v_user": flt.user_id,
        "v_session": flt.session_id,
        "v_agent": flt.agent_id,
        "v_turn": flt.turn_id,
    }
    parts = [f"{a}.user_id = :v_user"]
    if flt.subtree:
        for name, param in (("session_id", "v_session"), ("agent_id", "v_agent"), ("turn_id", "v_turn")):
            if params[param] is not None:
                parts.append(f"{a}.{name} = :{param}")
    else:
        parts.append(
            f"({a}.scope = '{ScopeLevel.USER.value}'"
            f" OR ({a}.scope = '{ScopeLevel.SESSION.value}' AND {a}.session_id IS :v_session)"
            f" OR ({a}.scope = '{ScopeLevel.AGENT.value}' AND {a}.session_id IS :v_session"
            f" AND {a}.agent_id IS :v_agent)"
            f" OR ({a}.scope = '{ScopeLevel.TURN.value}' AND {a}.session_id IS :v_session"
            f" AND {a}.agent_id IS :v_agent AND {a}.turn_id IS :v_turn))"
        )
    current, current_params = current_clause(now, a)
    parts.append(current)
    params.update(current_params)
    _add_category_and_importance(parts, params, a, flt.categories, flt.min_importance, None)
    return " AND ".join(parts), params


def filter_clause(flt: MemoryFilter, now: int, alias: str = "m") -> tuple[str, dict[str, Any]]:
    """The WHERE clause of a low-level listing: exact matches on given fields."""
    a = alias
    parts: list[str] = []
    params: dict[str, Any] = {}
    for name in ("user_id", "session_id", "agent_id", "turn_id"):
        value = getattr(flt, name)
        if value is not None:
            parts.append(f"{a}.{name} = :f_{name}")
            params[f"f_{name}"] = value
    if flt.scopes is not None:
        names = [f":f_scope{i}" for i in range(len(flt.scopes))]
        parts.append(f"{a}.scope IN ({', '.join(names) or 'NULL'})")
        params.update({f"f_scope{i}": ScopeLevel.parse(s).value for i, s in enumerate(flt.scopes)})
    if flt.as_of is not None:
        parts.append(f"{a}.valid_from <= :f_as_of AND ({a}.valid_until IS NULL OR {a}.valid_until > :f_as_of)")
        params["f_as_of"] = to_micros(flt.as_of)
    elif not flt.include_superseded:
        current, current_params = current_clause(now, a)
        parts.append(current)
        params.update(current_params)
    if flt.created_after is not None or flt.created_before is not None:
        if flt.created_after is not None:
            parts.append(f"{a}.created_at >= :f_after")
            params["f_after"] = to_micros(flt.created_after)
        if flt.created_before is not None:
            parts.append(f"{a}.created_at < :f_before")
            params["f_before"] = to_micros(flt.created_before)
    _add_category_and_importance(
        parts, params, a, flt.categories, flt.min_importance, flt.max_importance
    )
    for i, (key, value) in enumerate((flt.metadata or {}).items()):
        parts.append(f"json_extract({a}.metadata, :f_mkey{i}) = :f_mval{i}")
        params[f"f_mkey{i}"] = "$." + json.dumps(key)
        params[f"f_mval{i}"] = value
    return (" AND ".join(parts) or "1"), params


def _add_category_and_importance(
    parts: list[str],
    params: dict[str, Any],
    alias: str,
    categories: Any,
    min_importance: float | None,
    max_importance: float | None,
) -> None:
    if categories is not None:
        names = [f":c{i}" for i in range(len(categories))]
        parts.append(f"{alias}.category IN ({', '.join(names) or 'NULL'})")
        params.update({f"c{i}": c.value for i, c in enumerate(categories)})
    if min_importance is not None:
        parts.append(f"{alias}.importance >= :min_importance")
        params["min_importance"] = min_importance
    if max_importance is not None:
        parts.append(f"{alias}.importance <= :max_importance")
        params["max_importance"] = max_importance


def select_sql(where: str, *, order: str = "m.valid_from, m.seq", tail: str = "") -> str:
    """A SELECT of every memory column (no embedding) from ``memories m``."""
    columns = ", ".join(f"m.{c.strip()}" for c in COLUMNS.split(","))
    return f"SELECT {columns} FROM memories m WHERE {where} ORDER BY {order} {tail}".strip()
