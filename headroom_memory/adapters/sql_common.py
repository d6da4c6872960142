"""SQL shared by the SQLite and PostgreSQL stores: the WHERE clauses of scope
visibility and listings, the column list, and rows to and from memories.

Both stores keep the same columns with the same meaning (times as integer
microseconds since the epoch, UTC). What differs is spelled by a
:class:`SqlDialect`: how a named parameter is written, null-safe equality, and
matching a metadata key. Values always travel as named parameters; the only
text spliced into SQL is column names and fixed keywords chosen here, never
caller input.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models import Memory, MemoryCategory, ScopeLevel, assembled
from ..ports import MemoryFilter, RankingRow, VectorFilter
from ..timeutil import from_micros, to_micros

__all__ = ["COLUMNS", "POSTGRES", "RANKING_COLUMNS", "SQLITE", "SqlDialect", "memory_from_row", "ranking_row",
           "row_params"]

COLUMNS = (
    "seq, id, content, category, importance, scope, user_id, session_id, agent_id, turn_id, "
    "entity_refs, metadata, created_at, valid_from, valid_until, supersedes, superseded_by, "
    "promoted_from, access_count, last_accessed"
)

_COLUMN_NAMES = [c.strip() for c in COLUMNS.split(",")]
# A memory's columns, then what ranking needs beside them: when it was last seen, its embedding.
RANKING_COLUMNS = f"{COLUMNS}, COALESCE(last_accessed, valid_from), embedding"
_MEMORY_WIDTH = len(_COLUMN_NAMES)
_IMPORTANCE = _COLUMN_NAMES.index("importance")


@dataclass(frozen=True)
class SqlDialect:
    """How one database spells the few things the shared clauses need."""

    name: str
    placeholder: str  # format of a named parameter, e.g. ":{}" or "%({})s"
    null_safe_equal: str  # "IS" (SQLite) or "IS NOT DISTINCT FROM" (PostgreSQL)

    def p(self, name: str) -> str:
        """A named parameter."""
        return self.placeholder.format(name)

    def in_list(self, prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        """``a, b, c`` parameters for an IN list (``NULL`` when empty)."""
        count = len(values)
        names = _in_list_names if count <= _KEPT_IN_LIST else _in_list_names.__wrapped__  # long ones are not kept
        sql, keys = names(self.placeholder, prefix, count)
        return sql, dict(zip(keys, values))

    def metadata_match(self, alias: str, index: int, key: str, value: Any) -> tuple[str, dict[str, Any]]:
        """Rows whose metadata has ``key`` equal to ``value``."""
        k, v = f"f_mkey{index}", f"f_mval{index}"
        if self.name == "sqlite":
            return f"json_extract({alias}.metadata, {self.p(k)}) = {self.p(v)}", {k: "$." + json.dumps(key), v: value}
        return f"{alias}.metadata -> {self.p(k)} = {self.p(v)}::jsonb", {k: key, v: json.dumps(value)}

    def current_clause(self, now: int, alias: str = "m") -> tuple[str, dict[str, Any]]:
        """Rows neither superseded nor expired at ``now`` (microseconds)."""
        return (
            f"{alias}.superseded_by IS NULL AND ({alias}.valid_until IS NULL OR {alias}.valid_until > {self.p('now')})",
            {"now": now},
        )

    def visibility_clause(self, flt: VectorFilter, now: int, alias: str = "m") -> tuple[str, dict[str, Any]]:
        """Current rows on the reader's path up the scope tree (or, with
        ``flt.subtree``, at or below its node), plus category and importance filters."""
        a, p, same = alias, self.p, self.null_safe_equal
        params: dict[str, Any] = {
            "v_user": flt.user_id, "v_session": flt.session_id, "v_agent": flt.agent_id, "v_turn": flt.turn_id,
        }
        parts = [f"{a}.user_id = {p('v_user')}"]
        if flt.subtree:
            for name, param in (("session_id", "v_session"), ("agent_id", "v_agent"), ("turn_id", "v_turn")):
                if params[param] is not None:
                    parts.append(f"{a}.{name} = {p(param)}")
        else:
            session = f"{a}.session_id {same} {p('v_session')}"
            agent = f"{a}.agent_id {same} {p('v_agent')}"
            turn = f"{a}.turn_id {same} {p('v_turn')}"
            parts.append(
                f"({a}.scope = '{ScopeLevel.USER.value}'"
                f" OR ({a}.scope = '{ScopeLevel.SESSION.value}' AND {session})"
                f" OR ({a}.scope = '{ScopeLevel.AGENT.value}' AND {session} AND {agent})"
                f" OR ({a}.scope = '{ScopeLevel.TURN.value}' AND {session} AND {agent} AND {turn}))"
            )
        current, current_params = self.current_clause(now, a)
        parts.append(current)
        params.update(current_params)
        self._category_and_importance(parts, params, a, flt.categories, flt.min_importance, None)
        return " AND ".join(parts), params

    def filter_clause(self, flt: MemoryFilter, now: int, alias: str = "m") -> tuple[str, dict[str, Any]]:
        """The WHERE clause of a low-level listing: exact matches on given fields."""
        a, p = alias, self.p
        parts: list[str] = []
        params: dict[str, Any] = {}
        for name in ("user_id", "session_id", "agent_id", "turn_id"):
            value = getattr(flt, name)
            if value is not None:
                parts.append(f"{a}.{name} = {p('f_' + name)}")
                params[f"f_{name}"] = value
        if flt.scopes is not None:
            names, scope_params = self.in_list("f_scope", [ScopeLevel.parse(s).value for s in flt.scopes])
            parts.append(f"{a}.scope IN ({names})")
            params.update(scope_params)
        if flt.as_of is not None:
            parts.append(f"{a}.valid_from <= {p('f_as_of')} AND ({a}.valid_until IS NULL OR "
                         f"{a}.valid_until > {p('f_as_of')})")
            params["f_as_of"] = to_micros(flt.as_of)
        elif not flt.include_superseded:
            current, current_params = self.current_clause(now, a)
            parts.append(current)
            params.update(current_params)
        if flt.created_after is not None:
            parts.append(f"{a}.created_at >= {p('f_after')}")
            params["f_after"] = to_micros(flt.created_after)
        if flt.created_before is not None:
            parts.append(f"{a}.created_at < {p('f_before')}")
            params["f_before"] = to_micros(flt.created_before)
        self._category_and_importance(parts, params, a, flt.categories, flt.min_importance, flt.max_importance)
        for i, (key, value) in enumerate((flt.metadata or {}).items()):
            clause, match_params = self.metadata_match(a, i, key, value)
            parts.append(clause)
            params.update(match_params)
        return (" AND ".join(parts) or "TRUE"), params

    def _category_and_importance(self, parts: list[str], params: dict[str, Any], alias: str, categories: Any,
                                 min_importance: float | None, max_importance: float | None) -> None:
        if categories is not None:
            names, category_params = self.in_list("c", [c.value for c in categories])
            parts.append(f"{alias}.category IN ({names})")
            params.update(category_params)
        if min_importance is not None:
            parts.append(f"{alias}.importance >= {self.p('min_importance')}")
            params["min_importance"] = min_importance
        if max_importance is not None:
            parts.append(f"{alias}.importance <= {self.p('max_importance')}")
            params["max_importance"] = max_importance

    @staticmethod
    def select_sql(where: str, *, table: str = "memories", order: str = "m.valid_from, m.seq", tail: str = "") -> str:
        """A SELECT of every memory column (no embedding) from ``table m``."""
        columns = ", ".join(f"m.{c}" for c in _COLUMN_NAMES)
        return f"SELECT {columns} FROM {table} m WHERE {where} ORDER BY {order} {tail}".strip()


SQLITE = SqlDialect("sqlite", ":{}", "IS")
POSTGRES = SqlDialect("postgres", "%({})s", "IS NOT DISTINCT FROM")


_KEPT_IN_LIST = 512  # IN lists up to this long (every search's) keep their parameter names


@functools.lru_cache(maxsize=1024)
def _in_list_names(placeholder: str, prefix: str, count: int) -> tuple[str, tuple[str, ...]]:
    """The SQL and the parameter names of an IN list of ``count`` values (searches
    build a few of these per question, with the same lengths again and again;
    only lists up to ``_KEPT_IN_LIST`` long are kept, so memory stays bounded)."""
    keys = tuple(f"{prefix}{i}" for i in range(count))
    return ", ".join(placeholder.format(key) for key in keys) or "NULL", keys


def _json(value: Any) -> Any:
    if value == "[]":  # the defaults, most rows' (a new object each time: the caller may change it)
        return []
    if value == "{}":
        return {}
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def memory_from_row(row: Sequence[Any]) -> tuple[int, Memory]:
    """(label, Memory) from a row selected with ``COLUMNS`` (built without
    ``Memory.__init__``: see :func:`~headroom_memory.models.assembled`)."""
    (seq, mid, content, category, importance, scope, user_id, session_id, agent_id, turn_id,
     entity_refs, metadata, created_at, valid_from, valid_until, supersedes, superseded_by,
     promoted_from, access_count, last_accessed) = row
    return int(seq), assembled({
        "id": mid,
        "content": content,
        "user_id": user_id,
        "category": MemoryCategory(category),
        "importance": float(importance),
        "scope": ScopeLevel(scope),
        "session_id": session_id,
        "agent_id": agent_id,
        "turn_id": turn_id,
        "entity_refs": tuple(_json(entity_refs)),
        "metadata": _json(metadata),
        "created_at": from_micros(created_at),
        "valid_from": from_micros(valid_from),
        "valid_until": None if valid_until is None else from_micros(valid_until),
        "supersedes": supersedes,
        "superseded_by": superseded_by,
        "promoted_from": None if promoted_from is None else ScopeLevel(promoted_from),
        "access_count": access_count,
        "last_accessed": None if last_accessed is None else from_micros(last_accessed),
        "embedding": None,
        "merged": False,
    })


def ranking_row(row: Sequence[Any], similarity: float) -> RankingRow:
    """A :class:`RankingRow` from a row selected with ``RANKING_COLUMNS`` (its
    memory is built only when asked for)."""
    return RankingRow(float(row[_IMPORTANCE]), from_micros(row[_MEMORY_WIDTH]), similarity,
                      functools.partial(_memory_of, row))


def _memory_of(row: Sequence[Any]) -> Memory:
    return memory_from_row(row[:_MEMORY_WIDTH])[1]


def row_params(memory: Memory) -> dict[str, Any]:
    """The named parameters of one row (JSON as text, the embedding as float32)."""
    if memory.embedding is None:
        raise ValueError("a memory is stored with its embedding")
    return {
        "id": memory.id,
        "content": memory.content,
        "category": memory.category.value,
        "importance": float(memory.importance),
        "scope": memory.scope.value,
        "user_id": memory.user_id,
        "session_id": memory.session_id,
        "agent_id": memory.agent_id,
        "turn_id": memory.turn_id,
        "entity_refs": json.dumps(list(memory.entity_refs)),
        "metadata": json.dumps(dict(memory.metadata)),
        "embedding": np.asarray(memory.embedding, dtype=np.float32),
        "created_at": to_micros(memory.created_at),
        "valid_from": to_micros(memory.valid_from),
        "valid_until": None if memory.valid_until is None else to_micros(memory.valid_until),
        "supersedes": memory.supersedes,
        "superseded_by": memory.superseded_by,
        "promoted_from": None if memory.promoted_from is None else memory.promoted_from.value,
        "access_count": memory.access_count,
        "last_accessed": None if memory.last_accessed is None else to_micros(memory.last_accessed),
    }
