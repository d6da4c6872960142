"""HeadroomStore: a LangGraph ``BaseStore`` (long-term memory) over headroom-memory.

Needs the optional ``langgraph`` package (``pip install 'langchain-headroom[agents]'``).

Namespaces map onto scopes, one label per level: ``(user_id,)`` is the user's
own level, ``(user_id, session_id)`` a session, ``(user_id, session_id,
agent_id)`` an agent in it and ``(user_id, session_id, agent_id, turn_id)`` a
turn. So an item put at ``("alice",)`` is a user-level memory that
``with_memory``, ``RunnableWithMemory`` and ``HeadroomMemoryMiddleware`` inject
into every session of alice, and the memories they extract are items too (their
key is the memory id). Each item is one memory: the text indexed is the value's
``index`` fields (or the store's ``index_fields``), by default its ``content``
/ ``text`` / ``memory`` string, else the whole value as JSON; the value itself
is kept in the memory's metadata. Putting an existing key supersedes the
memory (the old version stays in ``get_history``); deleting removes every
version in that namespace and nothing elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from headroom_memory import (
    HierarchicalMemory,
    InvalidInputError,
    Memory,
    MemoryCategory,
    MemoryConflictError,
    MemoryFilter,
    MemoryNotFoundError,
    ScopeLevel,
    SyncMemory,
)

from ._common import open_memory

__all__ = ["HeadroomStore"]

KEY, VALUE, CREATED = "store_key", "store_value", "store_created_at"
_LEVELS = (ScopeLevel.USER, ScopeLevel.SESSION, ScopeLevel.AGENT, ScopeLevel.TURN)
_TEXT_FIELDS = ("content", "text", "memory")
_OPERATORS = {
    "$eq": lambda a, b: a == b, "$ne": lambda a, b: a != b,
    "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b,
}


class HeadroomStore(BaseStore):
    """A LangGraph store whose items are headroom memories (see the module doc for the mapping).

    :param memory: the memory to use (the caller keeps owning it), or
    :param db_path: a SQLite file to open one on.
    :param index_fields: value fields whose text is indexed when ``put`` names none.
    """

    supports_ttl = True

    def __init__(self, memory: SyncMemory | None = None, *, db_path: str | None = None,
                 index_fields: Sequence[str] | None = None) -> None:
        self.memory = open_memory(memory, db_path)
        if index_fields is not None and (isinstance(index_fields, str) or not all(
                isinstance(f, str) and f for f in index_fields)):
            raise InvalidInputError(f"index_fields must be a list of field names, got {index_fields!r}")
        self.index_fields = None if index_fields is None else list(index_fields)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order and return one result per operation."""
        return self.memory.runner.run(self._execute(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """The async form of :meth:`batch`."""
        return await self.memory.runner.run_async(self._execute(list(ops)))

    # -- operations ----------------------------------------------------------

    async def _execute(self, ops: list[Op]) -> list[Result]:
        engine = self.memory.engine
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                found = await _current(engine, op.namespace, op.key)
                results.append(None if found is None else _item(found))
            elif isinstance(op, PutOp):
                await self._put(engine, op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(await _search(engine, op))
            elif isinstance(op, ListNamespacesOp):
                results.append(await _list_namespaces(engine, op))
            else:
                raise InvalidInputError(f"HeadroomStore cannot run {type(op).__name__}")
        return results

    async def _put(self, engine: HierarchicalMemory, op: PutOp) -> None:
        if not isinstance(op.key, str) or not op.key:
            raise InvalidInputError(f"key must be a non-empty string, got {op.key!r}")
        if op.value is None:
            await _delete(engine, op.namespace, op.key)
            return
        if not isinstance(op.value, Mapping):
            raise InvalidInputError(f"value must be a dict, got {type(op.value).__name__}")
        if op.index is not None and op.index is not False and (isinstance(op.index, str) or not all(
                isinstance(f, str) and f for f in op.index)):
            raise InvalidInputError(f"index must be False, None or a list of field names, got {op.index!r}")
        text = self._text(op.value, op.index)
        category, importance = _category(op.value), _importance(op.value)
        ttl = None if op.ttl is None else timedelta(minutes=op.ttl)
        for _ in range(3):  # another writer may supersede the same key first: read again
            old = await _current(engine, op.namespace, op.key)
            metadata = {KEY: op.key, VALUE: dict(op.value),
                        CREATED: _created(old).isoformat() if old else None}
            try:
                if old is None:
                    user, session, agent, turn = _node(op.namespace)
                    await engine.add(text, user, session, agent, turn, category=category or MemoryCategory.FACT,
                                     importance=0.5 if importance is None else importance, metadata=metadata,
                                     scope=_LEVELS[len(op.namespace) - 1], dedup=False, ttl=ttl)
                else:
                    await engine.supersede(old.id, text, user_id=old.user_id, category=category,
                                           importance=importance, metadata=metadata, ttl=ttl)
                return
            except MemoryConflictError:
                continue
        raise MemoryConflictError(f"item {op.key!r} in {op.namespace} kept changing while it was being put")

    def _text(self, value: Mapping[str, Any], index: Any) -> str:
        """The text to embed and index for a value."""
        fields = self.index_fields if index is None else (None if index is False else index)
        if fields:
            parts = [_text_of(_field(value, path)) for path in fields]
            text = " ".join(p for p in parts if p)
            if text.strip():
                return text
        for name in _TEXT_FIELDS:
            if isinstance(value.get(name), str) and value[name].strip():
                return str(value[name])
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


# -- namespaces and items ----------------------------------------------------------


def _node(namespace: tuple[str, ...]) -> tuple[str, str | None, str | None, str | None]:
    """(user, session, agent, turn) of a namespace; deeper levels are None."""
    if not isinstance(namespace, tuple) or not 1 <= len(namespace) <= 4:
        raise InvalidNamespaceError(
            f"HeadroomStore namespaces are (user_id[, session_id[, agent_id[, turn_id]]]), 1 to 4 labels; "
            f"got {namespace!r}"
        )
    padded = (*namespace, None, None, None)
    return padded[0] or "", padded[1], padded[2], padded[3]


def _exact(namespace: tuple[str, ...], **extra: Any) -> MemoryFilter:
    """The memories stored exactly at ``namespace``."""
    user, session, agent, turn = _node(namespace)
    return MemoryFilter(user_id=user, session_id=session, agent_id=agent, turn_id=turn,
                        scopes=[_LEVELS[len(namespace) - 1]], **extra)


def _namespace(memory: Memory) -> tuple[str, ...]:
    ids = (memory.user_id, memory.session_id, memory.agent_id, memory.turn_id)[: memory.scope.depth + 1]
    return tuple(i for i in ids if i is not None)


async def _current(engine: HierarchicalMemory, namespace: tuple[str, ...], key: str) -> Memory | None:
    """The current memory of an item: by its store key, else a memory id at that namespace."""
    found = await engine.query(_exact(namespace, metadata={KEY: key}))
    if found:
        return found[-1]
    try:
        memory = await engine.get(key, user_id=_node(namespace)[0])
    except (MemoryNotFoundError, InvalidInputError):  # not a memory id: no such item
        return None
    if memory.is_current and KEY not in memory.metadata and _namespace(memory) == namespace:
        return memory
    return None


def _created(memory: Memory) -> datetime:
    stamp = memory.metadata.get(CREATED)
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) else memory.created_at


def _item(memory: Memory, score: float | None = None, *, scored: bool = False) -> Item:
    value = memory.metadata.get(VALUE)
    if not isinstance(value, dict):
        value = {"content": memory.content, "category": memory.category.value, "importance": memory.importance}
    key = str(memory.metadata.get(KEY) or memory.id)
    if scored:
        return SearchItem(_namespace(memory), key, value, _created(memory), memory.valid_from, score)
    return Item(value=value, key=key, namespace=_namespace(memory), created_at=_created(memory),
                updated_at=memory.valid_from)


async def _delete(engine: HierarchicalMemory, namespace: tuple[str, ...], key: str) -> None:
    current = await _current(engine, namespace, key)
    if current is None:
        return
    for version in await engine.get_history(current.id, current.user_id):
        if _namespace(version) == namespace:
            await engine.delete(version.id, version.user_id)


# -- search and listing ------------------------------------------------------------


async def _search(engine: HierarchicalMemory, op: SearchOp) -> list[SearchItem]:
    if not op.namespace_prefix:
        raise InvalidNamespaceError(
            "HeadroomStore keeps users apart: search needs a namespace prefix that starts with the user id"
        )
    user, session, agent, turn = _node(op.namespace_prefix)
    wanted = op.offset + op.limit
    if not op.query:
        everything = await engine.query(MemoryFilter(user_id=user, session_id=session, agent_id=agent,
                                                     turn_id=turn))
        kept = [m for m in reversed(everything) if _matches(_item(m).value, op.filter)]
        return [_item(m, None, scored=True) for m in kept[op.offset : wanted]]  # type: ignore[misc]
    pool = max(wanted, 10)
    while True:
        results = await engine.search(op.query, user, session, agent, turn, top_k=pool, min_similarity=-1.0,
                                      subtree=True)
        kept_results = [r for r in results if _matches(_item(r.memory).value, op.filter)]
        if len(kept_results) >= wanted or len(results) < pool:
            break
        pool *= 4
    return [_item(r.memory, r.score, scored=True) for r in kept_results[op.offset : wanted]]  # type: ignore[misc]


async def _list_namespaces(engine: HierarchicalMemory, op: ListNamespacesOp) -> list[tuple[str, ...]]:
    prefix = next((c.path for c in op.match_conditions or () if c.match_type == "prefix"), ())
    user = prefix[0] if prefix and prefix[0] != "*" else None
    namespaces: set[tuple[str, ...]] = set()
    for ids in await engine.nodes(MemoryFilter(user_id=user)):
        full = tuple(i for i in ids if i is not None)
        for depth in range(1, len(full) + 1):  # a namespace holding items, and every one above it
            namespaces.add(full[:depth])
    matching = sorted(
        ns[: op.max_depth] if op.max_depth is not None else ns
        for ns in namespaces if all(_matches_condition(c, ns) for c in op.match_conditions or ())
    )
    unique = sorted(set(matching))
    return unique[op.offset : op.offset + op.limit]


def _matches_condition(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(path) > len(namespace):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path):]
    return all(want == "*" or want == have for want, have in zip(path, part))


def _matches(value: Mapping[str, Any], flt: Mapping[str, Any] | None) -> bool:
    """Whether a value passes a LangGraph filter (exact values or $eq/$ne/$gt/$gte/$lt/$lte)."""
    for path, wanted in (flt or {}).items():
        have = _field(value, path)
        if isinstance(wanted, Mapping) and wanted and all(str(k).startswith("$") for k in wanted):
            for operator, operand in wanted.items():
                compare = _OPERATORS.get(operator)
                if compare is None:
                    raise InvalidInputError(f"unknown filter operator {operator!r} (use {', '.join(_OPERATORS)})")
                try:
                    if not compare(have, operand):
                        return False
                except TypeError:
                    return False
        elif have != wanted:
            return False
    return True


def _field(value: Any, path: str) -> Any:
    """A (dotted) field of a value, or None."""
    for part in str(path).split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _category(value: Mapping[str, Any]) -> MemoryCategory | None:
    try:
        return MemoryCategory.parse(value["category"]) if "category" in value else None
    except (InvalidInputError, ValueError):
        return None


def _importance(value: Mapping[str, Any]) -> float | None:
    raw = value.get("importance")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and 0 <= raw <= 1:
        return float(raw)
    return None
