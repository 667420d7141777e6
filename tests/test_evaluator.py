"""The ranking evaluator end to end on realistically shaped logs (and on real ML-100K when present)."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_squared_error, roc_auc_score

from llmrec.data.schema import ITEM, RATING, TIME, USER, Dataset
from llmrec.data.splits import leave_one_out_split, temporal_split
from llmrec.eval import (
    EvalConfig,
    PointwiseEvaluator,
    RankingEvaluator,
    RatingEvaluator,
    evaluate_ranking,
    ndcg_at_k,
    pessimistic_ranks,
)
from llmrec.scoring import is_shared, per_user_candidates

N_ITEMS, N_NEW, N_UNSEEN = 70, 8, 5
LATE = 85_000  # "new release" items only occur after this time: cold in a 30% temporal split


def make_log(seed: int = 0, n_users: int = 50, n_items: int = N_ITEMS, repeat_share: float = 0.2,
             min_events: int = 4, max_events: int = 14) -> Dataset:
    """A small log shaped like real ones: skewed popularity, users with 4-14 events over time,
    new items that only appear late (cold-start in a temporal split), some users re-consuming an
    item later (repeat consumption), and catalogue items nobody touched."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.9
    weights /= weights.sum()
    new_items = np.arange(n_items, n_items + N_NEW)
    rows = []
    for u in range(n_users):
        k = int(rng.integers(min_events, max_events + 1))
        times = np.sort(rng.integers(0, 100_000, k))
        items = list(rng.choice(n_items, size=k, replace=False, p=weights))
        for j, t in enumerate(times):
            if t > LATE and rng.random() < 0.35:
                items[j] = int(rng.choice(new_items))
        seen = []
        for t, i in zip(times, items, strict=True):
            if i not in seen:
                rows.append((f"u{u}", str(i), int(t), int(rng.integers(1, 6))))
                seen.append(i)
        if rng.random() < repeat_share and len(seen) > 1:  # re-consume an early item near the end
            rows.append((f"u{u}", str(seen[0]), int(rng.integers(95_000, 100_000)), int(rng.integers(1, 6))))
    inter = pd.DataFrame(rows, columns=[USER, ITEM, TIME, RATING])
    n_catalog = n_items + N_NEW + N_UNSEEN
    catalog = pd.DataFrame({ITEM: [str(i) for i in range(n_catalog)],
                            "title": [f"item {i}" for i in range(n_catalog)]})
    return Dataset("synthetic", inter, catalog)


# --- scorers written for the tests -------------------------------------------------------------


class RecordingScorer:
    """Wraps a score function; records every history and candidate list it is given."""

    def __init__(self, name, fn):
        self.name = name
        self.fn = fn
        self.calls: list[tuple[list[list[str]], list]] = []

    def score(self, histories, candidates):
        histories = [list(h) for h in histories]
        cands = per_user_candidates(candidates, len(histories))
        self.calls.append((histories, [list(c) for c in cands]))
        rows = [[self.fn(h, c) for c in cs] for h, cs in zip(histories, cands, strict=True)]
        return np.array(rows, dtype=float)

    def seen(self) -> list[tuple[list[str], list[str]]]:
        return [(h, c) for hs, cs in self.calls for h, c in zip(hs, cs, strict=True)]


class RandomScorer:
    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def score(self, histories, candidates):
        n = len(candidates) if is_shared(candidates) else len(candidates[0])
        return self.rng.random((len(histories), n))


class CountScorer:
    """Training popularity (what a popularity baseline does), written here to stay independent."""

    name = "counts"

    def __init__(self, split, part="test"):
        self.counts = split.item_popularity(part).to_dict()

    def score(self, histories, candidates):
        cands = per_user_candidates(candidates, len(histories))
        return np.array([[float(self.counts.get(i, 0)) for i in c] for c in cands])


def oracle_for(split, part="test"):
    """A scorer that knows each case's targets. Built from the split's own cases (the test may look
    at targets; the evaluator never hands them out), keyed by the history the scorer receives."""
    es = split.eval_set(part)
    answers = {tuple(h): set(t) for h, t in zip(es.histories, es.targets, strict=True)}
    assert len(answers) == len(es), "two cases share a history: the oracle would be ambiguous"
    return RecordingScorer("oracle", lambda h, c: 1.0 if c in answers[tuple(h)] else 0.0)


@pytest.fixture(scope="module")
def temporal():
    return temporal_split(make_log(seed=1), test_ratio=0.3)


@pytest.fixture(scope="module")
def loo():
    return leave_one_out_split(make_log(seed=2))


def quiet(split, **kw) -> RankingEvaluator:
    return RankingEvaluator(split, EvalConfig(show_progress=False, **kw))


# --- correctness on known answers --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "sampled"])
@pytest.mark.parametrize("which", ["temporal", "loo"])
def test_oracle_gets_perfect_scores_in_every_slice(mode, which, request):
    split = request.getfixturevalue(which)
    result = quiet(split, mode=mode)(oracle_for(split))
    assert result["mode"] == ("full" if mode == "full" else "sampled-100")
    for name, sl in result["slices"].items():
        if sl["cases"] == 0:
            continue
        for k in (1, 5, 10, 20):
            assert sl[f"hr@{k}"] == 1.0, (name, k)
            assert sl[f"ndcg@{k}"] == pytest.approx(1.0), (name, k)
            assert sl[f"mrr@{k}"] == 1.0
        if sl["auc"] is not None:
            assert sl["auc"] == pytest.approx(1.0)
    assert result["ndcg@10"] == pytest.approx(1.0) and result["primary_metric"] == "ndcg@10"


@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_constant_scorer_gets_no_credit(temporal, mode):
    constant = RecordingScorer("constant", lambda h, c: 3.0)
    result = quiet(temporal, mode=mode)(constant)
    for k in (1, 5, 10, 20):
        assert result[f"hr@{k}"] == 0.0 and result[f"ndcg@{k}"] == 0.0 and result[f"mrr@{k}"] == 0.0
        assert result[f"accuracy@{k}"] == 0.0
    assert result["auc"] == pytest.approx(0.5)


def test_full_ranking_equals_a_brute_force_reference(temporal):
    """Recompute NDCG@10 case by case from the split's cases, independent of the evaluator's plumbing."""
    scorer = CountScorer(temporal)
    result = quiet(temporal, batch_size=7)(scorer)
    catalog = list(temporal.dataset.items.index)
    values = []
    es = temporal.eval_set("test")
    for hist, targets in zip(es.histories, es.targets, strict=True):
        seen = set(hist)
        targets = [t for t in targets if t not in seen]  # repeat consumption: removed
        if not targets:
            continue
        cands = [i for i in catalog if i not in seen]  # history left out of the ranking
        scores = scorer.score([hist], cands)[0]
        ranks = pessimistic_ranks(scores, [c in targets for c in cands])
        values.append(ndcg_at_k(ranks, len(targets), 10))
    assert result["counts"]["cases"] == len(values)
    assert result["ndcg@10"] == pytest.approx(np.mean(values))


def test_batch_size_does_not_change_results(loo):
    scorer = CountScorer(loo)
    a = quiet(loo, batch_size=5, mode="sampled")(scorer)
    b = quiet(loo, batch_size=500, mode="sampled")(scorer)
    assert a["slices"] == b["slices"]


def test_random_scorer_on_sampled_100_hits_about_10_in_101():
    split = leave_one_out_split(make_log(seed=7, n_users=400, n_items=300, repeat_share=0.0))
    result = quiet(split, mode="sampled")(RandomScorer(seed=11))
    n = result["counts"]["cases"]
    assert result["counts"]["candidates_per_case"] == {"min": 101, "mean": 101.0, "max": 101}
    p = 10 / 101
    # HR@10 of a random ranking is a mean of n Bernoulli(10/101) draws: within 4 standard deviations.
    assert abs(result["hr@10"] - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert abs(result["auc"] - 0.5) < 4 * math.sqrt(1 / 12 / n) + 0.01


# --- candidates: fixed, identical for every scorer, never history ------------------------------


def test_sampled_candidates_are_fixed_across_runs_and_scorers(temporal):
    first, second = RecordingScorer("a", lambda h, c: 0.0), RecordingScorer("b", lambda h, c: len(c))
    quiet(temporal, mode="sampled")(first)
    quiet(temporal, mode="sampled")(second)  # a new evaluator, another scorer
    assert first.seen() == second.seen() and len(first.seen()) > 0
    other_seed = RecordingScorer("c", lambda h, c: 0.0)
    quiet(temporal, mode="sampled", seed=43)(other_seed)
    assert other_seed.seen() != first.seen()  # the seed matters, so the equality above is real


def test_sampled_candidates_hold_targets_once_and_never_history(temporal):
    ev = quiet(temporal, mode="sampled", num_negatives=20)
    for case in ev.cases():
        cands = case["candidates"]
        assert len(cands) == len(set(cands)) == 20 + len(case["targets"])
        assert set(case["targets"]) <= set(cands)
        assert not set(case["history"]) & set(cands)


def test_sampled_candidate_order_reveals_nothing(loo):
    # With targets inserted at a fixed place, a position-based scorer would win; shuffled, it must not.
    ev = quiet(loo, mode="sampled", num_negatives=30)
    positions = [c["candidates"].index(c["targets"][0]) for c in ev.cases()]
    assert {len(c["candidates"]) for c in ev.cases()} == {31}
    assert len(set(positions)) > 15
    # Uniform positions over 0..30: mean 15, standard deviation sqrt((31**2 - 1) / 12) = 8.9.
    assert abs(np.mean(positions) - 15) < 4 * 8.9 / math.sqrt(len(positions))


def test_full_mode_leaves_history_out_and_counts_repeats(temporal):
    ev = quiet(temporal)
    es = temporal.eval_set("test")
    repeats = sum(t in set(h) for h, ts in zip(es.histories, es.targets, strict=True) for t in ts)
    assert repeats > 0, "the test log must contain repeat consumption"
    assert ev.counts["targets_removed_in_history"] == repeats
    n_catalog = len(temporal.dataset.items)
    per_case = [n_catalog - len(set(c["history"])) for c in ev.cases()]
    assert ev.counts["candidates_per_case"]["min"] == min(per_case)
    assert ev.counts["candidates_per_case"]["max"] == max(per_case)
    # Scores of history items cannot matter when history is left out ...
    likes_history = RecordingScorer("likes", lambda h, c: 100.0 if c in h else float(c in {"0", "1", "2"}))
    hates_history = RecordingScorer("hates", lambda h, c: -100.0 if c in h else float(c in {"0", "1", "2"}))
    assert ev(likes_history)["slices"] == ev(hates_history)["slices"]
    # ... and do when it is kept: history items then outrank the targets.
    kept = quiet(temporal, exclude_history=False)
    assert kept.counts["targets_removed_in_history"] == 0
    assert kept(likes_history)["ndcg@10"] < kept(hates_history)["ndcg@10"]


def test_scorer_never_receives_targets_or_future_events(temporal):
    """Each history the scorer sees is exactly the user's known events before their first test
    event; with history excluded, no evaluated target is in it."""
    spy = RecordingScorer("spy", lambda h, c: 0.0)
    ev = quiet(temporal, batch_size=9)
    ev(spy)
    known = temporal.known("test")
    first_test = temporal.test.groupby(USER)[TIME].min()
    expected = {}
    for user, g in known.sort_values([USER, TIME], kind="stable").groupby(USER):
        if user in first_test.index:
            expected[user] = g.loc[g[TIME] < first_test[user], ITEM].tolist()
    targets_by_history = {tuple(c["history"]): set(c["targets"]) for c in ev.cases()}
    seen = spy.seen()
    assert len(seen) == ev.counts["cases"]
    for hist, cands in seen:
        assert hist in expected.values()  # a real user's past, nothing later
        assert not set(hist) & targets_by_history[tuple(hist)]
        assert cands == list(temporal.dataset.items.index)  # full mode: the catalogue, as given


# --- slices ------------------------------------------------------------------------------------


def test_slices_partition_targets(temporal):
    ev = quiet(temporal)
    known = set(temporal.known("test")[ITEM])
    cold = temporal.cold_items("test")
    pop = temporal.item_popularity("test")
    cut = pop.sort_values(ascending=False).iloc[math.ceil(0.2 * len(pop)) - 1]
    head = set(pop[pop >= cut].index)
    n_cold = n_warm = n_tail = 0
    for case in ev.cases():
        for t, warm, is_head in zip(case["targets"], case["warm"], case["head"], strict=True):
            assert warm == (t in known) and (not warm) == (t in cold)
            assert is_head == (t in head)
            n_warm += warm
            n_cold += not warm
            n_tail += warm and not is_head
    assert n_cold > 0 and n_tail > 0, "the test log must have cold and long-tail targets"
    slices = ev(CountScorer(temporal))["slices"]
    assert slices["warm"]["targets"] + slices["cold"]["targets"] == slices["all"]["targets"]
    assert (slices["warm"]["targets"], slices["cold"]["targets"], slices["long_tail"]["targets"]) == (
        n_warm, n_cold, n_tail)
    assert slices["long_tail"]["cases"] <= slices["warm"]["cases"] <= slices["all"]["cases"]
    # Popularity cannot score a cold item above 0, so its cold-slice HR@1 is 0 while warm is not.
    assert slices["cold"]["hr@1"] == 0.0 and slices["warm"]["hr@10"] > 0.0


# --- settings, labels, errors ------------------------------------------------------------------


def test_result_is_labelled_and_subsampling_is_seeded(loo):
    a = quiet(loo, max_cases=15, mode="sampled", num_negatives=30)
    b = quiet(loo, max_cases=15, mode="sampled", num_negatives=30)
    assert [c["user"] for c in a.cases()] == [c["user"] for c in b.cases()]
    r = a(CountScorer(loo))
    assert r["mode"] == "sampled-30" and r["counts"]["cases"] == 15 and r["counts"]["subsampled"]
    assert r["scorer"] == "counts" and r["seconds"] >= 0 and r["part"] == "test"
    assert set(r["slices"]) == {"all", "warm", "long_tail", "cold"}
    assert a.results["counts"] is r


def test_valid_part_and_one_call_form(loo):
    r = evaluate_ranking(loo, CountScorer(loo, "valid"), part="valid", show_progress=False)
    assert r["part"] == "valid" and r["counts"]["cases"] > 0


def test_bad_settings_and_bad_scorers_fail_clearly(loo):
    with pytest.raises(ValueError, match="mode"):
        EvalConfig(mode="half")
    with pytest.raises(ValueError, match="primary_metric"):
        EvalConfig(primary_metric="ndcg@50")
    with pytest.raises(TypeError, match="Scorer"):
        quiet(loo)(object())
    wrong_shape = RecordingScorer("wrong", lambda h, c: 0.0)
    wrong_shape.score = lambda h, c: np.zeros((len(h), 3))
    with pytest.raises(ValueError, match="shape"):
        quiet(loo)(wrong_shape)


# --- pointwise and rating evaluators -----------------------------------------------------------


def test_pointwise_evaluator_from_ratings(loo):
    ev = PointwiseEvaluator.from_split(loo, like_threshold=4, show_progress=False)
    spy = RecordingScorer("hist-len", lambda h, c: 1 - 1 / (1 + len(h)))
    result = ev(spy)
    # Expected labels straight from the held-out events (one per user in leave-one-out).
    test = loo.test.set_index(USER)
    es = loo.eval_set("test")
    labels = [int(test.loc[u, RATING] > 4) for u in es.users]  # like_threshold: strictly above
    preds = [1 - 1 / (1 + len(h)) for h in es.histories]
    assert result["auc"] == pytest.approx(roc_auc_score(labels, preds))
    assert result["counts"]["positives"] == sum(labels)
    assert result["primary_metric"] == "auc" and result["mode"] == "pointwise"
    # The scorer got one candidate per pair and nothing that looks like a label.
    assert all(len(c) == 1 and isinstance(c[0], str) for _, c in spy.seen())
    assert "per_pair" not in result
    kept = PointwiseEvaluator.from_split(loo, like_threshold=4, show_progress=False, keep_predictions=True)
    assert kept(RecordingScorer("hist-len", lambda h, c: 1 - 1 / (1 + len(h))))["per_pair"] == pytest.approx(preds)


def test_rating_evaluator(loo):
    ev = RatingEvaluator.from_split(loo, show_progress=False)
    result = ev(RecordingScorer("three", lambda h, c: 3.0))
    es = loo.eval_set("test")
    truth = loo.test.set_index(USER).loc[es.users, RATING].to_numpy()
    assert result["rmse"] == pytest.approx(math.sqrt(mean_squared_error(truth, np.full(len(truth), 3.0))))
    assert result["primary_metric"] == "rmse" and ev.greater_is_better is False


# --- real data ---------------------------------------------------------------------------------


@pytest.mark.realdata
def test_ml100k_full_ranking(require_data):
    path = require_data("ml-100k", "u.data")
    ratings = pd.read_csv(path, sep="\t", names=[USER, ITEM, RATING, TIME])
    items = pd.DataFrame({ITEM: sorted(ratings[ITEM].astype(str).unique())})
    split = leave_one_out_split(Dataset("ml-100k", ratings, items))
    ev = quiet(split)
    t0 = time.perf_counter()
    pop = ev(CountScorer(split))
    rnd = ev(RandomScorer(seed=0))
    elapsed = time.perf_counter() - t0
    assert pop["counts"]["cases"] == 943 and pop["counts"]["catalog_items"] == 1682
    hist_sizes = [len(set(c["history"])) for c in ev.cases()]
    assert pop["counts"]["candidates_per_case"]["min"] == 1682 - max(hist_sizes)
    # A random ranking's expected HR@10 is the mean of 10 / candidates; it must land near it.
    expected = np.mean([10 / (1682 - h) for h in hist_sizes])
    assert abs(rnd["hr@10"] - expected) < 4 * math.sqrt(expected / 943)
    assert pop["ndcg@10"] > 3 * rnd["ndcg@10"]
    assert elapsed < 60  # vectorised: seconds, even on a busy shared CPU


def test_smaller_case_subsamples_are_subsets_of_larger_ones():
    """Rows measured on N and M > N cases of one seed compare the same users (nested subsamples)."""
    split = leave_one_out_split(make_log(n_users=50))
    users = {n: [c["user"] for c in RankingEvaluator(split, EvalConfig(max_cases=n, show_progress=False)).cases()]
             for n in (5, 20, 40)}
    assert set(users[5]) <= set(users[20]) <= set(users[40])
    assert len(users[40]) == 40
