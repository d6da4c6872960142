"""MemoryConfig is validated at construction with errors that name the field."""

from __future__ import annotations

import pytest

from headroom_memory import ConfigurationError, EmbedderBackend, MemoryConfig


def test_the_pages_settings_are_accepted() -> None:
    config = MemoryConfig(
        db_path="my_memory.db", embedder_backend=EmbedderBackend.LOCAL, vector_dimension=384,
        cache_max_size=2000, hnsw_ef_construction=200, hnsw_m=16, hnsw_ef_search=50,
        cache_enabled=True, embedder_model="all-MiniLM-L6-v2",
    )
    assert config.resolved_model == "all-MiniLM-L6-v2"
    openai = MemoryConfig(embedder_backend=EmbedderBackend.OPENAI, openai_api_key="sk-...",
                          embedder_model="text-embedding-3-small")
    assert openai.openai_api_key is not None and "sk-" not in repr(openai)
    ollama = MemoryConfig(embedder_backend="ollama", ollama_base_url="http://localhost:11434",
                          embedder_model="nomic-embed-text")
    assert ollama.embedder_backend is EmbedderBackend.OLLAMA


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vector_dimension": 768}, "does not match the model 'all-MiniLM-L6-v2'"),
        ({"embedder_backend": "openai", "vector_dimension": 384}, "text-embedding-3-small"),
        ({"cache_max_size": -1}, "cache_max_size"),
        ({"hnsw_m": 0}, "hnsw_m"),
        ({"hnsw_ef_search": 0}, "hnsw_ef_search"),
        ({"embedder_backend": "pinecone"}, "embedder_backend"),
        ({"colour": "blue"}, "colour"),
        ({"bubble_importance": 1.5}, "bubble_importance"),
    ],
)
def test_invalid_settings_are_configuration_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MemoryConfig(**kwargs)  # type: ignore[arg-type]
