"""The public surface, pinned."""

from __future__ import annotations

import headroom_memory
import headroom_memory.ports as ports

EXPECTED = [
    "AsyncMemoryView", "MemoryClient", "with_memory",
    "ConfigurationError", "EmbedderBackend", "EmbedderError", "HeadroomMemoryError",
    "HierarchicalMemory", "Identity", "InvalidInputError", "Memory", "MemoryCategory",
    "MemoryClosedError", "MemoryConfig", "MemoryConflictError", "MemoryFilter",
    "MemoryNotFoundError", "MemoryView", "NewMemory", "ScopeLevel", "SearchResult",
    "StorageError", "SyncMemory", "SyncMemoryView", "VectorFilter", "VectorIndexError",
]


def test_all_is_pinned() -> None:
    assert sorted(headroom_memory.__all__) == sorted(EXPECTED)


def test_public_names_read_as_the_package() -> None:
    assert repr(headroom_memory.HierarchicalMemory) == "<class 'headroom_memory.HierarchicalMemory'>"


def test_ports_are_protocols_with_filters() -> None:
    for name in ("MemoryStore", "VectorIndex", "TextIndex", "Embedder", "MemoryCache",
                 "MemoryFilter", "VectorFilter"):
        assert hasattr(ports, name)


def test_errors_share_one_root() -> None:
    for name in EXPECTED:
        obj = getattr(headroom_memory, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, headroom_memory.HeadroomMemoryError)
