"""Embedders over HTTP: OpenAI-compatible ``/embeddings`` and Ollama ``/api/embed``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import numpy as np

from ..errors import ConfigurationError, EmbedderError, MemoryClosedError
from .embedding_utils import check_texts, normalise

__all__ = ["OllamaEmbedder", "OpenAIEmbedder", "map_http_errors"]


@contextlib.contextmanager
def map_http_errors(service: str, url: str) -> Iterator[None]:
    """Translate httpx errors and malformed replies into EmbedderError."""
    try:
        yield
    except httpx.HTTPStatusError as exc:
        body = exc.response.text[:200]
        raise EmbedderError(
            f"{service} embeddings at {url} answered HTTP {exc.response.status_code}: {body}"
        ) from exc
    except httpx.HTTPError as exc:
        raise EmbedderError(f"{service} embeddings at {url} failed: {exc!r}") from exc
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise EmbedderError(f"{service} embeddings at {url} sent an unexpected reply: {exc!r}") from exc


class _HTTPEmbedder:
    """Batching, dimension discovery and lifecycle shared by the HTTP embedders."""

    service = "HTTP"

    def __init__(
        self, model: str, base_url: str, *, dimension: int | None, batch_size: int,
        timeout: float, headers: dict[str, str] | None = None,
    ) -> None:
        self._model = model
        self._base_url = base_url.rstrip("/")
        self._dimension = dimension
        self._batch_size = batch_size
        self._client: httpx.AsyncClient | None = httpx.AsyncClient(
            timeout=timeout, headers=headers or {}
        )

    @property
    def model_name(self) -> str:
        """The model name sent to the server."""
        return self._model

    @property
    def dimension(self) -> int:
        """Vector length; known after :meth:`load` when not configured."""
        if self._dimension is None:
            raise EmbedderError(f"{self.service} embedder dimension unknown; call load() first")
        return self._dimension

    async def load(self) -> None:
        """Embed one probe text: learns the dimension, or checks the configured one."""
        configured, self._dimension = self._dimension, None
        vectors = await self._post_batch(["dimension probe"])
        self._dimension = int(vectors.shape[1])
        if configured is not None and configured != self._dimension:
            raise ConfigurationError(
                f"vector_dimension={configured} but the {self.service} model {self._model!r} "
                f"produces {self._dimension}-dimensional vectors"
            )

    async def _post_batch(self, texts: list[str]) -> np.ndarray[Any, Any]:
        raise NotImplementedError

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        if self._client is None:
            raise MemoryClosedError("the embedder is closed")
        url = f"{self._base_url}{path}"
        with map_http_errors(self.service, url):
            response = await self._client.post(url, json=payload)
            response.raise_for_status()
            return response.json()

    async def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """Unit-length float32 embeddings, one row per text, in batches."""
        items = check_texts(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = [await self._post_batch(items[i : i + self._batch_size])
                 for i in range(0, len(items), self._batch_size)]
        return np.vstack(parts)

    async def close(self) -> None:
        """Close the HTTP client."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class OpenAIEmbedder(_HTTPEmbedder):
    """Embeddings from an OpenAI-compatible ``POST {base_url}/embeddings``."""

    service = "OpenAI"

    def __init__(
        self, model: str = "text-embedding-3-small", *, api_key: str | None = None,
        base_url: str = "https://api.openai.com/v1", dimension: int | None = None,
        batch_size: int = 64, timeout: float = 30.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(model, base_url, dimension=dimension, batch_size=batch_size,
                         timeout=timeout, headers=headers)

    async def _post_batch(self, texts: list[str]) -> np.ndarray[Any, Any]:
        body = await self._post("/embeddings", {"model": self._model, "input": texts})
        with map_http_errors(self.service, self._base_url):
            rows = sorted(body["data"], key=lambda item: item["index"])
            return normalise([row["embedding"] for row in rows], len(texts), self._dimension)


class OllamaEmbedder(_HTTPEmbedder):
    """Embeddings from an Ollama server's ``POST {base_url}/api/embed``."""

    service = "Ollama"

    def __init__(
        self, model: str = "nomic-embed-text", *, base_url: str = "http://localhost:11434",
        dimension: int | None = None, batch_size: int = 64, timeout: float = 30.0,
    ) -> None:
        super().__init__(model, base_url, dimension=dimension, batch_size=batch_size, timeout=timeout)

    async def _post_batch(self, texts: list[str]) -> np.ndarray[Any, Any]:
        body = await self._post("/api/embed", {"model": self._model, "input": texts})
        with map_http_errors(self.service, self._base_url):
            return normalise(body["embeddings"], len(texts), self._dimension)
