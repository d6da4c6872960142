"""The PostgreSQL schema, versioned: forward migrations applied by the library.

Every table lives in one configurable schema. ``schema_version`` records each
applied migration; :func:`migrate` applies the missing ones in order, in one
transaction, under an advisory lock so processes starting together do not race.
Columns mirror the SQLite store (times in integer microseconds, UTC); the
embedding is a pgvector ``vector(d)`` with an HNSW index (cosine), the text a
generated ``tsvector`` with a GIN index.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

Migration = Callable[[int], list[str]]  # dimension -> statements


def _v1(dimension: int) -> list[str]:
    return [
        """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        f"""CREATE TABLE memories (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            content TEXT NOT NULL,
            category TEXT NOT NULL,
            importance DOUBLE PRECISION NOT NULL,
            scope TEXT NOT NULL,
            user_id TEXT NOT NULL,
            session_id TEXT,
            agent_id TEXT,
            turn_id TEXT,
            entity_refs JSONB NOT NULL DEFAULT '[]',
            metadata JSONB NOT NULL DEFAULT '{{}}',
            embedding vector({int(dimension)}) NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
            created_at BIGINT NOT NULL,
            valid_from BIGINT NOT NULL,
            valid_until BIGINT,
            supersedes TEXT,
            superseded_by TEXT,
            promoted_from TEXT,
            access_count INTEGER NOT NULL DEFAULT 0,
            last_accessed BIGINT
        )""",
        "CREATE INDEX idx_memories_path ON memories (user_id, scope, session_id, agent_id, turn_id)",
        "CREATE INDEX idx_memories_user_time ON memories (user_id, valid_from)",
        "CREATE INDEX idx_memories_tsv ON memories USING gin (tsv)",
        "CREATE INDEX idx_memories_embedding ON memories USING hnsw (embedding vector_cosine_ops)",
        """CREATE TABLE messages (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id TEXT NOT NULL,
            session_id TEXT NOT NULL,
            message JSONB NOT NULL,
            created_at BIGINT NOT NULL
        )""",
        "CREATE INDEX idx_messages_session ON messages (user_id, session_id, seq)",
        """CREATE TABLE counters (
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            value BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (user_id, name)
        )""",
    ]


MIGRATIONS: dict[int, Migration] = {1: _v1}
"""Version -> the statements that bring the schema from version-1 to it."""

SCHEMA_VERSION = max(MIGRATIONS)
