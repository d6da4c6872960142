"""Shared fixtures: the real all-MiniLM-L6-v2 model, real SQLite files in tmp_path."""

from __future__ import annotations

import asyncio
import os
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


@pytest.fixture
def config(db_path: Path) -> MemoryConfig:
    return MemoryConfig(db_path=db_path)


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
