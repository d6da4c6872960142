"""The MemoryStore logic shared by the SQLite and PostgreSQL stores.

:class:`SqlMemoryStore` holds every query of the port, written once against a
:class:`~.sql_common.SqlDialect`; a subclass supplies the connection: how to
open, read (``_fetchall``) and run a transaction (``_transaction``, yielding a
:class:`Transaction`), and how embeddings are stored.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from ..errors import MemoryConflictError
from ..models import Memory, MemoryCategory, ScopeLevel
from ..ports import MemoryFilter, RankingRow, VectorFilter
from ..timeutil import to_micros, utc_now
from .sql_common import RANKING_COLUMNS, SqlDialect, memory_from_row, ranking_row, row_params

__all__ = ["SqlMemoryStore", "Transaction"]


class Transaction(Protocol):
    """One open transaction of a store's connection."""

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement; returns the rows it changed."""

    async def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement for each row of parameters."""

    async def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        """Rows of one query."""


class SqlMemoryStore:
    """MemoryStore queries over a SQL connection (see the module doc)."""

    dialect: SqlDialect
    greatest: str  # the two-argument maximum: MAX (SQLite) or GREATEST (PostgreSQL)
    instance_id: str = ""
    _changes: int = 0  # memory-changing transactions of this store object (see change_token)

    # -- supplied by the subclass ---------------------------------------------

    def _transaction(self, *, one_statement: bool = False) -> AbstractAsyncContextManager[Transaction]:
        """A transaction; with ``one_statement`` the caller runs exactly one
        statement in it (a store may then let that statement commit itself)."""
        raise NotImplementedError

    async def _fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        raise NotImplementedError

    async def _search_read(
        self, sql: str, params: Mapping[str, Any], *, beside: bool = False
    ) -> list[Sequence[Any]]:
        """A short read of a search's (bounded by a LIMIT or a list of labels),
        which a store may run more cheaply than other reads; ``beside``: it need
        not wait for the store's other statements (a store with one connection
        runs it there)."""
        return await self._fetchall(sql, params)

    def _row(self, memory: Memory) -> dict[str, Any]:
        """Insert parameters of a memory (the subclass encodes the embedding)."""
        return row_params(memory)

    def _vector(self, stored: Any) -> np.ndarray[Any, Any]:
        """An embedding as read back from the database."""
        return np.frombuffer(stored, dtype=np.float32) if isinstance(stored, bytes) else np.asarray(
            stored, dtype=np.float32)

    # -- helpers ---------------------------------------------------------------

    def _p(self, name: str) -> str:
        return self.dialect.p(name)

    def _insert_sql(self) -> str:
        names = ("id", "content", "category", "importance", "scope", "user_id", "session_id", "agent_id",
                 "turn_id", "entity_refs", "metadata", "embedding", "created_at", "valid_from", "valid_until",
                 "supersedes", "superseded_by", "promoted_from", "access_count", "last_accessed",
                 *self._extra_insert_columns())
        values = ", ".join(self._insert_value(n) for n in names)
        return f"INSERT INTO memories ({', '.join(names)}) VALUES ({values})"

    def _extra_insert_columns(self) -> tuple[str, ...]:
        return ()

    def _insert_value(self, name: str) -> str:
        return self._p(name)

    def _now(self) -> int:
        return to_micros(utc_now())

    # -- writes ----------------------------------------------------------------

    async def insert(self, memories: Sequence[Memory]) -> None:
        """Write memories with their embeddings in one transaction."""
        rows = [self._row(m) for m in memories]
        if not rows:
            return
        async with self._change(one_statement=len(rows) == 1) as tx:
            await tx.executemany(self._insert_sql(), rows)

    async def supersede(self, old_id: str, new: Memory) -> None:
        """Close ``old_id`` and insert ``new`` atomically; MemoryConflictError when
        ``old_id`` was superseded or expired meanwhile (by any process)."""
        p = self._p
        async with self._change() as tx:
            changed = await tx.execute(
                f"UPDATE memories SET valid_until = {p('at')}, superseded_by = {p('new')} "
                f"WHERE id = {p('old')} AND superseded_by IS NULL "
                f"AND (valid_until IS NULL OR valid_until > {p('at')})",
                {"at": to_micros(new.valid_from), "new": new.id, "old": old_id},
            )
            if changed != 1:
                raise MemoryConflictError(
                    f"memory {old_id!r} is no longer current (superseded or expired); "
                    "supersede the current version instead"
                )
            await tx.execute(self._insert_sql(), self._row(new))

    async def delete(self, memory_ids: Sequence[str]) -> int:
        """Delete memories, relinking their chains around them."""
        p = self._p
        deleted = 0
        async with self._change() as tx:
            for mid in memory_ids:
                rows = await tx.fetchall(f"SELECT supersedes, superseded_by FROM memories WHERE id = {p('id')}",
                                         {"id": mid})
                if not rows:
                    continue
                before, after = rows[0]
                if before is not None:
                    await tx.execute(f"UPDATE memories SET superseded_by = {p('link')} WHERE id = {p('id')}",
                                     {"link": after, "id": before})
                if after is not None:
                    await tx.execute(f"UPDATE memories SET supersedes = {p('link')} WHERE id = {p('id')}",
                                     {"link": before, "id": after})
                deleted += await tx.execute(f"DELETE FROM memories WHERE id = {p('id')}", {"id": mid})
        return deleted

    async def delete_scope(
        self, user_id: str, session_id: str | None, agent_id: str | None, turn_id: str | None
    ) -> int:
        """Delete a user's memories, or those of one session / agent / turn node."""
        p = self._p
        where = [f"user_id = {p('user')}"]
        params: dict[str, Any] = {"user": user_id}
        for name, value in (("session_id", session_id), ("agent_id", agent_id), ("turn_id", turn_id)):
            if value is not None:
                where.append(f"{name} = {p(name)}")
                params[name] = value
        clause = " AND ".join(where)
        async with self._change() as tx:
            # Links from surviving rows to deleted ones are cut (those rows stay closed).
            for column in ("superseded_by", "supersedes"):
                await tx.execute(
                    f"UPDATE memories SET {column} = NULL WHERE user_id = {p('user')} AND "
                    f"{column} IN (SELECT id FROM memories WHERE {clause})", params)
            return await tx.execute(f"DELETE FROM memories WHERE {clause}", params)

    async def expire(self, memory_ids: Sequence[str], at: datetime) -> int:
        """End current memories at ``at`` (they stay in history)."""
        if not memory_ids:
            return 0
        names, params = self.dialect.in_list("e", memory_ids)
        current, cparams = self.dialect.current_clause(to_micros(at), "memories")
        async with self._change() as tx:
            return await tx.execute(
                f"UPDATE memories SET valid_until = {self._p('now')} WHERE id IN ({names}) AND {current}",
                {**params, **cparams},
            )

    async def record_access(
        self, memory_ids: Sequence[str], at: datetime, *, wait: bool = True
    ) -> dict[str, int]:
        """Count one recall of each memory; returns their access counts after it.

        One statement, atomic on its own (the connections are in autocommit):
        the recall of each injection costs a single round trip. This store
        always counts before returning (``wait`` is for stores that can defer)."""
        if not memory_ids:
            return {}
        rows = await self._fetchall(*self._access_update(memory_ids, at))
        return {str(mid): int(count) for mid, count in rows}

    def _access_update(self, memory_ids: Sequence[str], at: datetime) -> tuple[str, dict[str, Any]]:
        """The statement (and its parameters) counting one recall of each memory."""
        names, params = self.dialect.in_list("r", memory_ids)
        return (
            f"UPDATE memories SET access_count = access_count + 1, last_accessed = {self._p('at')} "
            f"WHERE id IN ({names}) RETURNING id, access_count",
            {**params, "at": to_micros(at)},
        )

    async def change_token(self) -> Hashable | None:
        """None: this store cannot tell other connections' changes cheaply (see SQLite's)."""
        return None

    @contextlib.asynccontextmanager
    async def _change(self, *, one_statement: bool = False) -> AsyncIterator[Transaction]:
        """A transaction that changes memories, counted before and after (even
        when it fails) so a token taken around it never matches one taken later."""
        self._changes += 1
        try:
            async with self._transaction(one_statement=one_statement) as tx:
                yield tx
        finally:
            self._changes += 1

    async def reinforce(self, memory_id: str, at: datetime, importance: float) -> None:
        """Count a restatement: one more access, seen now, importance raised to at least ``importance``."""
        p = self._p
        async with self._change() as tx:
            await tx.execute(
                f"UPDATE memories SET access_count = access_count + 1, last_accessed = {p('at')}, "
                f"importance = {self.greatest}(importance, {p('importance')}) WHERE id = {p('id')}",
                {"at": to_micros(at), "importance": importance, "id": memory_id},
            )
            user = await tx.fetchall(f"SELECT user_id FROM memories WHERE id = {p('id')}", {"id": memory_id})
            if user:
                await tx.execute(
                    f"INSERT INTO counters (user_id, name, value) VALUES ({p('user')}, 'merged', 1) "
                    "ON CONFLICT (user_id, name) DO UPDATE SET value = counters.value + 1",
                    {"user": user[0][0]},
                )

    async def append_messages(self, user_id: str, session_id: str, messages: Sequence[Mapping[str, Any]]) -> None:
        """Append raw conversation messages (JSON objects) to a session, in one transaction."""
        p = self._p
        now = self._now()
        rows = [{"user": user_id, "session": session_id, "message": json.dumps(dict(m)), "at": now}
                for m in messages]
        if not rows:
            return
        async with self._transaction() as tx:
            await tx.executemany(
                f"INSERT INTO messages (user_id, session_id, message, created_at) "
                f"VALUES ({p('user')}, {p('session')}, {self._insert_value('message')}, {p('at')})", rows)

    async def get_messages(self, user_id: str, session_id: str) -> list[dict[str, Any]]:
        """A session's raw messages, oldest first."""
        p = self._p
        rows = await self._fetchall(
            f"SELECT message FROM messages WHERE user_id = {p('user')} AND session_id = {p('session')} "
            "ORDER BY seq", {"user": user_id, "session": session_id})
        return [json.loads(r[0]) if isinstance(r[0], str) else dict(r[0]) for r in rows]

    async def clear_messages(self, user_id: str, session_id: str) -> int:
        """Delete a session's raw messages; returns how many."""
        p = self._p
        async with self._transaction() as tx:
            return await tx.execute(
                f"DELETE FROM messages WHERE user_id = {p('user')} AND session_id = {p('session')}",
                {"user": user_id, "session": session_id})

    # -- reads -----------------------------------------------------------------

    async def get(self, memory_id: str) -> Memory | None:
        """One memory by id, or None."""
        rows = await self._fetchall(self.dialect.select_sql(f"m.id = {self._p('id')}"), {"id": memory_id})
        return memory_from_row(rows[0])[1] if rows else None

    async def get_by_labels(self, labels: Sequence[int]) -> dict[int, Memory]:
        """Memories by label; unknown labels are left out."""
        if not labels:
            return {}
        names, params = self.dialect.in_list("l", list(labels))
        rows = await self._fetchall(self.dialect.select_sql(f"m.seq IN ({names})"), params)
        return dict(memory_from_row(r) for r in rows)

    async def ranking_rows(
        self, labels: Sequence[int], vector: np.ndarray[Any, Any], *, beside: bool = False
    ) -> dict[int, RankingRow]:
        """What ranking needs of each labelled row, its embedding's cosine
        similarity to ``vector`` included, and the memory (built on demand), in
        one read: search reads its candidates a batch at a time and never reads
        a winner twice. ``beside``: see :meth:`_search_read`."""
        if not labels:
            return {}
        names, params = self.dialect.in_list("l", list(labels))
        sql = f"SELECT {RANKING_COLUMNS} FROM memories WHERE seq IN ({names})"
        rows = await self._search_read(sql, params, beside=beside)
        if not rows:
            return {}
        sims = (self._matrix([r[-1] for r in rows]) @ np.asarray(vector, dtype=np.float32)).tolist()
        return {int(r[0]): ranking_row(r, sim) for r, sim in zip(rows, sims)}

    async def embeddings_by_id(self, memory_ids: Sequence[str]) -> dict[str, np.ndarray[Any, Any]]:
        """Stored embeddings by memory id."""
        if not memory_ids:
            return {}
        names, params = self.dialect.in_list("i", list(memory_ids))
        rows = await self._fetchall(f"SELECT id, embedding FROM memories WHERE id IN ({names})", params)
        return {mid: self._vector(stored) for mid, stored in rows}

    async def query(self, flt: MemoryFilter) -> list[Memory]:
        """Memories matching a low-level filter, oldest first."""
        where, params = self.dialect.filter_clause(flt, self._now())
        tail = f"LIMIT {self._p('limit')} OFFSET {self._p('offset')}"
        params.update({"limit": self._no_limit() if flt.limit is None else flt.limit, "offset": flt.offset})
        rows = await self._fetchall(self.dialect.select_sql(where, tail=tail), params)
        return [memory_from_row(r)[1] for r in rows]

    def _no_limit(self) -> int | None:
        """The LIMIT value meaning 'all rows'."""
        return None

    async def count(self, flt: MemoryFilter) -> int:
        """How many memories match (limit/offset ignored)."""
        where, params = self.dialect.filter_clause(flt, self._now())
        rows = await self._fetchall(f"SELECT COUNT(*) FROM memories m WHERE {where}", params)
        return int(rows[0][0])

    async def nodes(self, flt: MemoryFilter) -> list[tuple[str, str | None, str | None, str | None]]:
        """Distinct (user, session, agent, turn) ids of matching memories, sorted."""
        where, params = self.dialect.filter_clause(flt, self._now())
        rows = await self._fetchall(
            f"SELECT DISTINCT m.user_id, m.session_id, m.agent_id, m.turn_id FROM memories m WHERE {where} "
            "ORDER BY 1, 2, 3, 4", params)
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def history(self, memory_id: str) -> list[Memory]:
        """The supersession chain through ``memory_id``, oldest first."""
        p = self._p
        sql = (
            "WITH RECURSIVE back(id, link) AS ("
            f" SELECT id, supersedes FROM memories WHERE id = {p('id')}"
            " UNION SELECT m.id, m.supersedes FROM memories m JOIN back ON m.id = back.link),"
            " fwd(id, link) AS ("
            f" SELECT id, superseded_by FROM memories WHERE id = {p('id')}"
            " UNION SELECT m.id, m.superseded_by FROM memories m JOIN fwd ON m.id = fwd.link) "
            + self.dialect.select_sql("m.id IN (SELECT id FROM back UNION SELECT id FROM fwd)")
        )
        rows = await self._fetchall(sql, {"id": memory_id})
        return [memory_from_row(r)[1] for r in rows]

    async def count_visible(self, flt: VectorFilter, cap: int) -> int:
        """How many memories the reader sees, counting at most ``cap``."""
        where, params = self.dialect.visibility_clause(flt, self._now())
        rows = await self._fetchall(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM memories m WHERE {where} LIMIT {self._p('cap')}) AS visible",
            {**params, "cap": cap},
        )
        return int(rows[0][0])

    async def visible_embeddings(
        self, flt: VectorFilter, limit: int | None = None
    ) -> tuple[list[int], np.ndarray[Any, Any]]:
        """Labels of every memory the reader sees (at most ``limit``), and their embeddings as one matrix."""
        where, params = self.dialect.visibility_clause(flt, self._now())
        params["limit"] = self._no_limit() if limit is None else limit
        rows = await self._fetchall(
            f"SELECT m.seq, m.embedding FROM memories m WHERE {where} LIMIT {self._p('limit')}", params)
        return [int(r[0]) for r in rows], self._matrix([r[1] for r in rows])

    def _matrix(self, stored: Sequence[Any]) -> np.ndarray[Any, Any]:
        """Stored embeddings as one float32 matrix (one row each)."""
        if not stored:
            return np.zeros((0, 0), dtype=np.float32)
        if all(isinstance(s, bytes) for s in stored):
            return np.frombuffer(b"".join(stored), dtype=np.float32).reshape(len(stored), -1)
        return np.vstack([self._vector(s) for s in stored])

    async def filter_labels(self, labels: Sequence[int], flt: VectorFilter) -> set[int]:
        """The labels among ``labels`` the reader sees."""
        if not labels:
            return set()
        where, params = self.dialect.visibility_clause(flt, self._now())
        names, lparams = self.dialect.in_list("l", list(labels))
        rows = await self._search_read(
            f"SELECT m.seq FROM memories m WHERE m.seq IN ({names}) AND {where}", {**params, **lparams}, beside=True)
        return {int(r[0]) for r in rows}

    async def user_labels(self, user_id: str, after: int, upto: int) -> list[int]:
        """Labels of ``user_id``'s rows (any scope, current or not) in ``(after, upto]``."""
        return [int(r[0]) for r in await self._user_rows_between("seq", user_id, after, upto)]

    async def user_embeddings(self, user_id: str, after: int, upto: int) -> list[tuple[int, bytes]]:
        """(label, float32 embedding bytes) of ``user_id``'s rows (any scope,
        current or not) in ``(after, upto]``, label order."""
        rows = await self._user_rows_between("seq, embedding", user_id, after, upto)
        return [(int(r[0]), self._embedding_bytes(r[1])) for r in rows]

    def _embedding_bytes(self, stored: Any) -> bytes:
        return stored if isinstance(stored, bytes) else self._vector(stored).tobytes()

    async def _user_rows_between(self, columns: str, user_id: str, after: int, upto: int) -> list[Any]:
        p = self._p
        return await self._fetchall(
            f"SELECT {columns} FROM memories WHERE user_id = {p('user')} AND seq > {p('after')} "
            f"AND seq <= {p('upto')} ORDER BY seq",
            {"user": user_id, "after": after, "upto": upto})

    async def rows_after(self, label: int, batch_size: int) -> AsyncIterator[list[tuple[int, bytes]]]:
        """(label, float32 embedding bytes) of rows after ``label``, in batches, label order."""
        p = self._p
        while True:
            rows = await self._fetchall(
                f"SELECT seq, embedding FROM memories WHERE seq > {p('after')} ORDER BY seq LIMIT {p('n')}",
                {"after": label, "n": batch_size})
            if not rows:
                return
            yield [(int(r[0]), self._embedding_bytes(r[1])) for r in rows]
            label = int(rows[-1][0])

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
        now = self._now()
        where, params = self.dialect.filter_clause(everything, now)
        current, cparams = self.dialect.current_clause(now)
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
        counter_where = f"user_id = {self._p('user')}" if flt.user_id is not None else "TRUE"
        counters = {name: value for name, value in await self._fetchall(
            f"SELECT name, SUM(value) FROM counters WHERE {counter_where} GROUP BY name", {"user": flt.user_id})}
        return {
            "total": int(total),
            "categories": categories,
            "scopes": scopes,
            "superseded": int(superseded),
            "expired": int(expired),
            "versions": int(total + superseded + expired),
            "merged": int(counters.get("merged", 0) or 0),
        }

