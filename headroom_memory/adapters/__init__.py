"""Default adapters of the engine's ports, one module each."""

from .fts5_index import FTS5TextIndex
from .hnsw_index import HNSWVectorIndex
from .http_embedders import OllamaEmbedder, OpenAIEmbedder
from .local_embedder import LocalEmbedder
from .lru_cache import LRUMemoryCache
from .sqlite_store import SQLiteMemoryStore

__all__ = [
    "FTS5TextIndex",
    "HNSWVectorIndex",
    "LRUMemoryCache",
    "LocalEmbedder",
    "OllamaEmbedder",
    "OpenAIEmbedder",
    "SQLiteMemoryStore",
]
