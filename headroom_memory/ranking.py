"""Pure ranking functions: reciprocal-rank fusion and the final score."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import NamedTuple, overload

__all__ = ["FusedCandidate", "FusedCandidates", "final_score", "max_boost", "recency_factor", "reciprocal_rank_fusion"]


class FusedCandidate(NamedTuple):
    """A label with its fused RRF score and its 1-based rank in each result list."""

    label: int
    rrf: float
    vector_rank: int | None
    text_rank: int | None


class FusedCandidates(Sequence[FusedCandidate]):
    """Fused candidates, best first; each is built when it is read. A search
    reads the first dozen or so of the 50 to 80 it fuses, and building them
    all took over half of the fusion's time."""

    __slots__ = ("_order", "_text_ranks", "_vector_ranks")

    def __init__(
        self, order: list[tuple[int, float]], vector_ranks: Mapping[int, int], text_ranks: Mapping[int, int]
    ) -> None:
        self._order = order
        self._vector_ranks = vector_ranks
        self._text_ranks = text_ranks

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, index: int) -> FusedCandidate: ...

    @overload
    def __getitem__(self, index: slice) -> list[FusedCandidate]: ...

    def __getitem__(self, index: int | slice) -> FusedCandidate | list[FusedCandidate]:
        if isinstance(index, slice):
            return [self._candidate(label, rrf) for label, rrf in self._order[index]]
        return self._candidate(*self._order[index])

    def _candidate(self, label: int, rrf: float) -> FusedCandidate:
        return FusedCandidate(label, rrf, self._vector_ranks.get(label), self._text_ranks.get(label))


def reciprocal_rank_fusion(
    ranked_lists: Mapping[str, Sequence[tuple[int, float]]],
    weights: Mapping[str, float],
    k: float = 60.0,
) -> FusedCandidates:
    """Fuse ranked lists: score(l) = sum over lists of weight / (k + rank).

    ``ranked_lists`` maps a list name ("vector", "text") to (label, score)
    pairs, best first. Equal scores share the better rank (1, 2, 2, 4), so two
    equally good hits are not split by the order they were stored in.
    Returns candidates best first; ties keep the order of first appearance.
    """
    scores: dict[int, float] = {}
    ranks: dict[str, dict[int, int]] = {}
    for name, pairs in ranked_lists.items():
        weight = weights.get(name, 1.0)
        ranks[name] = listed = {}
        rank, previous = 0, None
        for position, (label, score) in enumerate(pairs, start=1):
            if label in listed:
                continue
            if previous is None or abs(score - previous) > 1e-6:
                rank, previous = position, score
            listed[label] = rank
            scores[label] = scores.get(label, 0.0) + weight / (k + rank)
    order = sorted(scores.items(), key=itemgetter(1), reverse=True)  # a stable sort: ties keep their order
    return FusedCandidates(order, ranks.get("vector", {}), ranks.get("text", {}))


def recency_factor(age_days: float, half_life_days: float) -> float:
    """1.0 for a memory seen now, halving every ``half_life_days``."""
    return math.pow(0.5, max(age_days, 0.0) / half_life_days)


def final_score(
    rrf: float,
    importance: float,
    age_days: float,
    *,
    importance_weight: float,
    recency_weight: float,
    half_life_days: float,
) -> float:
    """The score results are ordered by: the fused rank score, boosted by
    importance (0..1) and by recency (exponential decay), each by its weight.

    With both weights 0 this is the plain RRF score.
    """
    boost = 1.0 + importance_weight * importance
    boost *= 1.0 + recency_weight * recency_factor(age_days, half_life_days)
    return rrf * boost


def max_boost(importance_weight: float, recency_weight: float) -> float:
    """The most :func:`final_score` multiplies a fused score by (importance 1,
    seen now). It is that score of a fused score of 1, so
    ``final_score(rrf, ...) <= rrf * max_boost(...)`` holds exactly, rounding included."""
    return final_score(1.0, 1.0, 0.0, importance_weight=importance_weight, recency_weight=recency_weight,
                       half_life_days=1.0)
