"""Building the default adapters a MemoryConfig asks for."""

from __future__ import annotations

from .adapters.fts5_index import FTS5TextIndex
from .adapters.hnsw_index import HNSWVectorIndex
from .adapters.http_embedders import OllamaEmbedder, OpenAIEmbedder
from .adapters.local_embedder import LocalEmbedder
from .adapters.sqlite_store import SQLiteMemoryStore
from .config import EmbedderBackend, MemoryConfig
from .errors import ConfigurationError
from .ports import Embedder, MemoryStore, TextIndex, VectorIndex

__all__ = ["build_embedder", "build_indexes", "build_store"]


def build_store(config: MemoryConfig) -> MemoryStore:
    """The store ``config`` asks for: PostgreSQL when ``postgres_url`` is set, else SQLite."""
    if config.postgres_url is not None:
        from .adapters.postgres_store import PostgresMemoryStore

        return PostgresMemoryStore(config.postgres_url.get_secret_value(), schema=config.postgres_schema,
                                   pool_size=config.postgres_pool_size, timeout=config.busy_timeout)
    return SQLiteMemoryStore(config.db_path, busy_timeout=config.busy_timeout)


def build_indexes(config: MemoryConfig, store: MemoryStore, dimension: int) -> tuple[VectorIndex, TextIndex]:
    """The default vector and text indexes of one of our stores."""
    if isinstance(store, SQLiteMemoryStore):
        return (
            HNSWVectorIndex(store, dimension, config.index_path, m=config.hnsw_m,
                            ef_construction=config.hnsw_ef_construction, ef_search=config.hnsw_ef_search,
                            exact_search_threshold=config.exact_search_threshold),
            FTS5TextIndex(store),
        )
    if type(store).__name__ == "PostgresMemoryStore":  # imported only when psycopg is installed
        from .adapters.pgvector_index import PgVectorIndex, PostgresTextIndex
        from .adapters.postgres_store import PostgresMemoryStore

        assert isinstance(store, PostgresMemoryStore)
        return (PgVectorIndex(store, exact_search_threshold=config.exact_search_threshold,
                              ef_search=max(config.hnsw_ef_search, 100)),
                PostgresTextIndex(store))
    raise ConfigurationError(
        f"no default vector and text indexes for {type(store).__name__}; pass vector_index= and text_index="
    )


async def build_embedder(config: MemoryConfig) -> Embedder:
    """The embedder of ``config``, loaded (its dimension known) and checked
    against ``config.vector_dimension``."""
    backend = config.embedder_backend
    model = config.resolved_model
    embedder: LocalEmbedder | OpenAIEmbedder | OllamaEmbedder
    if backend is EmbedderBackend.LOCAL:
        embedder = LocalEmbedder(model, batch_size=config.embedder_batch_size)
    elif backend is EmbedderBackend.OPENAI:
        key = config.openai_api_key.get_secret_value() if config.openai_api_key else None
        embedder = OpenAIEmbedder(
            model, api_key=key, base_url=config.openai_base_url,
            dimension=config.vector_dimension, batch_size=config.embedder_batch_size,
            timeout=config.embedder_timeout,
        )
    elif backend is EmbedderBackend.OLLAMA:
        embedder = OllamaEmbedder(
            model, base_url=config.ollama_base_url, dimension=config.vector_dimension,
            batch_size=config.embedder_batch_size, timeout=config.embedder_timeout,
        )
    else:  # pragma: no cover - the enum is closed
        raise ConfigurationError(f"unknown embedder backend {backend!r}")
    try:
        await embedder.load()
        check_dimension(config, embedder)
    except BaseException:
        await embedder.close()
        raise
    return embedder


def check_dimension(config: MemoryConfig, embedder: Embedder) -> None:
    """ConfigurationError when the embedder's vectors do not have the configured length."""
    if config.vector_dimension is not None and embedder.dimension != config.vector_dimension:
        raise ConfigurationError(
            f"vector_dimension={config.vector_dimension} but the embedder "
            f"{embedder.model_name!r} produces {embedder.dimension}-dimensional vectors"
        )
