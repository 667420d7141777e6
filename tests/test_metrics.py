"""Metric values against hand arithmetic and scikit-learn; ties never flatter a scorer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss, ndcg_score, roc_auc_score

from llmrec.eval.metrics import (
    RankedScores,
    aggregate,
    binary_metrics,
    case_auc,
    hit_rate_at_k,
    ideal_dcg,
    macro_auc,
    mrr_at_k,
    ndcg_at_k,
    paired_auc_difference,
    pessimistic_ranks,
    rating_metrics,
    recall_at_k,
    target_ndcg,
    top_k_accuracy,
)

KS = (1, 3, 5, 10)


# --- hand-computed cases -----------------------------------------------------------------------


def test_metrics_from_ranks_by_hand():
    ranks = np.array([0, 2])  # two relevant items at positions 0 and 2; the case has 3 relevant
    # HR@1: position 0 is in the top 1.
    assert hit_rate_at_k(ranks, 1) == 1.0
    # Recall@1 = 1/3 (one of three relevant); Recall@3 = 2/3.
    assert recall_at_k(ranks, 3, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranks, 3, 3) == pytest.approx(2 / 3)
    # NDCG@3: DCG = 1/log2(2) + 1/log2(4) = 1 + 0.5 = 1.5;
    # ideal over min(3, 3) = 3 items: 1 + 1/log2(3) + 1/log2(4) = 1 + 0.63093 + 0.5 = 2.13093.
    assert ndcg_at_k(ranks, 3, 3) == pytest.approx(1.5 / 2.1309297535714573)
    # NDCG@2: DCG = 1 (rank 2 is outside); ideal over min(3, 2) = 2 items: 1 + 0.63093.
    assert ndcg_at_k(ranks, 3, 2) == pytest.approx(1 / 1.6309297535714573)
    # MRR: first relevant at rank 0 -> 1/1.
    assert mrr_at_k(ranks, 1) == 1.0


def test_rank_outside_k_scores_zero_by_hand():
    ranks = np.array([4])  # the only relevant item is fifth
    assert hit_rate_at_k(ranks, 4) == 0.0 and hit_rate_at_k(ranks, 5) == 1.0
    assert mrr_at_k(ranks, 4) == 0.0
    assert mrr_at_k(ranks, 5) == pytest.approx(1 / 5)  # 1 / (4 + 1)
    # NDCG@5 = (1/log2(4 + 2)) / 1 = 1 / 2.58496 = 0.386853
    assert ndcg_at_k(ranks, 1, 5) == pytest.approx(0.386853, abs=1e-6)
    assert ideal_dcg(1, 5) == 1.0


def test_ties_are_broken_against_the_scorer_by_hand():
    scores = [0.9, 0.5, 0.5, 0.1]
    relevant = [False, True, False, False]
    # The relevant item ties with item 2 (non-relevant) at 0.5: it goes after it, to rank 2.
    ranks = pessimistic_ranks(scores, relevant)
    assert ranks.tolist() == [2]
    assert hit_rate_at_k(ranks, 2) == 0.0
    assert mrr_at_k(ranks, 3) == pytest.approx(1 / 3)
    assert ndcg_at_k(ranks, 1, 3) == pytest.approx(0.5)  # 1/log2(2 + 2) = 1/2
    # AUC: pairs (rel, neg) = (0.5 vs 0.9) lose, (0.5 vs 0.5) half, (0.5 vs 0.1) win -> 1.5 / 3.
    assert case_auc(scores, relevant) == pytest.approx(0.5)


def test_single_target_list_ndcg_by_hand_with_ties_against_the_target():
    # The builders' check lists (llamarec, nexttitle) use this: target at index 2, two others above it.
    assert target_ndcg([0.9, 0.1, 0.5, 0.7], 2, 10) == pytest.approx(1 / math.log2(4))
    # A tie with one other candidate ranks the target after it; a constant list ranks it last.
    assert target_ndcg([0.5, 0.5, 0.1], 0, 10) == pytest.approx(1 / math.log2(3))
    assert target_ndcg([1.0] * 12, 3, 10) == 0.0
    assert target_ndcg([0.2, 3.0, 1.0], 1, 1) == 1.0


def test_constant_scorer_gets_the_worst_ranks_and_chance_auc():
    scores = np.zeros(5)
    relevant = np.array([True, False, True, False, False])
    # Two relevant among five, all tied: they take the last two positions.
    assert pessimistic_ranks(scores, relevant).tolist() == [3, 4]
    m = RankedScores(scores[None, :]).case_metrics(relevant[None, :], (1, 3))
    assert m["hr@3"][0] == 0.0 and m["ndcg@3"][0] == 0.0 and m["mrr@3"][0] == 0.0
    assert m["auc"][0] == pytest.approx(0.5)  # chance, never more


def test_top_k_accuracy_is_per_target_while_recall_is_per_case():
    # Case A: two targets at ranks 0 and 5; case B: one target at rank 1. K = 2.
    ranks = [np.array([0, 5]), np.array([1])]
    # Top-2 accuracy: 2 of 3 targets are in their case's top 2 -> 2/3.
    assert top_k_accuracy(ranks, 2) == pytest.approx(2 / 3)
    # Recall@2 averaged over cases: (1/2 + 1/1) / 2 = 0.75.
    assert np.mean([recall_at_k(ranks[0], 2, 2), recall_at_k(ranks[1], 1, 2)]) == pytest.approx(0.75)
    scores = np.array([[9, 1, 1, 1, 1, 1.5, 1], [5, 4, 3, 2, 1, 0, -1]], dtype=float)
    rel = np.zeros_like(scores, dtype=bool)
    rel[0, [0, 4]] = True  # item 4 ties with items 1,2,3,6 at 1.0 and goes after them: rank 6
    rel[1, 1] = True
    agg = aggregate(RankedScores(scores).case_metrics(rel, (2,)), (2,))
    assert agg["accuracy@2"] == pytest.approx(2 / 3)
    assert agg["recall@2"] == pytest.approx(0.75)


def test_metric_guards():
    with pytest.raises(ValueError):
        ndcg_at_k(np.array([0]), 0, 5)
    with pytest.raises(ValueError):
        recall_at_k(np.array([0]), 0, 5)
    assert math.isnan(case_auc([1, 2], [True, True]))  # no negative: undefined, not 1
    with pytest.raises(ValueError, match="NaN"):
        RankedScores(np.array([[1.0, np.nan]]))


# --- against scikit-learn ----------------------------------------------------------------------


def test_ndcg_matches_sklearn_without_ties():
    rng = np.random.default_rng(3)
    scores = rng.random((40, 30))  # continuous: no ties, where sklearn and pessimistic ranks agree
    rel = rng.random((40, 30)) < 0.15
    rel[:, 0] |= ~rel.any(axis=1)  # every case has at least one relevant item
    ranked = RankedScores(scores)
    for k in KS:
        ours = ranked.case_metrics(rel, (k,))[f"ndcg@{k}"]
        theirs = [ndcg_score(rel[i : i + 1].astype(float), scores[i : i + 1], k=k) for i in range(len(rel))]
        np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_auc_matches_roc_auc_score_with_ties_and_left_out_items():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, size=(60, 25)).astype(float)  # coarse scores: many ties
    rel = rng.random((60, 25)) < 0.3
    ignore = rng.random((60, 25)) < 0.2
    auc = RankedScores(scores).case_metrics(rel, (5,), ignore)["auc"]
    for i in range(len(scores)):
        keep = ~ignore[i]
        y = (rel[i] & keep)[keep]
        if y.all() or not y.any():
            assert np.isnan(auc[i])
        else:
            assert auc[i] == pytest.approx(roc_auc_score(y, scores[i][keep]))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 12), st.integers(0, 10_000))
def test_batched_metrics_equal_the_per_case_reference(n_cases, n_cand, seed):
    """The vectorised path equals the readable per-case functions, ties and left-out items included."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(n_cases, n_cand)).astype(float)
    rel = rng.random((n_cases, n_cand)) < 0.4
    ignore = rng.random((n_cases, n_cand)) < 0.25
    m = RankedScores(scores).case_metrics(rel, KS, (np.nonzero(ignore)))
    for i in range(n_cases):
        keep = ~ignore[i]
        y = (rel[i] & keep)[keep]
        assert m["n_candidates"][i] == keep.sum() and m["n_relevant"][i] == y.sum()
        if not y.any():
            assert m["hr@10"][i] == 0.0
            continue
        ranks = pessimistic_ranks(scores[i][keep], y)
        for k in KS:
            assert m[f"hr@{k}"][i] == hit_rate_at_k(ranks, k)
            assert m[f"ndcg@{k}"][i] == pytest.approx(ndcg_at_k(ranks, y.sum(), k))
            assert m[f"recall@{k}"][i] == pytest.approx(recall_at_k(ranks, y.sum(), k))
            assert m[f"mrr@{k}"][i] == pytest.approx(mrr_at_k(ranks, k))
            assert m[f"hits@{k}"][i] == int(np.sum(ranks < k))


# --- pointwise ---------------------------------------------------------------------------------


def test_binary_metrics_against_sklearn_and_by_hand():
    labels = [1, 0, 1, 0, 1]
    probs = [0.9, 0.4, 0.6, 0.7, 0.3]
    out = binary_metrics(labels, probs)
    assert out["auc"] == pytest.approx(roc_auc_score(labels, probs))
    # AUC by hand: positives {0.9, 0.6, 0.3} vs negatives {0.4, 0.7}: wins 0.9>0.4, 0.9>0.7,
    # 0.6>0.4 -> 3 of 6 pairs.
    assert out["auc"] == pytest.approx(3 / 6)
    assert out["logloss"] == pytest.approx(log_loss(labels, probs))
    # Accuracy at 0.5: predictions 1,0,1,1,0 vs labels 1,0,1,0,1 -> 3 of 5 right.
    assert out["accuracy"] == pytest.approx(0.6)
    assert out["probabilities"] is True


def test_binary_metrics_on_raw_scores_and_bad_input():
    out = binary_metrics([0, 1, 1], [-2.0, 3.0, 0.5])  # logits, not probabilities
    assert out["auc"] == 1.0 and out["logloss"] is None and out["accuracy"] is None
    assert math.isnan(binary_metrics([1, 1], [0.2, 0.9])["auc"])  # one class: undefined
    with pytest.raises(ValueError, match="0 or 1"):
        binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.1])


def test_rating_metrics_by_hand():
    # Errors 0, 1, 2: MAE = 3/3 = 1; RMSE = sqrt((0 + 1 + 4) / 3) = sqrt(5/3).
    out = rating_metrics([1, 2, 3], [1, 3, 5])
    assert out["mae"] == pytest.approx(1.0)
    assert out["rmse"] == pytest.approx(math.sqrt(5 / 3))
    with pytest.raises(ValueError):
        rating_metrics([1, 2], [1.0, float("nan")])


def test_macro_auc_by_hand_and_with_a_missing_class():
    # Binary: the AUC of class 1's probability. Pairs (pos, neg): (0.9 > 0.2), (0.9 > 0.6), (0.4 > 0.2),
    # (0.4 < 0.6): 3 of 4 ordered correctly.
    probs = np.array([[0.1, 0.9], [0.8, 0.2], [0.6, 0.4], [0.4, 0.6]])
    assert macro_auc([1, 0, 1, 0], probs) == pytest.approx(0.75)
    # Three classes, class 2 never occurs: the mean over classes 0 and 1 only.
    three = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.3, 0.6, 0.1]])
    labels = [0, 1, 0, 1]
    expected = np.mean([roc_auc_score(np.equal(labels, c), three[:, c]) for c in (0, 1)])
    assert macro_auc(labels, three) == pytest.approx(expected) == pytest.approx(1.0)
    assert math.isnan(macro_auc([1, 1], probs[:2]))
    with pytest.raises(ValueError, match="class indices"):
        macro_auc([0, 3], probs[:2])


def test_paired_auc_difference_against_sklearn_with_an_interval():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    informed, noise = y + rng.normal(0, 1, 300), rng.normal(0, 1, 300)
    diff = paired_auc_difference(y, informed, noise)
    assert diff["mean"] == pytest.approx(roc_auc_score(y, informed) - roc_auc_score(y, noise))
    assert 0 < diff["low"] < diff["mean"] < diff["high"] and diff["pairs"] == 300
    same = paired_auc_difference(y, informed, informed)
    assert same["low"] == same["mean"] == same["high"] == 0.0
    with pytest.raises(ValueError, match="both classes"):
        paired_auc_difference([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
