"""Pure ranking functions: reciprocal-rank fusion and the final score."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

__all__ = ["FusedCandidate", "final_score", "max_boost", "recency_factor", "reciprocal_rank_fusion"]


class FusedCandidate(NamedTuple):
    """A label with its fused RRF score and its 1-based rank in each result list."""

    label: int
    rrf: float
    vector_rank: int | None
    text_rank: int | None


def reciprocal_rank_fusion(
    ranked_lists: Mapping[str, Sequence[tuple[int, float]]],
    weights: Mapping[str, float],
    k: float = 60.0,
) -> list[FusedCandidate]:
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
    vector_ranks, text_ranks = ranks.get("vector", {}), ranks.get("text", {})
    return [
        FusedCandidate(label, scores[label], vector_ranks.get(label), text_ranks.get(label))
        for label in sorted(scores, key=lambda label: -scores[label])
    ]


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
