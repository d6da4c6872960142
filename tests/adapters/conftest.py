"""The adapter tests are about the SQLite store and the HNSW index: SQLite only."""

from __future__ import annotations

from pathlib import Path

import pytest

from headroom_memory import MemoryConfig


@pytest.fixture
def config(db_path: Path) -> MemoryConfig:
    return MemoryConfig(db_path=db_path)
