"""The default MemoryStore: one SQLite file (aiosqlite, WAL), FTS5 in the same file.

Rows, their full-text entries (maintained by triggers) and supersession links of
one operation commit in one transaction. Every row gets a label (``seq``, an
AUTOINCREMENT key) that only grows; SQLite has one writer at a time, so labels
commit in increasing order across processes and an index can catch up on
``seq > last_seen``.

Every statement runs on one aiosqlite connection's thread, one at a time
(``_lock``), except reads made right on the event loop, on that same
connection, while no statement runs on it (the lock is free) and without
waiting for a busy file (such a read goes to the thread): the change token, and
a search's short reads (word counts, the keyword search, the visibility check
of vector candidates, ranking rows; each bounded by a LIMIT or a list of
labels) unless a recall count still waits to be written (the read must see
it). The event loop waits for each: on a 1M-memory store (2 cores) 0.15-1.4 ms
p50, 3.1 ms the longest in 400 questions each of a 1,000- and a 100,000-memory
user; reading there instead of through the thread saved 0.5 ms of the large
user's injection (the hops there and back). A search's reads beside its
keyword search (the visibility check, the best vector hits' rows) that find the
connection busy go to a second connection, so they need not queue behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from collections import deque
from collections.abc import AsyncIterator, Hashable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from ..errors import ConfigurationError, MemoryClosedError, StorageError
from ..models import Memory
from ..ports import VectorFilter
from .sql_common import SQLITE
from .sql_store import SqlMemoryStore
from .sqlite_sql import SCHEMA, SCHEMA_VERSION, fts_match, user_key

__all__ = ["SQLiteMemoryStore", "map_sqlite_errors"]

logger = logging.getLogger("headroom_memory")

_SHORT_COUNT = 10_000  # posting lists counted up to this many rows are a search's short read


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


class _SQLiteTransaction:
    """A :class:`~.sql_store.Transaction` on an aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        cursor = await self._db.execute(sql, params or {})
        return int(cursor.rowcount)

    async def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        await self._db.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        return list(await self._db.execute_fetchall(sql, params or {}))


class SQLiteMemoryStore(SqlMemoryStore):
    """MemoryStore and TextIndex on one SQLite database file.

    :param path: the database file, or ``":memory:"``.
    :param busy_timeout: seconds a writer waits for another process's lock.
    """

    dialect = SQLITE
    greatest = "MAX"

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = str(path)
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._conn: aiosqlite.Connection | None = None
        self._raw: sqlite3.Connection | None = None  # the same connection, for reads on the event loop
        self._reader: aiosqlite.Connection | None = None  # a second one, for reads that must not queue
        self._lock = asyncio.Lock()  # held by every statement on the connection's thread (see _locked)
        self._reading_here = False  # its busy_timeout is 0, set by reads on the event loop (see _read_here)
        self._deferred: deque[tuple[Sequence[str], datetime]] = deque()  # recall counts not written (or being written)
        self._flusher: asyncio.Future[None] | None = None  # writes them when the connection is free
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
        opened: list[sqlite3.Connection] = []

        class _Kept(sqlite3.Connection):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                opened.append(self)

        with map_sqlite_errors(self.path):
            # check_same_thread=False: searches read on the event loop while no statement runs.
            self._conn = await self._connect(check_same_thread=False, factory=_Kept)
            self._raw = opened[0]
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
                self._conn = self._raw = None
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
        if self.path != ":memory:":  # a second connection to ":memory:" would open another database
            try:
                with map_sqlite_errors(self.path):
                    self._reader = await self._connect()
                    await self._reader.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            except BaseException:
                await self.close()
                raise

    async def _connect(self, **options: Any) -> aiosqlite.Connection:
        connection = aiosqlite.connect(self.path, isolation_level=None, **options)
        # A forgotten close() must not keep the interpreter alive at exit;
        # committed transactions are already durable in the WAL.
        worker = getattr(connection, "_thread", None)
        if worker is not None:
            worker.daemon = True
        return await connection

    async def close(self) -> None:
        """Write the recall counts not written yet, then close the connections;
        safe to call twice."""
        self._closed = True
        async with self._locked():  # after a flusher that runs, or instead of one still to start
            await self._write_deferred()
        conn, reader, self._conn, self._raw, self._reader = self._conn, self._reader, None, None, None
        with map_sqlite_errors(self.path):
            try:
                if reader is not None:
                    await reader.close()
            finally:
                if conn is not None:
                    await conn.close()

    @property
    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise MemoryClosedError("the memory store is closed")
        return self._conn

    @contextlib.asynccontextmanager
    async def _transaction(self, *, one_statement: bool = False) -> AsyncIterator[_SQLiteTransaction]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (lock held).
        With ``one_statement`` (the caller runs exactly one) SQLite commits
        that statement as its own transaction: one round trip to the
        connection's thread instead of three."""
        db = self._db
        async with self._locked():
            await self._write_deferred()
            with map_sqlite_errors(self.path):
                if one_statement:
                    yield _SQLiteTransaction(db)
                    return
                await db.execute("BEGIN IMMEDIATE")
                try:
                    yield _SQLiteTransaction(db)
                except BaseException:
                    if db.in_transaction:
                        await db.execute("ROLLBACK")
                    raise
                else:
                    await db.execute("COMMIT")

    async def _fetchall(self, sql: str, params: Any = None, *, counts_first: bool = True) -> list[Any]:
        db = self._db
        async with self._locked():
            if counts_first:
                await self._write_deferred()
            with map_sqlite_errors(self.path):
                return list(await db.execute_fetchall(sql, params or {}))

    async def record_access(
        self, memory_ids: Sequence[str], at: datetime, *, wait: bool = True
    ) -> dict[str, int]:
        """Count one recall of each memory; returns their access counts after it.

        With ``wait=False`` the count is written in the background and ``{}``
        returned at once: the caller does not wait for a write it needs no
        answer from. Every later statement of this store runs after it (they
        write what is pending first), so this process always reads its own
        counts, and ``close`` writes what is left. A count that cannot be
        written is logged, never raised: it is bookkeeping, not a memory."""
        if wait or not memory_ids:
            return await super().record_access(memory_ids, at)
        self._db  # noqa: B018 - raises MemoryClosedError once closed
        self._deferred.append((memory_ids, at))
        if self._flusher is None or self._flusher.done():
            # The flusher's task is made on the loop's next turn, not here: a
            # task costs 70 us on a cold CPU (after a pause), a callback 8 us.
            # (Two counts in one turn ask twice; the second finds it made.)
            asyncio.get_running_loop().call_soon(self._start_flusher)
        return {}

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._write_deferred_when_free())

    async def _write_deferred_when_free(self) -> None:
        async with self._locked():
            await self._write_deferred()

    async def _write_deferred(self) -> None:
        """Write the pending recall counts (the lock held); each leaves the
        queue once written (or failed), so an empty queue means all are written."""
        while self._deferred and self._conn is not None:
            try:
                with map_sqlite_errors(self.path):
                    await self._conn.execute_fetchall(*self._access_update(*self._deferred[0]))
            except Exception as exc:
                logger.warning("a recall count was not saved: %s", exc)
            finally:
                self._deferred.popleft()

    async def change_token(self) -> Hashable | None:
        """(memory-changing transactions of this store, SQLite's ``data_version``):
        the first counts this connection's writes, the second changes whenever
        any other connection, in any process, commits to the file.

        Read on the event loop when no statement is running on the connection
        (4 us back to back, 0.05-0.13 ms after a pause, against 0.06-0.3 ms for
        a round trip to its thread); it never waits there for a lock: a busy
        file is read on the thread."""
        rows = self._read_here("PRAGMA data_version", {})
        if rows is None:
            rows = await self._fetchall("PRAGMA data_version", counts_first=False)  # recall counts change no token
        return (self._changes, int(rows[0][0]))

    async def _search_read(self, sql: str, params: Mapping[str, Any], *, beside: bool = False) -> list[Any]:
        """Right here on the event loop while the connection is idle; else, when
        ``beside``, on the second connection (it sees every commit, this
        process's included), so it need not queue behind the first; else on the
        first one's thread. While a recall count waits to be written (or is
        being written) it runs on the first connection, after that write: a
        read after a recall must see its count."""
        if not self._deferred:
            rows = self._read_here(sql, params)
            if rows is not None:
                return rows
            reader = self._reader
            if beside and reader is not None:  # None: ":memory:", or closed (which _fetchall reports)
                with map_sqlite_errors(self.path):
                    return list(await reader.execute_fetchall(sql, params))
        return await self._fetchall(sql, params)

    def _read_here(self, sql: str, params: Mapping[str, Any]) -> list[Any] | None:
        """The rows of a read run right here on the event loop, with no busy
        wait, while no statement runs on the connection (the lock is free);
        None if it is not free or the read failed (a busy file, or worse: the
        read on SQLite's thread then waits, or reports it as a StorageError).

        The first such read sets the connection's busy_timeout to 0 and leaves
        it so until the next statement on its thread (:meth:`_locked`): a
        search's five or six reads set it once, not eleven times (each setting
        took 16-25 us after a pause, in a replay of 200 searches' reads)."""
        raw = self._raw
        if raw is None or self._lock.locked():
            return None
        try:
            if not self._reading_here:
                raw.execute("PRAGMA busy_timeout = 0")
                self._reading_here = True
            return raw.execute(sql, params).fetchall()
        except sqlite3.Error:
            return None

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """Hold the lock for statements on the connection's thread, its
        busy_timeout restored first if reads on the event loop set it to 0."""
        async with self._lock:
            raw = self._raw
            if self._reading_here and raw is not None:
                with map_sqlite_errors(self.path):  # the connection is idle: set right here
                    raw.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
                self._reading_here = False
            yield

    def _row(self, memory: Memory) -> dict[str, Any]:
        params = super()._row(memory)
        params["embedding"] = params["embedding"].tobytes()
        params["user_key"] = user_key(memory.user_id)
        return params

    def _extra_insert_columns(self) -> tuple[str, ...]:
        return ("user_key",)

    def _no_limit(self) -> int:
        return -1

    # -- text index ------------------------------------------------------

    async def text_search(
        self, terms: str, flt: VectorFilter, limit: int, *, all_users: bool = False
    ) -> list[tuple[int, float]]:
        """(label, BM25 score, higher is better) of visible rows matching ``terms``,
        an already-quoted FTS5 expression (see :func:`headroom_memory.fts.fts_query`).

        By default FTS5 intersects the terms with the user's own posting list
        and ranks the user's matches; visibility is then checked for the best
        ``4 * limit`` only, and for all of them only if too few of those are
        visible. ``all_users=True`` matches the terms in every user's rows and
        keeps the reader's visible ones: cheaper when the terms are rare and the
        user is large (FTS5 reads the user's whole posting list to weigh it).
        The scores are the same either way (the user column weighs nothing).
        """
        if all_users:
            return await self._joined_text_search(f"content : ({terms})", flt, limit)
        match = fts_match(terms, flt.user_id)
        wanted = 4 * limit
        rows = await self._search_read(
            "SELECT rowid, bm25(memories_fts, 1.0, 0.0) AS rank FROM memories_fts "
            "WHERE memories_fts MATCH :match ORDER BY rank LIMIT :limit",
            {"match": match, "limit": wanted},
        )
        visible = await self.filter_labels([r[0] for r in rows], flt)
        hits = [(r[0], -float(r[1])) for r in rows if r[0] in visible]
        if len(hits) >= limit or len(rows) < wanted:
            return hits[:limit]
        return await self._joined_text_search(match, flt, limit)

    async def _joined_text_search(
        self, match: str, flt: VectorFilter, limit: int, *, newest: bool = False
    ) -> list[tuple[int, float]]:
        """The best ``limit`` visible rows for a MATCH expression (BM25, or with
        ``newest`` the newest, unweighed, score 0), visibility checked on every match.

        The check reads the covering visibility index, never the wide rows
        (SQLite would pick the rows by their key: on a 1M-row store, 150
        questions of the 100,000-memory user, 200 matches each, 1.4-1.6 -> 0.9-1.0 ms)."""
        where, params = self.dialect.visibility_clause(flt, self._now())
        rank, order = ("0", "memories_fts.rowid DESC") if newest else ("bm25(memories_fts, 1.0, 0.0)", "rank")
        rows = await self._search_read(
            f"SELECT m.seq, {rank} AS rank FROM memories_fts "
            f"JOIN memories m INDEXED BY idx_memories_visible ON m.seq = memories_fts.rowid "
            f"WHERE memories_fts MATCH :match AND {where} ORDER BY {order} LIMIT :limit",
            {**params, "match": match, "limit": limit},
        )
        return [(int(r[0]), 0.0 if newest else -float(r[1])) for r in rows]

    async def newest_text_matches(self, terms: str, flt: VectorFilter, limit: int) -> list[tuple[int, float]]:
        """(label, 0.0) of the reader's ``limit`` newest visible rows matching
        ``terms`` (quoted, as for :meth:`text_search`), unranked: FTS5 walks
        the user's and the terms' posting lists from the newest row and stops
        at ``limit``, without weighing a single match."""
        return await self._joined_text_search(fts_match(terms, flt.user_id), flt, limit, newest=True)

    async def merge_text_index(self) -> None:
        """Merge the FTS5 index into one segment (FTS5's 'optimize').

        Every transaction adds a segment and FTS5 merges them only a few at a
        time, so a store keeps many of them (21 in the benchmark's million
        memories); a term is looked up in each. Merging rewrites the whole index (about 50 MB for a million
        memories) in one transaction; a failure leaves it as it was."""
        async with self._transaction(one_statement=True) as tx:
            await tx.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")

    async def term_rows(self, terms: Sequence[str], cap: int) -> list[int]:
        """How many rows (of any user) hold each of ``terms`` (runs of word
        characters), counting at most ``cap`` each; one statement for them all."""
        return await self._fts_rows(['content : "{}"'.format(term.replace('"', '""')) for term in terms], cap)

    async def user_rows(self, user_id: str, cap: int) -> int:
        """How many rows ``user_id`` has (any scope, current or not), counting at most ``cap``."""
        return (await self._fts_rows([f'user_key : "{user_key(user_id)}"'], cap))[0]

    async def _fts_rows(self, matches: Sequence[str], cap: int) -> list[int]:
        if not matches:
            return []
        counts = ", ".join(
            f"(SELECT COUNT(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH :m{i} LIMIT :cap))"
            for i in range(len(matches)))
        params = {"cap": cap, **{f"m{i}": m for i, m in enumerate(matches)}}
        short = cap <= _SHORT_COUNT  # counting longer posting lists is not a short read
        rows = await (self._search_read if short else self._fetchall)(f"SELECT {counts}", params)
        return [int(count) for count in rows[0]]


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

