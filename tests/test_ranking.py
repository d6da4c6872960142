"""Reciprocal-rank fusion and the final score, worked by hand."""

from __future__ import annotations

import pytest

from headroom_memory.ranking import final_score, max_boost, recency_factor, reciprocal_rank_fusion


def test_rrf_scores_are_sums_of_weight_over_k_plus_rank() -> None:
    fused = reciprocal_rank_fusion({"vector": [(1, 0.9), (2, 0.8), (3, 0.7)], "text": [(3, 5.0), (4, 4.0)]},
                                   {"vector": 1.0, "text": 2.0}, k=10)
    scores = {c.label: c.rrf for c in fused}
    assert scores[3] == pytest.approx(1 / 13 + 2 / 11)
    assert scores[1] == pytest.approx(1 / 11)
    assert scores[4] == pytest.approx(2 / 12)
    assert [c.label for c in fused] == [3, 4, 1, 2]
    assert (fused[0].vector_rank, fused[0].text_rank) == (3, 1)


def test_fused_candidates_index_and_slice_like_a_list() -> None:
    fused = reciprocal_rank_fusion({"vector": [(1, 0.9), (2, 0.8), (3, 0.7)], "text": [(3, 5.0), (4, 4.0)]},
                                   {"vector": 1.0, "text": 2.0}, k=10)
    everything = list(fused)
    assert len(fused) == len(everything) == 4
    assert fused[1:3] == everything[1:3] and fused[-1] == everything[-1] == (2, 1 / 12, 2, None)
    assert fused[::-1] == everything[::-1] and fused[5:] == []
    with pytest.raises(IndexError):
        fused[4]


def test_final_score_boosts_importance_and_recency() -> None:
    plain = final_score(0.1, 0.5, 0.0, importance_weight=0, recency_weight=0, half_life_days=30)
    assert plain == pytest.approx(0.1)
    important = final_score(0.1, 1.0, 0.0, importance_weight=0.5, recency_weight=0, half_life_days=30)
    assert important == pytest.approx(0.15)
    assert recency_factor(30, 30) == pytest.approx(0.5)
    old = final_score(0.1, 0.5, 60, importance_weight=0, recency_weight=1, half_life_days=30)
    assert old == pytest.approx(0.1 * 1.25)


def test_equal_scores_share_a_rank() -> None:
    fused = reciprocal_rank_fusion({"vector": [(1, 0.9), (2, 0.9), (3, 0.5)]}, {"vector": 1.0}, k=10)
    assert [(c.label, c.vector_rank) for c in fused] == [(1, 1), (2, 1), (3, 3)]
    assert fused[0].rrf == fused[1].rrf == pytest.approx(1 / 11)


@pytest.mark.parametrize(("importance_weight", "recency_weight"), [(0.02, 0.1), (0.0, 0.0), (50.0, 3.0)])
def test_no_final_score_exceeds_the_fused_score_times_the_max_boost(
    importance_weight: float, recency_weight: float
) -> None:
    ceiling = max_boost(importance_weight, recency_weight)
    assert ceiling == pytest.approx((1 + importance_weight) * (1 + recency_weight))
    for rrf in (1 / 6, 1 / 7, 0.3, 1 / 45):
        for importance in (0.0, 0.5, 1.0):
            for age in (-3.0, 0.0, 0.5, 40.0):
                score = final_score(rrf, importance, age, importance_weight=importance_weight,
                                    recency_weight=recency_weight, half_life_days=30)
                assert score <= rrf * ceiling
    top = final_score(1 / 7, 1.0, 0.0, importance_weight=importance_weight, recency_weight=recency_weight,
                      half_life_days=30)
    assert top == (1 / 7) * ceiling
