"""Checks on public-call arguments; each raises InvalidInputError naming the problem."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidInputError

__all__ = [
    "MAX_CONTENT_CHARS",
    "check_content",
    "check_entity_refs",
    "check_importance",
    "check_metadata",
    "check_positive_int",
    "check_similarity",
]

MAX_CONTENT_CHARS = 20_000


def check_content(content: object, name: str = "content") -> str:
    """Non-empty text of at most MAX_CONTENT_CHARS characters, stripped."""
    if not isinstance(content, str):
        raise InvalidInputError(f"{name} must be a string, got {type(content).__name__}")
    text = content.strip()
    if not text:
        raise InvalidInputError(f"{name} is empty")
    if len(text) > MAX_CONTENT_CHARS:
        raise InvalidInputError(
            f"{name} has {len(text)} characters; the limit is {MAX_CONTENT_CHARS}"
        )
    if "\x00" in text:
        raise InvalidInputError(f"{name} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{name} contains a lone surrogate: not valid Unicode text") from None
    return text


def check_importance(value: object, name: str = "importance") -> float:
    """A finite number in 0..1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{name} must be a number between 0 and 1, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise InvalidInputError(f"{name} must be between 0 and 1, got {value!r}")
    return number


def check_similarity(value: object, name: str = "min_similarity") -> float:
    """A finite number in -1..1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{name} must be a number between -1 and 1, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not -1.0 <= number <= 1.0:
        raise InvalidInputError(f"{name} must be between -1 and 1, got {value!r}")
    return number


def check_positive_int(value: object, name: str) -> int:
    """An int of at least 1 (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_entity_refs(value: object) -> tuple[str, ...]:
    """A sequence of non-empty strings (not one string)."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInputError(f"entity_refs must be a list of strings, got {value!r}")
    refs: list[str] = []
    for ref in value:
        if not isinstance(ref, str) or not ref.strip():
            raise InvalidInputError(f"entity_refs items must be non-empty strings, got {ref!r}")
        refs.append(ref.strip())
    return tuple(refs)


def check_metadata(value: object) -> dict[str, Any]:
    """A JSON-serialisable mapping with string keys."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"metadata must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InvalidInputError(f"metadata keys must be strings, got {key!r}")
    try:
        return dict(json.loads(json.dumps(dict(value), allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serialisable: {exc}") from None
