"""Shared fixtures: the real all-MiniLM-L6-v2 model, real SQLite files in tmp_path,
and a real PostgreSQL with pgvector (pgserver) for the engine suite.

``config`` (and so ``memory``) is parametrized over both backends: every engine
behaviour test runs on SQLite and on PostgreSQL, each Postgres test in a schema
of its own.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from headroom_memory import HierarchicalMemory, MemoryConfig, SyncMemory
from headroom_memory.adapters import LocalEmbedder

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def embedder() -> Iterator[LocalEmbedder]:
    """One loaded local model for the whole run (the engine does not close a
    given embedder)."""
    model = LocalEmbedder("all-MiniLM-L6-v2")
    model.dimension  # noqa: B018 - load now
    yield model
    asyncio.run(model.close())


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "memory.db"


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server (with pgvector) for the whole run, on a Unix socket."""
    runtime = tmp_path_factory.mktemp("runtime")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))  # pgserver's platformdirs asks for one
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def config(request: pytest.FixtureRequest, db_path: Path) -> MemoryConfig:
    """A config on SQLite (a file in tmp_path) or PostgreSQL (a fresh schema)."""
    if request.param == "sqlite":
        return MemoryConfig(db_path=db_path)
    url = request.getfixturevalue("postgres_url")
    return MemoryConfig(postgres_url=url, postgres_schema=f"test_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def sync_memory(tmp_path: Path, embedder: LocalEmbedder) -> Iterator[SyncMemory]:
    """A blocking memory on a fresh SQLite file, sharing the loaded model."""
    memory = SyncMemory(MemoryConfig(db_path=tmp_path / "sync.db"), embedder=embedder)
    yield memory
    memory.close()


@pytest.fixture
async def memory(config: MemoryConfig, embedder: LocalEmbedder) -> AsyncIterator[HierarchicalMemory]:
    engine = await HierarchicalMemory.create(config, embedder=embedder)
    yield engine
    await engine.close()
