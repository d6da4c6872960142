"""The default MemoryStore: one SQLite file (aiosqlite, WAL), FTS5 in the same file.

Rows, their full-text entries (maintained by triggers) and supersession links of
one operation commit in one transaction. Every row gets a label (``seq``, an
AUTOINCREMENT key) that only grows; SQLite has one writer at a time, so labels
commit in increasing order across processes and an index can catch up on
``seq > last_seen``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np

from ..errors import (
    ConfigurationError,
    MemoryClosedError,
    MemoryConflictError,
    StorageError,
)
from ..models import Memory, MemoryCategory, ScopeLevel
from ..ports import MemoryFilter, VectorFilter
from ..timeutil import from_micros, to_micros, utc_now
from .sqlite_sql import (
    SCHEMA,
    SCHEMA_VERSION,
    current_clause,
    filter_clause,
    fts_match,
    select_sql,
    user_key,
    visibility_clause,
)

__all__ = ["SQLiteMemoryStore", "map_sqlite_errors", "memory_from_row"]

_INSERT = (
    "INSERT INTO memories (id, content, category, importance, scope, user_id, session_id, "
    "agent_id, turn_id, user_key, entity_refs, metadata, embedding, created_at, valid_from, valid_until, "
    "supersedes, superseded_by, promoted_from, access_count, last_accessed) VALUES "
    "(:id, :content, :category, :importance, :scope, :user_id, :session_id, :agent_id, "
    ":turn_id, :user_key, :entity_refs, :metadata, :embedding, :created_at, :valid_from, :valid_until, "
    ":supersedes, :superseded_by, :promoted_from, :access_count, :last_accessed)"
)


@contextlib.contextmanager
def map_sqlite_errors(path: str) -> Iterator[None]:
    """Translate sqlite3 errors into StorageError, naming the database."""
    try:
        yield
    except sqlite3.Error as exc:
        message = str(exc)
        if "readonly" in message or "read-only" in message:
            detail = "the database is read-only"
        elif "full" in message:
            detail = "the disk is full"
        elif "locked" in message or "busy" in message:
            detail = "the database stayed locked by another writer past busy_timeout"
        else:
            detail = f"the database failed: {message}"
        raise StorageError(f"{detail} ({path})") from exc


def memory_from_row(row: Sequence[Any]) -> tuple[int, Memory]:
    """(label, Memory) from a row selected with ``COLUMNS``."""
    (seq, mid, content, category, importance, scope, user_id, session_id, agent_id, turn_id,
     entity_refs, metadata, created_at, valid_from, valid_until, supersedes, superseded_by,
     promoted_from, access_count, last_accessed) = row
    return seq, Memory(
        id=mid,
        content=content,
        user_id=user_id,
        category=MemoryCategory(category),
        importance=importance,
        scope=ScopeLevel(scope),
        session_id=session_id,
        agent_id=agent_id,
        turn_id=turn_id,
        entity_refs=tuple(json.loads(entity_refs)),
        metadata=json.loads(metadata),
        created_at=from_micros(created_at),
        valid_from=from_micros(valid_from),
        valid_until=None if valid_until is None else from_micros(valid_until),
        supersedes=supersedes,
        superseded_by=superseded_by,
        promoted_from=None if promoted_from is None else ScopeLevel(promoted_from),
        access_count=access_count,
        last_accessed=None if last_accessed is None else from_micros(last_accessed),
    )


def _row_params(memory: Memory) -> dict[str, Any]:
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
        "user_key": user_key(memory.user_id),
        "entity_refs": json.dumps(list(memory.entity_refs)),
        "metadata": json.dumps(dict(memory.metadata)),
        "embedding": np.asarray(memory.embedding, dtype=np.float32).tobytes(),
        "created_at": to_micros(memory.created_at),
        "valid_from": to_micros(memory.valid_from),
        "valid_until": None if memory.valid_until is None else to_micros(memory.valid_until),
        "supersedes": memory.supersedes,
        "superseded_by": memory.superseded_by,
        "promoted_from": None if memory.promoted_from is None else memory.promoted_from.value,
        "access_count": memory.access_count,
        "last_accessed": None if memory.last_accessed is None else to_micros(memory.last_accessed),
    }


def _in_list(prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    names = [f":{prefix}{i}" for i in range(len(values))]
    return ", ".join(names) or "NULL", {f"{prefix}{i}": v for i, v in enumerate(values)}


class SQLiteMemoryStore:
    """MemoryStore and TextIndex on one SQLite database file.

    :param path: the database file, or ``":memory:"``.
    :param busy_timeout: seconds a writer waits for another process's lock.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = str(path)
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.instance_id = ""

    # -- lifecycle -------------------------------------------------------

    async def open(self, *, model: str, dimension: int) -> None:
        """Open (creating when new) and check the embedding model and dimension."""
        if self._closed:
            raise MemoryClosedError("this store was closed; create a new one")
        if self.path != ":memory:":
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise ConfigurationError(f"db_path folder does not exist: {parent}")
        with map_sqlite_errors(self.path):
            connection = aiosqlite.connect(self.path, isolation_level=None)
            # A forgotten close() must not keep the interpreter alive at exit;
            # committed transactions are already durable in the WAL.
            worker = getattr(connection, "_thread", None)
            if worker is not None:
                worker.daemon = True
            self._conn = await connection
            try:
                await self._conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
                await self._conn.execute("PRAGMA journal_mode = WAL")
                await self._conn.execute("PRAGMA synchronous = NORMAL")
                await self._conn.execute("PRAGMA foreign_keys = ON")
                async with self._transaction():
                    for statement in _split_script(SCHEMA):
                        await self._conn.execute(statement)
                    rows = await self._conn.execute_fetchall("SELECT key, value FROM meta")
                    meta: dict[str, str] = {str(k): str(v) for k, v in rows}
                    if not meta:
                        meta = {
                            "schema_version": str(SCHEMA_VERSION),
                            "instance_id": uuid.uuid4().hex,
                            "embedding_model": model,
                            "dimension": str(dimension),
                        }
                        await self._conn.executemany(
                            "INSERT INTO meta (key, value) VALUES (?, ?)", list(meta.items())
                        )
            except BaseException:
                await self._conn.close()
                self._conn = None
                raise
        if int(meta["schema_version"]) > SCHEMA_VERSION:
            await self.close()
            raise ConfigurationError(
                f"{self.path} has schema version {meta['schema_version']}, newer than this "
                f"library's {SCHEMA_VERSION}; upgrade headroom-memory"
            )
        if int(meta["dimension"]) != dimension or meta["embedding_model"] != model:
            await self.close()
            raise ConfigurationError(
                f"{self.path} holds {meta['dimension']}-d embeddings of "
                f"{meta['embedding_model']!r}, but the embedder is {model!r} ({dimension}-d); "
                "open it with the same embedder or use another db_path"
            )
        self.instance_id = meta["instance_id"]

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with map_sqlite_errors(self.path):
                await conn.close()

    @property
    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise MemoryClosedError("the memory store is closed")
        return self._conn

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (lock held)."""
        db = self._db
        async with self._lock:
            with map_sqlite_errors(self.path):
                await db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    if db.in_transaction:
                        await db.execute("ROLLBACK")
                    raise
                else:
                    await db.execute("COMMIT")

    async def _fetchall(self, sql: str, params: Any = ()) -> list[Any]:
        db = self._db
        async with self._lock:
            with map_sqlite_errors(self.path):
                return list(await db.execute_fetchall(sql, params))

    # -- writes ----------------------------------------------------------

    async def insert(self, memories: Sequence[Memory]) -> None:
        """Write memories with their embeddings in one transaction."""
        rows = [_row_params(m) for m in memories]
        async with self._transaction() as db:
            await db.executemany(_INSERT, rows)

    async def supersede(self, old_id: str, new: Memory) -> None:
        """Close ``old_id`` and insert ``new`` atomically; MemoryConflictError when
        ``old_id`` was superseded or expired meanwhile (by any process)."""
        closed_at = to_micros(new.valid_from)
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE memories SET valid_until = :at, superseded_by = :new "
                "WHERE id = :old AND superseded_by IS NULL "
                "AND (valid_until IS NULL OR valid_until > :at)",
                {"at": closed_at, "new": new.id, "old": old_id},
            )
            if cursor.rowcount != 1:
                raise MemoryConflictError(
                    f"memory {old_id!r} is no longer current (superseded or expired); "
                    "supersede the current version instead"
                )
            await db.execute(_INSERT, _row_params(new))

    async def delete(self, memory_ids: Sequence[str]) -> int:
        """Delete memories, relinking their chains around them."""
        if not memory_ids:
            return 0
        deleted = 0
        async with self._transaction() as db:
            for mid in memory_ids:
                rows = list(await db.execute_fetchall(
                    "SELECT supersedes, superseded_by FROM memories WHERE id = ?", (mid,)
                ))
                if not rows:
                    continue
                before, after = rows[0]
                if before is not None:
                    await db.execute(
                        "UPDATE memories SET superseded_by = ? WHERE id = ?", (after, before)
                    )
                if after is not None:
                    await db.execute(
                        "UPDATE memories SET supersedes = ? WHERE id = ?", (before, after)
                    )
                await db.execute("DELETE FROM memories WHERE id = ?", (mid,))
                deleted += 1
        return deleted

    async def delete_scope(
        self, user_id: str, session_id: str | None, agent_id: str | None, turn_id: str | None
    ) -> int:
        """Delete a user's memories, or those of one session / agent / turn node."""
        where = ["user_id = :user"]
        params: dict[str, Any] = {"user": user_id}
        for name, value in (("session_id", session_id), ("agent_id", agent_id), ("turn_id", turn_id)):
            if value is not None:
                where.append(f"{name} = :{name}")
                params[name] = value
        clause = " AND ".join(where)
        async with self._transaction() as db:
            # Links from surviving rows to deleted ones are cut (those rows stay closed).
            await db.execute(
                f"UPDATE memories SET superseded_by = NULL WHERE user_id = :user AND "
                f"superseded_by IN (SELECT id FROM memories WHERE {clause})",
                params,
            )
            await db.execute(
                f"UPDATE memories SET supersedes = NULL WHERE user_id = :user AND "
                f"supersedes IN (SELECT id FROM memories WHERE {clause})",
                params,
            )
            cursor = await db.execute(f"DELETE FROM memories WHERE {clause}", params)
            return int(cursor.rowcount)

    async def expire(self, memory_ids: Sequence[str], at: datetime) -> int:
        """End current memories at ``at`` (they stay in history)."""
        if not memory_ids:
            return 0
        names, params = _in_list("e", memory_ids)
        current, cparams = current_clause(to_micros(at), "memories")
        async with self._transaction() as db:
            cursor = await db.execute(
                f"UPDATE memories SET valid_until = :now WHERE id IN ({names}) AND {current}",
                {**params, **cparams},
            )
            return int(cursor.rowcount)

    async def record_access(self, memory_ids: Sequence[str], at: datetime) -> None:
        """Count one recall of each memory."""
        if not memory_ids:
            return
        names, params = _in_list("r", memory_ids)
        async with self._transaction() as db:
            await db.execute(
                f"UPDATE memories SET access_count = access_count + 1, last_accessed = :at "
                f"WHERE id IN ({names})",
                {**params, "at": to_micros(at)},
            )

    async def reinforce(self, memory_id: str, at: datetime, importance: float) -> None:
        """Count a restatement: one more access, seen now, importance raised to at least ``importance``."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE memories SET access_count = access_count + 1, last_accessed = :at, "
                "importance = MAX(importance, :importance) WHERE id = :id",
                {"at": to_micros(at), "importance": importance, "id": memory_id},
            )
            user = list(await db.execute_fetchall("SELECT user_id FROM memories WHERE id = ?", (memory_id,)))
            if user:
                await db.execute(
                    "INSERT INTO counters (user_id, name, value) VALUES (?, 'merged', 1) "
                    "ON CONFLICT (user_id, name) DO UPDATE SET value = value + 1",
                    (user[0][0],),
                )

    async def append_messages(self, user_id: str, session_id: str, messages: Sequence[Mapping[str, Any]]) -> None:
        """Append raw conversation messages (JSON objects) to a session, in one transaction."""
        now = to_micros(utc_now())
        rows = [(user_id, session_id, json.dumps(dict(m)), now) for m in messages]
        async with self._transaction() as db:
            await db.executemany(
                "INSERT INTO messages (user_id, session_id, message, created_at) VALUES (?, ?, ?, ?)", rows
            )

    async def get_messages(self, user_id: str, session_id: str) -> list[dict[str, Any]]:
        """A session's raw messages, oldest first."""
        rows = await self._fetchall(
            "SELECT message FROM messages WHERE user_id = ? AND session_id = ? ORDER BY seq",
            (user_id, session_id),
        )
        return [json.loads(r[0]) for r in rows]

    async def clear_messages(self, user_id: str, session_id: str) -> int:
        """Delete a session's raw messages; returns how many."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "DELETE FROM messages WHERE user_id = ? AND session_id = ?", (user_id, session_id)
            )
            return int(cursor.rowcount)

    # -- reads -----------------------------------------------------------

    async def get(self, memory_id: str) -> Memory | None:
        """One memory by id, or None."""
        rows = await self._fetchall(select_sql("m.id = :id"), {"id": memory_id})
        return memory_from_row(rows[0])[1] if rows else None

    async def get_by_labels(self, labels: Sequence[int]) -> dict[int, Memory]:
        """Memories by label; unknown labels are left out."""
        if not labels:
            return {}
        names, params = _in_list("l", list(labels))
        rows = await self._fetchall(select_sql(f"m.seq IN ({names})"), params)
        return dict(memory_from_row(r) for r in rows)

    async def ranking_fields(self, labels: Sequence[int]) -> dict[int, tuple[float, datetime]]:
        """(importance, last seen) by label, the row fields ranking needs; cheaper
        than loading whole memories for every candidate."""
        if not labels:
            return {}
        names, params = _in_list("l", list(labels))
        rows = await self._fetchall(
            f"SELECT seq, importance, COALESCE(last_accessed, valid_from) FROM memories WHERE seq IN ({names})",
            params,
        )
        return {seq: (importance, from_micros(seen)) for seq, importance, seen in rows}

    async def embeddings_by_id(self, memory_ids: Sequence[str]) -> dict[str, np.ndarray[Any, Any]]:
        """Stored embeddings by memory id."""
        if not memory_ids:
            return {}
        names, params = _in_list("i", list(memory_ids))
        rows = await self._fetchall(f"SELECT id, embedding FROM memories WHERE id IN ({names})", params)
        return {mid: np.frombuffer(blob, dtype=np.float32) for mid, blob in rows}

    async def get_embeddings(self, labels: Sequence[int]) -> dict[int, np.ndarray[Any, Any]]:
        """Stored embeddings by label."""
        if not labels:
            return {}
        names, params = _in_list("l", list(labels))
        rows = await self._fetchall(
            f"SELECT seq, embedding FROM memories WHERE seq IN ({names})", params
        )
        return {seq: np.frombuffer(blob, dtype=np.float32) for seq, blob in rows}

    async def query(self, flt: MemoryFilter) -> list[Memory]:
        """Memories matching a low-level filter, oldest first."""
        where, params = filter_clause(flt, to_micros(utc_now()))
        tail = "LIMIT :limit OFFSET :offset"
        params.update({"limit": -1 if flt.limit is None else flt.limit, "offset": flt.offset})
        rows = await self._fetchall(select_sql(where, tail=tail), params)
        return [memory_from_row(r)[1] for r in rows]

    async def count(self, flt: MemoryFilter) -> int:
        """How many memories match (limit/offset ignored)."""
        where, params = filter_clause(flt, to_micros(utc_now()))
        rows = await self._fetchall(f"SELECT COUNT(*) FROM memories m WHERE {where}", params)
        return int(rows[0][0])

    async def nodes(self, flt: MemoryFilter) -> list[tuple[str, str | None, str | None, str | None]]:
        """Distinct (user, session, agent, turn) ids of matching memories, sorted."""
        where, params = filter_clause(flt, to_micros(utc_now()))
        rows = await self._fetchall(
            f"SELECT DISTINCT m.user_id, m.session_id, m.agent_id, m.turn_id FROM memories m WHERE {where} "
            "ORDER BY 1, 2, 3, 4", params)
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def history(self, memory_id: str) -> list[Memory]:
        """The supersession chain through ``memory_id``, oldest first."""
        sql = (
            "WITH RECURSIVE back(id, link) AS ("
            " SELECT id, supersedes FROM memories WHERE id = :id"
            " UNION SELECT m.id, m.supersedes FROM memories m JOIN back ON m.id = back.link),"
            " fwd(id, link) AS ("
            " SELECT id, superseded_by FROM memories WHERE id = :id"
            " UNION SELECT m.id, m.superseded_by FROM memories m JOIN fwd ON m.id = fwd.link) "
            + select_sql("m.id IN (SELECT id FROM back UNION SELECT id FROM fwd)")
        )
        rows = await self._fetchall(sql, {"id": memory_id})
        return [memory_from_row(r)[1] for r in rows]

    async def count_visible(self, flt: VectorFilter, cap: int) -> int:
        """How many memories the reader sees, counting at most ``cap``."""
        where, params = visibility_clause(flt, to_micros(utc_now()))
        rows = await self._fetchall(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM memories m WHERE {where} LIMIT :cap)",
            {**params, "cap": cap},
        )
        return int(rows[0][0])

    async def visible_labels(self, flt: VectorFilter) -> list[int]:
        """Labels of every memory the reader sees."""
        where, params = visibility_clause(flt, to_micros(utc_now()))
        rows = await self._fetchall(f"SELECT m.seq FROM memories m WHERE {where}", params)
        return [r[0] for r in rows]

    async def visible_embeddings(self, flt: VectorFilter) -> list[tuple[int, np.ndarray[Any, Any]]]:
        """(label, embedding) of every memory the reader sees."""
        where, params = visibility_clause(flt, to_micros(utc_now()))
        rows = await self._fetchall(f"SELECT m.seq, m.embedding FROM memories m WHERE {where}", params)
        return [(r[0], np.frombuffer(r[1], dtype=np.float32)) for r in rows]

    async def filter_labels(self, labels: Sequence[int], flt: VectorFilter) -> set[int]:
        """The labels among ``labels`` the reader sees."""
        if not labels:
            return set()
        where, params = visibility_clause(flt, to_micros(utc_now()))
        names, lparams = _in_list("l", list(labels))
        rows = await self._fetchall(
            f"SELECT m.seq FROM memories m WHERE m.seq IN ({names}) AND {where}",
            {**params, **lparams},
        )
        return {r[0] for r in rows}

    async def rows_after(
        self, label: int, batch_size: int
    ) -> AsyncIterator[list[tuple[int, bytes]]]:
        """(label, embedding bytes) of rows after ``label``, in batches, label order."""
        while True:
            rows = await self._fetchall(
                "SELECT seq, embedding FROM memories WHERE seq > ? ORDER BY seq LIMIT ?",
                (label, batch_size),
            )
            if not rows:
                return
            yield [(r[0], r[1]) for r in rows]
            label = rows[-1][0]

    async def max_label(self) -> int:
        """The highest committed label, 0 when empty."""
        rows = await self._fetchall("SELECT COALESCE(MAX(seq), 0) FROM memories")
        return int(rows[0][0])

    async def stats(self, flt: MemoryFilter) -> dict[str, Any]:
        """Counts of current memories by category and scope, plus versions closed."""
        everything = MemoryFilter(
            user_id=flt.user_id, session_id=flt.session_id, agent_id=flt.agent_id,
            turn_id=flt.turn_id, scopes=flt.scopes, categories=flt.categories,
            include_superseded=True,
        )
        now = to_micros(utc_now())
        where, params = filter_clause(everything, now)
        current, cparams = current_clause(now)
        rows = await self._fetchall(
            f"SELECT m.category, m.scope, ({current}) AS is_current, "
            f"m.superseded_by IS NOT NULL AS is_superseded, COUNT(*) "
            f"FROM memories m WHERE {where} GROUP BY 1, 2, 3, 4",
            {**params, **cparams},
        )
        categories = {c.value: 0 for c in MemoryCategory}
        scopes = {s.value: 0 for s in ScopeLevel}
        total = superseded = expired = 0
        for category, scope, is_current, is_superseded, n in rows:
            if is_current:
                total += n
                categories[category] += n
                scopes[scope] += n
            elif is_superseded:
                superseded += n
            else:
                expired += n
        counter_where = "user_id = :user" if flt.user_id is not None else "1"
        counters = dict(await self._fetchall(
            f"SELECT name, SUM(value) FROM counters WHERE {counter_where} GROUP BY name",
            {"user": flt.user_id},
        ))
        return {
            "total": total,
            "categories": categories,
            "scopes": scopes,
            "superseded": superseded,
            "expired": expired,
            "versions": total + superseded + expired,
            "merged": int(counters.get("merged", 0)),
        }

    # -- text index ------------------------------------------------------

    async def text_search(
        self, terms: str, flt: VectorFilter, limit: int
    ) -> list[tuple[int, float]]:
        """(label, BM25 score, higher is better) of visible rows matching ``terms``,
        an already-quoted FTS5 expression (see :func:`headroom_memory.fts.fts_query`)."""
        where, params = visibility_clause(flt, to_micros(utc_now()))
        rows = await self._fetchall(
            "SELECT m.seq, bm25(memories_fts, 1.0, 0.0) AS rank FROM memories_fts "
            "JOIN memories m ON m.seq = memories_fts.rowid "
            f"WHERE memories_fts MATCH :match AND {where} ORDER BY rank LIMIT :limit",
            {**params, "match": fts_match(terms, flt.user_id), "limit": limit},
        )
        return [(r[0], -float(r[1])) for r in rows]


def _split_script(script: str) -> list[str]:
    """Statements of SCHEMA (triggers keep their inner semicolons)."""
    statements: list[str] = []
    buffer: list[str] = []
    in_trigger = False
    for line in script.strip().splitlines():
        buffer.append(line)
        stripped = line.strip().upper()
        if stripped.startswith("CREATE TRIGGER"):
            in_trigger = True
        if (in_trigger and stripped == "END;") or (not in_trigger and stripped.endswith(";")):
            statements.append("\n".join(buffer))
            buffer = []
            in_trigger = False
    return statements

