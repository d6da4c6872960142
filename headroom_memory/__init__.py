"""headroom-memory: hierarchical, temporal memory for LLM applications.

Facts are extracted inline from the model's own answers, kept as versioned
memories (a changed fact supersedes the old one, history kept), scoped
user -> session -> agent -> turn, and the relevant few are injected into the
next request.

Quick start (async engine)::

    from headroom_memory import HierarchicalMemory, MemoryConfig

    memory = await HierarchicalMemory.create(MemoryConfig(db_path="memory.db"))
    await memory.add("Prefers Python for backend work", user_id="alice", category="preference")
    hits = await memory.search("which language?", user_id="alice")
"""

from .config import EmbedderBackend, MemoryConfig
from .engine import HierarchicalMemory
from .errors import (
    ConfigurationError,
    EmbedderError,
    HeadroomMemoryError,
    InvalidInputError,
    MemoryClosedError,
    MemoryConflictError,
    MemoryNotFoundError,
    StorageError,
    VectorIndexError,
)
from .models import Memory, MemoryCategory, NewMemory, ScopeLevel, SearchResult
from .ports import MemoryFilter, VectorFilter
from .sync import SyncMemory
from .views import AsyncMemoryView, Identity, MemoryView, SyncMemoryView
from .wrapper import MemoryClient, with_memory

__version__ = "0.1.0"

__all__ = [
    "AsyncMemoryView",
    "ConfigurationError",
    "EmbedderBackend",
    "EmbedderError",
    "HeadroomMemoryError",
    "HierarchicalMemory",
    "Identity",
    "InvalidInputError",
    "Memory",
    "MemoryCategory",
    "MemoryClient",
    "MemoryClosedError",
    "MemoryConfig",
    "MemoryConflictError",
    "MemoryFilter",
    "MemoryNotFoundError",
    "MemoryView",
    "NewMemory",
    "ScopeLevel",
    "SearchResult",
    "StorageError",
    "SyncMemory",
    "SyncMemoryView",
    "VectorFilter",
    "VectorIndexError",
    "with_memory",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("headroom_memory."):
        try:
            _obj.__module__ = "headroom_memory"
        except (AttributeError, TypeError):  # pragma: no cover - builtins
            pass
del _name, _obj
