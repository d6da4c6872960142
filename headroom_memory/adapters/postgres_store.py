"""The PostgreSQL MemoryStore: psycopg 3 (async) with a connection pool, pgvector
for embeddings, a generated ``tsvector`` for full text.

Rows, their vectors and their text entries are one row, so every write (a
supersession, a delete of a user) changes all three in one transaction. Needs
the extra ``headroom-memory[postgres]``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigurationError, MemoryClosedError, StorageError
from ..fts import query_terms
from ..ports import VectorFilter
from .postgres_schema import MIGRATIONS, SCHEMA_VERSION
from .sql_common import POSTGRES
from .sql_store import SqlMemoryStore

try:
    import psycopg
    from pgvector.psycopg import register_vector_async
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import AsyncConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the PostgreSQL backend needs psycopg, psycopg-pool and pgvector: pip install 'headroom-memory[postgres]'"
    ) from exc

__all__ = ["PostgresMemoryStore"]

_BOOTSTRAP_LOCK = 0x6865616472  # pg_advisory_xact_lock key: one schema set-up at a time


def _where(url: str) -> str:
    """host/dbname of a connection string, without credentials."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured PostgreSQL"
    return f"{parts.get('host', 'localhost')}/{parts.get('dbname', '')}"


class _PostgresTransaction:
    """A :class:`~.sql_store.Transaction` on a psycopg connection."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def execute(self, query: str, params: Mapping[str, Any] | None = None) -> int:
        cursor = await self._conn.execute(query, params)
        return int(cursor.rowcount)

    async def executemany(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        async with self._conn.cursor() as cursor:
            await cursor.executemany(query, rows)

    async def fetchall(self, query: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        cursor = await self._conn.execute(query, params)
        return list(await cursor.fetchall())


class PostgresMemoryStore(SqlMemoryStore):
    """MemoryStore, vector and text search on PostgreSQL with pgvector.

    :param url: a libpq connection string (``postgresql://user:pw@host/db``).
    :param schema: the schema holding the tables; created and migrated on open.
    :param pool_size: most connections the pool opens.
    :param timeout: seconds to wait for a connection.
    """

    dialect = POSTGRES
    greatest = "GREATEST"

    def __init__(self, url: str, *, schema: str = "headroom", pool_size: int = 10, timeout: float = 30.0) -> None:
        self.url = url
        self.schema = schema
        self.pool_size = pool_size
        self.timeout = timeout
        self.where = f"{_where(url)} schema {schema}"
        self._pool: AsyncConnectionPool | None = None
        self._search_path = ""
        self._closed = False
        self.iterative_scan = False

    # -- lifecycle ----------------------------------------------------------------

    async def open(self, *, model: str, dimension: int) -> None:
        """Create or migrate the schema, check the embedder, open the pool."""
        if self._closed:
            raise MemoryClosedError("this store was closed; create a new one")
        with self._errors():
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=int(self.timeout))
            try:
                meta = await self._bootstrap(conn, model, dimension)
            finally:
                await conn.close()
        if int(meta["dimension"]) != dimension or meta["embedding_model"] != model:
            raise ConfigurationError(
                f"{self.where} holds {meta['dimension']}-d embeddings of {meta['embedding_model']!r}, but the "
                f"embedder is {model!r} ({dimension}-d); use the same embedder or another postgres_schema"
            )
        self.instance_id = meta["instance_id"]
        pool: AsyncConnectionPool = AsyncConnectionPool(
            self.url, min_size=1, max_size=self.pool_size, open=False, timeout=self.timeout,
            kwargs={"autocommit": True}, configure=self._configure,
        )
        with self._errors():
            await pool.open(wait=True, timeout=self.timeout)
        self._pool = pool

    async def _bootstrap(self, conn: psycopg.AsyncConnection[Any], model: str, dimension: int) -> dict[str, str]:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_BOOTSTRAP_LOCK,))
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                raise ConfigurationError(
                    f"{self.where}: the pgvector extension is not installed and could not be created ({exc}); "
                    "install pgvector on the server or ask an administrator to run CREATE EXTENSION vector"
                ) from exc
            cursor = await conn.execute(
                "SELECT n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'vector'")
            vector_schema, version = (await cursor.fetchone()) or ("public", "0")
            self.iterative_scan = tuple(int(x) for x in version.split(".")[:2] if x.isdigit()) >= (0, 8)
            self._search_path = sql.SQL("SET search_path TO {}, {}").format(
                sql.Identifier(self.schema), sql.Identifier(vector_schema)).as_string(conn)
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            await conn.execute(self._search_path.replace("SET ", "SET LOCAL ", 1))
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                               "(version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)")
            cursor = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            current = int((await cursor.fetchone() or (0,))[0])
            if current > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self.where} has schema version {current}, newer than this library's {SCHEMA_VERSION}; "
                    "upgrade headroom-memory"
                )
            for version_number in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version_number](dimension):
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                                   (version_number, self._now()))
            cursor = await conn.execute("SELECT key, value FROM meta")
            meta = {str(k): str(v) for k, v in await cursor.fetchall()}
            if not meta:
                meta = {"instance_id": uuid.uuid4().hex, "embedding_model": model, "dimension": str(dimension)}
                async with conn.cursor() as insert:
                    await insert.executemany("INSERT INTO meta (key, value) VALUES (%s, %s)", list(meta.items()))
        return meta

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(self._search_path)
        await register_vector_async(conn)

    async def close(self) -> None:
        """Close the pool; safe to call twice."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate database errors into StorageError, naming the server (never the password)."""
        try:
            yield
        except PoolTimeout as exc:
            raise StorageError(f"no PostgreSQL connection free within {self.timeout} s ({self.where})") from exc
        except psycopg.OperationalError as exc:
            raise StorageError(f"cannot use PostgreSQL at {self.where}: {exc}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL failed ({self.where}): {exc}") from exc

    @property
    def _connections(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise MemoryClosedError("the memory store is closed")
        return self._pool

    @contextlib.asynccontextmanager
    async def _transaction(self, *, one_statement: bool = False) -> AsyncIterator[_PostgresTransaction]:
        """A transaction on a pooled connection, rolled back on any error
        (``one_statement`` changes nothing here)."""
        pool = self._connections
        with self._errors():
            async with pool.connection() as conn, conn.transaction():
                yield _PostgresTransaction(conn)

    async def _fetchall(self, query: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        pool = self._connections
        with self._errors():
            async with pool.connection() as conn:
                cursor = await conn.execute(query, params)
                return list(await cursor.fetchall())

    def _vector(self, stored: Any) -> np.ndarray[Any, Any]:
        return np.asarray(stored.to_numpy() if hasattr(stored, "to_numpy") else stored, dtype=np.float32)

    def _insert_value(self, name: str) -> str:
        cast = "::jsonb" if name in ("metadata", "entity_refs", "message") else ""
        return f"{self._p(name)}{cast}"

    # -- vector search (pgvector) -------------------------------------------------------

    async def nearest(self, vector: np.ndarray[Any, Any], flt: VectorFilter, k: int, *,
                      exact: bool, ef_search: int) -> list[tuple[int, float]]:
        """(label, cosine similarity) of up to ``k`` visible rows nearest ``vector``.

        ``exact`` scores every visible row (the distance is wrapped so the
        planner cannot answer from the HNSW index); otherwise the HNSW index is
        searched with ``ef_search`` candidates, WHERE applied to them.
        """
        where, params = self.dialect.visibility_clause(flt, self._now())
        params = {**params, "q": np.asarray(vector, dtype=np.float32), "k": k}
        distance = "(m.embedding <=> %(q)s)" + (" + 0" if exact else "")
        query = (f"SELECT m.seq, 1 - (m.embedding <=> %(q)s) FROM memories m WHERE {where} "
                 f"ORDER BY {distance} LIMIT %(k)s")
        async with self._transaction() as tx:
            if not exact:
                await tx.execute(f"SET LOCAL hnsw.ef_search = {int(min(max(ef_search, k), 1000))}")
                if self.iterative_scan:
                    await tx.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = await tx.fetchall(query, params)
        return [(int(seq), float(sim)) for seq, sim in rows]

    async def reindex(self) -> int:
        """Rebuild the HNSW index; returns how many rows it covers."""
        async with self._transaction() as tx:
            await tx.execute("REINDEX INDEX idx_memories_embedding")
            rows = await tx.fetchall("SELECT COUNT(*) FROM memories")
        return int(rows[0][0])

    async def analyze(self) -> None:
        """``ANALYZE`` the memories table: fresh statistics for the planner."""
        async with self._transaction(one_statement=True) as tx:
            await tx.execute("ANALYZE memories")

    # -- text search (tsvector) -------------------------------------------------------

    async def text_search(self, query: str, flt: VectorFilter, limit: int) -> list[tuple[int, float]]:
        """(label, rank) of visible rows matching any word of ``query``, best first.
        Each word becomes its own ``plainto_tsquery`` parameter: no user text is
        ever tsquery syntax."""
        terms = query_terms(query)
        if not terms:
            return []
        where, params = self.dialect.visibility_clause(flt, self._now())
        tsquery = " || ".join(f"plainto_tsquery('english', %(t{i})s)" for i in range(len(terms)))
        params.update({f"t{i}": term for i, term in enumerate(terms)})
        rows = await self._fetchall(
            f"SELECT m.seq, ts_rank_cd(m.tsv, q.query) AS rank FROM memories m, (SELECT {tsquery} AS query) q "
            f"WHERE m.tsv @@ q.query AND {where} ORDER BY rank DESC, m.seq LIMIT %(limit)s",
            {**params, "limit": limit},
        )
        return [(int(seq), float(rank)) for seq, rank in rows]
