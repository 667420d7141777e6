"""The cold-aware hybrid: a content bridge for cold items, weights fitted on validation only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data.schema import ITEM, RATING, TIME, USER, Dataset
from llmrec.data.splits import temporal_split
from llmrec.eval import EvalConfig, RankingEvaluator
from llmrec.hybrid import HybridConfig, PopularityBridge
from llmrec.registry import BuildContext, build_scorer

DAY = 86_400
START = 880_000_000  # 1997-11: the catalogue's release dates are around it


def drifting_catalogue(seed: int = 0) -> Dataset:
    """Films released over time; each is watched mostly in its first weeks after release, by users
    who like its genre. New releases keep arriving after the training cut, so they are cold."""
    rng = np.random.default_rng(seed)
    n_items, n_users, genres = 120, 80, ["Action", "Comedy", "Drama"]
    release = START + rng.integers(-200, 120, n_items) * DAY
    item_genre = rng.integers(0, 3, n_items)
    user_genre = rng.integers(0, 3, n_users)
    rows = []
    for u in range(n_users):
        for _ in range(25):
            t = START + int(rng.integers(0, 120)) * DAY
            fresh = np.flatnonzero((release <= t) & (release > t - 40 * DAY))
            pool = fresh[item_genre[fresh] == user_genre[u]] if rng.random() < 0.7 else fresh
            if len(pool):
                rows.append((f"u{u}", str(int(rng.choice(pool))), t + int(rng.integers(0, DAY)), 4.0))
    inter = pd.DataFrame(rows, columns=[USER, ITEM, TIME, RATING]).drop_duplicates([USER, ITEM])
    dates = pd.to_datetime(release, unit="s").strftime("%d-%b-%Y")
    items = pd.DataFrame({ITEM: [str(i) for i in range(n_items)], "title": [f"film {i}" for i in range(n_items)],
                          "genres": [genres[g] for g in item_genre], "release_date": dates})
    return Dataset("drift", inter, items)


@pytest.fixture(scope="module")
def split():
    return temporal_split(drifting_catalogue(), test_ratio=0.3)


def test_the_bridge_predicts_new_items_from_their_content(split):
    config = HybridConfig()
    bridge = PopularityBridge(split.train, split.dataset.items, config, 86_400.0)
    assert bridge.bridge_items > 10
    cold = split.cold_items()
    cold_pos = bridge.catalog.get_indexer(sorted(cold))
    assert (bridge.values[cold_pos] > 0).any()  # cold items get a predicted count, not a flat 0
    # The bridge learnt the drift: fresh releases are predicted above titles released long ago.
    release = pd.to_datetime(split.dataset.items["release_date"], format="mixed")
    cut = pd.to_datetime(split.train[TIME].max(), unit="s")
    age = (cut - release.reindex(bridge.catalog)).dt.days.to_numpy()
    fresh, stale = bridge.predicted[(age > -20) & (age < 30)], bridge.predicted[age > 150]
    assert len(fresh) and len(stale) and fresh.mean() > stale.mean() + 0.5


def test_the_hybrid_ranks_cold_items_that_id_scorers_cannot(split):
    evaluator = RankingEvaluator(split, EvalConfig(show_progress=False))
    context = BuildContext(split, part="test")
    hybrid = build_scorer("hybrid", context, text="")
    itemcf = evaluator(build_scorer("itemcf", context))
    result = evaluator(hybrid)
    assert evaluator.counts["targets"] > 0 and result["slices"]["cold"]["cases"] > 0
    assert itemcf["slices"]["cold"]["ndcg@10"] == 0.0
    assert result["slices"]["cold"]["ndcg@10"] > 0.05
    diag = result["diagnostics"]
    assert set(diag["weights"]) == {"popularity", "cf", "text", "cold"} and diag["valid_cases"] > 0


def test_weights_are_fitted_without_any_test_event(split):
    """Change every test event: the fitted weights and the validation numbers do not move."""
    context = BuildContext(split, part="test")
    first = build_scorer("hybrid", context, text="")
    other_test = split.test.copy()
    other_test[ITEM] = other_test[ITEM].sample(frac=1.0, random_state=1).to_numpy()
    shuffled = type(split)(split.name, split.dataset, split.train, split.valid, other_test, split.group_targets)
    second = build_scorer("hybrid", BuildContext(shuffled, part="test"), text="")
    np.testing.assert_array_equal(first.weights, second.weights)
    assert first.fit_report == second.fit_report


def test_fixed_weights_are_the_documented_blend(split):
    context = BuildContext(split, part="test")
    hybrid = build_scorer("hybrid", context, text="", weights=[1.0, 0.5, 0.0, 2.0])
    histories = [h for h in split.eval_set("test").histories[:4]]
    catalog = [str(i) for i in split.dataset.items.index]
    parts = hybrid.components(histories, catalog)
    np.testing.assert_allclose(hybrid.score(histories, catalog), parts[0] + 0.5 * parts[1] + 2.0 * parts[3])
    assert set(np.unique(parts[3])) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="4 numbers"):
        HybridConfig(weights=[1.0, 2.0])


def test_the_constrained_objective_spends_only_the_slack_on_cold_items():
    from llmrec.hybrid.model import _pick

    results = [(0.30, 0.00, "best all"), (0.29, 0.10, "within 5%"), (0.20, 0.50, "too costly"), (0.285, 0.10, "tie")]
    assert _pick(results, "constrained", 0.05)[2] == "within 5%"  # ties on cold go to the better all
    assert _pick(results, "all", 0.05)[2] == "best all"
    assert _pick(results, "all+cold", 0.05)[2] == "too costly"
    no_cold = [(a, None, w) for a, _, w in results]
    assert _pick(no_cold, "constrained", 0.05)[2] == "best all"  # nothing to trade for
    with pytest.raises(ValueError, match="all_slack"):
        HybridConfig(all_slack=1.0)


def test_simulated_events_reach_the_cf_scorer_but_not_the_evaluation(split, tmp_path):
    """An oracle-like simulation (six genre fans of each film that the test period brings): item-CF
    retrained with it ranks cold films; the evaluator's cases and cold-start slice stay the real split's."""
    from llmrec.coldstart.evaluate import ColdStartEvalConfig, coldstart_scorers
    from llmrec.coldstart.files import write_simulated

    items = split.dataset.items
    known = split.known("test")
    genre_of = items["genres"].to_dict()
    favourite = known.assign(g=known[ITEM].map(genre_of)).groupby(USER)["g"].agg(lambda g: g.mode()[0])
    last = int(known[TIME].max())
    rng = np.random.default_rng(0)
    rows = [(u, i, last + 1, 5.0, True, 0.9, 1) for i in sorted(split.cold_items("test"))
            for u in rng.permutation(favourite[favourite == genre_of[i]].index)[:6]]
    events = pd.DataFrame(rows, columns=[USER, ITEM, TIME, RATING, "simulated", "p_yes", "prefilter_rank"])
    path = write_simulated(tmp_path / "simulated.csv", events)
    context = BuildContext(split, part="test", options={"hybrid": {"text": ""}}, show_progress=False)
    config = ColdStartEvalConfig(simulated_events=str(path), baselines=["popularity", "itemcf"], rank_average=False)
    scorers = {s.name: s for s in coldstart_scorers(context, config)}
    assert set(scorers) == {"popularity", "itemcf", "hybrid", "itemcf+simulated", "hybrid+simulated"}
    evaluator = RankingEvaluator(split, EvalConfig(show_progress=False))
    results = {name: evaluator(s) for name, s in scorers.items()}
    assert results["itemcf"]["slices"]["cold"]["ndcg@10"] == 0.0
    assert results["itemcf+simulated"]["slices"]["cold"]["ndcg@10"] > 0.05
    assert len({(r["counts"]["cases"], r["slices"]["cold"]["targets"]) for r in results.values()}) == 1
    np.testing.assert_array_equal(scorers["hybrid"].weights, scorers["hybrid+simulated"].weights)
    assert split.train.shape[0] == len(split.known("test"))  # the split itself is untouched


def test_newest_first_ranks_by_release_date_and_needs_the_column(split):
    from llmrec.errors import DataFormatError
    from llmrec.popularity import NewestFirstScorer

    items = split.dataset.items.copy()
    items.loc[items.index[0], "release_date"] = "not a date"
    scorer = NewestFirstScorer(items)
    catalog = [str(i) for i in items.index]
    scores = scorer.score([["1"]], catalog)[0]
    dates = pd.to_datetime(items["release_date"], errors="coerce", format="mixed").to_numpy()
    newest, oldest = int(np.nanargmax(dates[1:])) + 1, int(np.nanargmin(dates[1:])) + 1
    assert scores[newest] == scores.max() and scores[oldest] > scores[0]  # an unparseable date ranks last
    with pytest.raises(DataFormatError, match="release_date"):
        NewestFirstScorer(items.drop(columns="release_date"))
