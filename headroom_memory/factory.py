"""Building the default adapters a MemoryConfig asks for."""

from __future__ import annotations

from .adapters.http_embedders import OllamaEmbedder, OpenAIEmbedder
from .adapters.local_embedder import LocalEmbedder
from .config import EmbedderBackend, MemoryConfig
from .errors import ConfigurationError
from .ports import Embedder

__all__ = ["build_embedder"]


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
