"""Helpers shared by the embedders: normalisation and input checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import EmbedderError, InvalidInputError

__all__ = ["check_texts", "normalise"]


def check_texts(texts: Sequence[str]) -> list[str]:
    """A list copy of ``texts``; InvalidInputError unless every item is a string."""
    if isinstance(texts, str):
        raise InvalidInputError("embed() takes a sequence of strings, not one string")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInputError(f"text {i} to embed is {type(text).__name__}, not str")
    return items


def normalise(vectors: Any, expected_rows: int, dimension: int | None) -> np.ndarray[Any, Any]:
    """A (rows, dimension) float32 array with unit rows; EmbedderError on a bad shape."""
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbedderError(f"embedder returned something that is not a matrix: {exc}") from exc
    if array.ndim != 2 or array.shape[0] != expected_rows:
        raise EmbedderError(
            f"embedder returned shape {array.shape}, expected ({expected_rows}, dimension)"
        )
    if dimension is not None and array.shape[1] != dimension:
        raise EmbedderError(
            f"embedder returned {array.shape[1]}-d vectors, expected {dimension}-d"
        )
    if not np.all(np.isfinite(array)):
        raise EmbedderError("embedder returned NaN or infinite values")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: np.ndarray[Any, Any] = array / norms
    return result
