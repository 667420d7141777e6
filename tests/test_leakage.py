"""One regression test per evaluation-honesty defect of issue 9 (each failed on the code before it).

Every test builds a realistically shaped log (skewed popularity, users over time, repeat
consumption, new items late) or reads real data when it is present.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest

from llmrec.candidates import CandidateLists
from llmrec.data.schema import ITEM, RATING, TIME, USER, Dataset, is_liked, subsample_users
from llmrec.data.splits import leave_one_out_split, make_split, predefined_split, temporal_loo_split, temporal_split
from llmrec.eval import EvalConfig, PointwiseEvaluator, RankingEvaluator
from llmrec.eval.report import results_table
from llmrec.popularity import PopularityScorer


def make_log(seed: int = 0, n_users: int = 60, n_items: int = 90, repeat_share: float = 0.3) -> Dataset:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.9
    weights /= weights.sum()
    rows = []
    for u in range(n_users):
        k = int(rng.integers(5, 16))
        start = int(rng.integers(0, 80_000))  # users are active in windows of their own, as in real logs
        times = np.sort(start + rng.integers(0, 20_000, k))
        items = rng.choice(n_items, size=k, replace=False, p=weights)
        rows += [(f"u{u}", str(i), int(t), int(rng.integers(1, 6))) for i, t in zip(items, times)]
        if rng.random() < repeat_share:  # re-consume the first item at the very end
            rows.append((f"u{u}", str(items[0]), 100_001 + u, 5))
    inter = pd.DataFrame(rows, columns=[USER, ITEM, TIME, RATING])
    catalog = pd.DataFrame({ITEM: [str(i) for i in range(n_items + 5)],
                            "title": [f"item {i}" for i in range(n_items + 5)]})
    return Dataset("synthetic", inter, catalog)


class Spy:
    """A scorer that records what it is shown and scores by a fixed function."""

    def __init__(self, name="spy", fn=None):
        self.name = name
        self.fn = fn or (lambda hist, cands: np.zeros(len(cands)))
        self.histories: list[list[str]] = []
        self.candidates: list[list[str]] = []

    def score(self, histories, candidates):
        rows = [candidates] * len(histories) if candidates and isinstance(candidates[0], str) else candidates
        self.histories += [list(h) for h in histories]
        self.candidates += [list(c) for c in rows]
        return np.array([self.fn(list(h), list(c)) for h, c in zip(histories, rows)], dtype=float)


# --- defect 2: sampled candidates must not be seeded from the target ---------------------------

def _old_case_seed(seed: int, user: str, targets) -> int:
    """The seed main used before this fix: it mixed in the target."""
    key = "\x1f".join([str(seed), str(user), *map(str, targets)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def test_a_scorer_that_regenerates_sampled_lists_cannot_find_the_target():
    """The exploit of issue 9: for each candidate, assume it is the target, regenerate the list the
    way the sampler seeds it, and pick the candidate that reproduces the list. With target-seeded
    sampling this scorer had HR@1 = 1.0; now the seed ignores the target and it is at chance."""
    split = leave_one_out_split(make_log())
    catalog = pd.Index([str(i) for i in split.dataset.items.index])
    n_items, n_neg, seed = len(catalog), 9, 42
    users_by_history = {tuple(h): u for u, h in zip(*[split.eval_set("test").users, split.eval_set("test").histories])}

    def reproduce(hist, cands):
        user = users_by_history[tuple(hist)]
        hist_idx = catalog.get_indexer(hist)
        got = set(cands)
        out = []
        for c in cands:
            t = catalog.get_loc(c)
            rng = np.random.default_rng(_old_case_seed(seed, user, [c]))
            excluded = np.union1d([t], hist_idx)
            draw = rng.choice(n_items, size=min(n_items, n_neg + len(excluded)), replace=False)
            negatives = draw[~np.isin(draw, excluded)][:n_neg]
            out.append(float(set(catalog[negatives]) | {c} == got))
        return np.array(out)

    cheat = Spy("regenerate", reproduce)
    result = RankingEvaluator(split, EvalConfig(mode="sampled", num_negatives=n_neg, seed=seed,
                                                show_progress=False))(cheat)
    assert result["mode"] == "sampled-9"
    assert result["hr@1"] < 0.35  # chance is 0.1; the old sampler gave exactly 1.0


def _split_with_last_items(target: str):
    """Leave-one-out where every user's last event is ``target`` (a catalogue item nobody else has)."""
    log = make_log(seed=3, repeat_share=0.0)
    inter = log.interactions.copy()
    inter.loc[inter.groupby(USER)[TIME].idxmax(), ITEM] = target
    return leave_one_out_split(Dataset("synthetic", inter, log.items.reset_index()))


def test_negatives_and_their_order_do_not_depend_on_the_target():
    """Same users, same histories, different targets: each case's negatives are the same items in
    the same order, except where a target is itself among the other list's negatives."""
    lists = {}
    for target in ("91", "92"):
        ev = RankingEvaluator(_split_with_last_items(target), EvalConfig(mode="sampled", num_negatives=8,
                                                                         show_progress=False))
        lists[target] = {c["user"]: [i for i in c["candidates"] if i != target] for c in ev.cases()
                         if c["targets"] == [target]}
    compared = 0
    for user, negatives in lists["91"].items():
        other = lists["92"][user]
        if "92" in negatives or "91" in other:
            continue  # a collision: the target took a negative's place
        assert negatives == other
        compared += 1
    assert compared >= 40


# --- defect 3: max_history truncates what the scorer sees, never what is excluded ---------------

def test_max_history_never_brings_history_items_back_as_candidates():
    split = temporal_split(make_log(repeat_share=0.5), test_ratio=0.3)
    full = RankingEvaluator(split, EvalConfig(show_progress=False))
    short = RankingEvaluator(split, EvalConfig(max_history=1, show_progress=False))
    assert full.counts["targets_removed_in_history"] == short.counts["targets_removed_in_history"] > 0
    assert full.counts["candidates_per_case"] == short.counts["candidates_per_case"]
    # A scorer that puts every history item first: with history excluded it cannot gain from that.
    cheat = Spy("history-first", lambda hist, cands: np.array([1.0 if c in set(hist) else 0.0 for c in cands]))
    spy = Spy()
    short(spy)
    assert all(len(h) <= 1 for h in spy.histories)
    for case in short.cases():
        assert not set(case["targets"]) & set(case["history"])  # repeat targets removed via the whole history
    assert short(cheat)["ndcg@10"] == full(PopularityScorer(split.train.iloc[0:0].assign()))["ndcg@10"] == 0.0


def test_sampled_negatives_avoid_the_whole_history_with_max_history():
    split = leave_one_out_split(make_log())
    ev = RankingEvaluator(split, EvalConfig(mode="sampled", num_negatives=20, max_history=2, show_progress=False))
    for case in ev.cases():
        assert not set(case["candidates"]) & set(case["history"])
        assert case["scorer_history"] == case["history"][-2:]


# --- defect 4: a target that was not recalled is a miss, in the ideal DCG too --------------------

def test_multichannel_ndcg_counts_targets_that_were_not_recalled():
    """Targets {a, b}; only a is among the candidates and it ranks first: NDCG@10 = 1 / IDCG(2) = 0.613."""
    inter = pd.DataFrame({USER: ["u"] * 4 + ["v"] * 4, ITEM: ["h1", "h2", "a", "b", "a", "h1", "x", "y"],
                          TIME: [1, 2, 10, 11, 1, 2, 3, 4]})
    items = pd.DataFrame({ITEM: ["h1", "h2", "a", "b", "x", "y", "c", "d"]})
    split = temporal_split(Dataset("toy", inter, items), test_ratio=0.25)
    catalog = [str(i) for i in split.dataset.items.index]
    case_users = [c["user"] for c in RankingEvaluator(split, EvalConfig(show_progress=False)).cases()]
    assert case_users == ["u"]
    lists = CandidateLists("recalled", "recalled-3", [np.array([catalog.index(i) for i in ("a", "c", "d")])])
    ev = RankingEvaluator(split, EvalConfig(mode="recalled", show_progress=False), candidates=lists)
    result = ev(Spy("a-first", lambda h, c: np.array([1.0 if i == "a" else 0.0 for i in c])))
    assert result["ndcg@10"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert result["recall@10"] == pytest.approx(0.5)
    assert result["slices"]["all"]["targets"] == 2 and result["slices"]["all"]["targets_listed"] == 1


# --- defect 5: every result says how many users it covers out of the total ----------------------

def test_a_subsample_is_labelled_in_the_result_and_the_table():
    data = make_log(n_users=60)
    small = subsample_users(data, 20, seed=1)
    ev = RankingEvaluator(leave_one_out_split(small), EvalConfig(max_cases=7, show_progress=False))
    result = ev(PopularityScorer(ev.split.train))
    pop = result["population"]
    assert (pop["cases"], pop["users_in_dataset"], pop["users_in_source"]) == (7, 20, 60)
    assert pop["subsampled_dataset"] and pop["subsampled_cases"]
    title = results_table({"popularity": result}).splitlines()[0]
    assert "7 cases (seeded subsample)" in title and "20 of 60 users" in title


# --- defect 7: one meaning of "liked" -------------------------------------------------------------

def test_liked_means_strictly_above_the_threshold_in_the_pointwise_evaluator():
    split = leave_one_out_split(make_log())
    ev = PointwiseEvaluator.from_split(split, show_progress=False)
    first = split.test.drop_duplicates([USER, ITEM]).set_index([USER, ITEM])[RATING]
    want = [int(is_liked(first[(u, i)])) for u, i in zip(split.eval_set("test").users, ev.items)]
    assert ev.values.astype(int).tolist() == want
    assert is_liked(np.array([3.0, 3.5, 4.0])).tolist() == [False, True, True]  # a 3 of 5 is not a like


# --- defect 8: evaluating nothing is an error that says which part and why -----------------------

def test_an_empty_part_is_an_error_naming_the_part_and_why():
    amazon_like = make_log()
    seqs = [(u, g[ITEM].tolist()[:-1], g[ITEM].iloc[-1])
            for u, g in amazon_like.interactions.sort_values(TIME).groupby(USER)]
    amazon_like.eval_sequences = pd.DataFrame(seqs, columns=[USER, "history", "target"])
    split = predefined_split(amazon_like)
    with pytest.raises(ValueError, match="no valid events .*only test cases"):
        RankingEvaluator(split, EvalConfig(part="valid", show_progress=False))
    with pytest.raises(ValueError, match="no valid events"):
        PointwiseEvaluator.from_split(split, part="valid")
    with pytest.raises(ValueError, match="all .* cases .* were dropped"):
        RankingEvaluator(leave_one_out_split(make_log()), EvalConfig(min_history=1000, show_progress=False))


def test_the_cli_reports_an_empty_part_without_a_traceback(require_data, capsys):
    from llmrec.cli import main

    code = main(["evaluate", "--dataset", "amazon-scientific", "--data-dir", str(require_data()),
                 "--split", "predefined", "--part", "valid", "--scorers", "popularity", "--no-show-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "nothing to evaluate" in err and "valid" in err and "Traceback" not in err


# --- defect 9: protocols that train on the future say so; global-time leave-one-out does not -----

def test_leave_one_out_says_it_trains_on_the_future_and_temporal_loo_does_not():
    data = make_log()
    loo = leave_one_out_split(data).summary()
    assert loo["trains_on_future"] and loo["train_events_after_median_test"] > 0.2
    tloo = temporal_loo_split(data, test_ratio=0.2)
    summary = tloo.summary()
    assert not summary["trains_on_future"] and summary["train_events_after_median_test"] == 0.0
    assert tloo.train[TIME].max() < tloo.test[TIME].min()  # every training event is before every test event
    assert tloo.test[USER].is_unique  # one test target per user: the first event after the cut
    after = data.interactions[data.interactions[TIME] >= tloo.test[TIME].min()]
    first = after.sort_values([USER, TIME], kind="stable").groupby(USER).head(1)
    assert set(zip(tloo.test[USER], tloo.test[ITEM])) == set(zip(first[USER], first[ITEM]))


def test_temporal_loo_cases_see_every_event_before_the_cut():
    data = make_log()
    split = temporal_loo_split(data, test_ratio=0.2, valid_ratio=0.1)
    cut = split.test[TIME].min()
    es = split.eval_set("test", min_history=0)
    for user, hist in zip(es.users, es.histories):
        before = data.interactions[(data.interactions[USER] == user) & (data.interactions[TIME] < cut)]
        assert hist == before.sort_values(TIME, kind="stable")[ITEM].tolist()
    valid = split.eval_set("valid", min_history=0)
    assert len(valid) == split.valid[USER].nunique()  # the first validation event of each user


def test_real_ml100k_leave_one_out_trains_on_the_future(require_data):
    from llmrec.data.registry import load_dataset

    require_data("ml-100k", "u.data")
    data = load_dataset("ml-100k", require_data(), download=False)
    assert make_split(data, "leave_one_out").summary()["train_events_after_median_test"] > 0.3
    assert make_split(data, "temporal_loo").summary()["train_events_after_median_test"] == 0.0
