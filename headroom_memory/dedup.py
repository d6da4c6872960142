"""Near-duplicate decisions as plain functions: when a new memory restates one
already stored (merge and reinforce) and when it differs in a way that matters.

A pair merges when the normalised texts are equal, or when the embeddings are
at least ``threshold`` similar *and* nothing material differs: the numbers, the
negation, and the capitalised names of the two texts must be the same. So
"Lives in Paris" / "Lives in Berlin", "Has 2 cats" / "Has 3 cats" and
"Likes jazz" / "Doesn't like jazz" are never merged away, while "Prefers Python
for backend work" / "Prefers Python for backend development" are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Signature", "is_near_duplicate", "normalise", "signature"]

_WORD = re.compile(r"[\w'’]+", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_NEGATIONS = frozenset("not no never none nobody nothing neither nor cannot without".split())
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty "
    "hundred thousand million first second third once twice".split()
)


def normalise(text: str) -> str:
    """Lower case, words only, single spaces."""
    return " ".join(_WORD.findall(text.lower()))


@dataclass(frozen=True)
class Signature:
    """What must be equal for two texts to be the same fact."""

    numbers: frozenset[str]
    negated: bool
    names: frozenset[str]


def signature(text: str) -> Signature:
    """Numbers (digits and number words), negation, and capitalised names after
    the first word of each sentence."""
    words = _WORD.findall(text)
    lowered = [w.lower() for w in words]
    numbers = set(_NUMBER.findall(text)) | {w for w in lowered if w in _NUMBER_WORDS}
    negated = any(w in _NEGATIONS or w.endswith(("n't", "n’t")) for w in lowered)
    names: set[str] = set()
    sentence_start = True
    for raw in re.findall(r"[\w'’]+|[.!?]", text):
        if raw in ".!?":
            sentence_start = True
            continue
        if not sentence_start and raw[:1].isupper():
            names.add(raw.lower())
        sentence_start = False
    return Signature(frozenset(numbers), negated, frozenset(names))


def is_near_duplicate(new_text: str, old_text: str, similarity: float, threshold: float) -> bool:
    """Whether ``new_text`` restates ``old_text`` (see the module docstring)."""
    if normalise(new_text) == normalise(old_text):
        return True
    return similarity >= threshold and signature(new_text) == signature(old_text)
