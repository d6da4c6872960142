"""Configuration: :class:`MemoryConfig`, validated when it is built."""

from __future__ import annotations

from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from .errors import ConfigurationError

__all__ = ["DEFAULT_MODELS", "KNOWN_DIMENSIONS", "EmbedderBackend", "MemoryConfig"]


class EmbedderBackend(str, Enum):
    """Where embeddings come from."""

    LOCAL = "local"
    """sentence-transformers in this process (default: all-MiniLM-L6-v2, offline)."""
    OPENAI = "openai"
    """An OpenAI-compatible ``/embeddings`` endpoint over HTTP."""
    OLLAMA = "ollama"
    """An Ollama server's ``/api/embed`` endpoint over HTTP."""


DEFAULT_MODELS: dict[EmbedderBackend, str] = {
    EmbedderBackend.LOCAL: "all-MiniLM-L6-v2",
    EmbedderBackend.OPENAI: "text-embedding-3-small",
    EmbedderBackend.OLLAMA: "nomic-embed-text",
}

KNOWN_DIMENSIONS: dict[str, int] = {
    "all-MiniLM-L6-v2": 384,
    "sentence-transformers/all-MiniLM-L6-v2": 384,
    "all-MiniLM-L12-v2": 384,
    "all-mpnet-base-v2": 768,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "nomic-embed-text": 768,
    "mxbai-embed-large": 1024,
}


class MemoryConfig(BaseModel):
    """Settings of a :class:`HierarchicalMemory`; invalid values raise
    :class:`ConfigurationError` naming the field.

    Example::

        config = MemoryConfig(db_path="my_memory.db", cache_max_size=2000)
        memory = await HierarchicalMemory.create(config)

    With ``postgres_url`` set the memories live in PostgreSQL (pgvector
    required) instead::

        MemoryConfig(postgres_url="postgresql://user:pw@db.example.com/app", postgres_schema="memory")
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    db_path: str | Path = Field(
        default="headroom_memory.db",
        description="SQLite file; the HNSW index is kept beside it. ':memory:' keeps nothing.",
    )
    embedder_backend: EmbedderBackend = EmbedderBackend.LOCAL
    embedder_model: str | None = Field(
        default=None,
        description="Model name or local folder; None picks the backend's default.",
    )
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    ollama_base_url: str = "http://localhost:11434"
    embedder_timeout: float = Field(default=30.0, gt=0)
    embedder_batch_size: int = Field(default=64, ge=1)
    vector_dimension: int | None = Field(
        default=None, ge=1, description="Must match the embedder; None takes the embedder's."
    )
    hnsw_ef_construction: int = Field(default=200, ge=1)
    hnsw_m: int = Field(default=16, ge=2)
    hnsw_ef_search: int = Field(default=50, ge=1)
    cache_enabled: bool = Field(
        default=True,
        description="Cache query embeddings, and (SQLite) search results until any memory changes.",
    )
    cache_max_size: int = Field(default=1000, ge=1, description="Entries the cache keeps (LRU).")
    exact_search_threshold: int = Field(
        default=2_000,
        ge=0,
        description="Visible sets up to this size are scored exactly; larger ones use HNSW.",
    )
    rrf_k: float = Field(default=5.0, gt=0, description="Reciprocal-rank-fusion constant (tuned on LoCoMo dev).")
    vector_weight: float = Field(default=1.0, ge=0)
    text_weight: float = Field(default=1.5, ge=0)
    importance_weight: float = Field(default=0.02, ge=0)
    recency_weight: float = Field(default=0.1, ge=0)
    recency_half_life_days: float = Field(default=30.0, gt=0)
    bubble_min_recalls: int = Field(
        default=3, ge=1, description="Recalls after which a narrow memory is promoted."
    )
    bubble_importance: float = Field(
        default=0.9, ge=0, le=1, description="Turn memories this important survive end_turn()."
    )
    dedup_enabled: bool = Field(
        default=True, description="Merge near-duplicate adds into the existing memory (see dedup.py)."
    )
    dedup_similarity: float = Field(
        default=0.9, ge=0, le=1,
        description="Cosine above which a same-scope, same-category memory with the same numbers, "
        "negation and names is a near-duplicate (0.9: precision 0.97, recall 0.93 on tests/data/paraphrases.json).",
    )
    reinforce_step: float = Field(
        default=0.05, ge=0, le=1, description="Importance added to a memory each time an add restates it."
    )
    context_ttl: timedelta | None = Field(
        default=None, description="Default lifetime of CONTEXT memories (None: they do not expire)."
    )
    busy_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for a lock.")
    postgres_url: SecretStr | None = Field(
        default=None,
        description="postgresql://... : keep memories in PostgreSQL with pgvector instead of the SQLite "
        "file (needs the extra headroom-memory[postgres]); db_path is then unused.",
    )
    postgres_schema: str = Field(
        default="headroom", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="The schema holding the tables (created and migrated by the library).",
    )
    postgres_pool_size: int = Field(default=10, ge=1, description="Most connections the pool opens.")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigurationError(f"invalid MemoryConfig: {problems}") from None

    @model_validator(mode="after")
    def _check_dimension(self) -> MemoryConfig:
        known = KNOWN_DIMENSIONS.get(self.resolved_model)
        if self.vector_dimension is not None and known is not None and self.vector_dimension != known:
            raise ValueError(
                f"vector_dimension={self.vector_dimension} does not match the model "
                f"{self.resolved_model!r}, which produces {known}-dimensional vectors"
            )
        return self

    @property
    def resolved_model(self) -> str:
        """The embedding model in use: ``embedder_model`` or the backend's default."""
        return self.embedder_model or DEFAULT_MODELS[self.embedder_backend]

    @property
    def is_in_memory(self) -> bool:
        """True for ``db_path=':memory:'`` (nothing is persisted)."""
        return str(self.db_path) == ":memory:"

    @property
    def index_path(self) -> Path | None:
        """Where the HNSW index file lives (``None`` for an in-memory database)."""
        if self.is_in_memory:
            return None
        return Path(f"{self.db_path}.hnsw")
