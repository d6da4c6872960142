"""The SQLite schema and the FTS5 user key (shared clauses: :mod:`.sql_common`)."""

from __future__ import annotations

import hashlib

__all__ = ["SCHEMA", "SCHEMA_VERSION", "fts_match", "user_key"]

SCHEMA_VERSION = 1


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
-- Covers the visibility check by label: filtering HNSW candidates and counting
-- a reader's memories read this index only, never the wide rows.
CREATE INDEX IF NOT EXISTS idx_memories_visible ON memories (
    user_id, seq, scope, session_id, agent_id, turn_id, superseded_by, valid_until, category, importance
);
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
