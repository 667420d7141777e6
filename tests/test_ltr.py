"""The learned hybrid ranker: fitted on known events only, label-blind features, saved and reloaded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.data.schema import ITEM, USER
from llmrec.data.splits import Split, leave_one_out_split
from llmrec.eval import EvalConfig, RankingEvaluator, paired_difference
from llmrec.ltr import LTRConfig
from llmrec.ltr.data import fitting_lists, holdout_last_split
from llmrec.ltr.model import list_features
from llmrec.ltr.scorer import train_ltr
from llmrec.registry import BuildContext, build_scorer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FEATURES = ["popularity", "itemcf", "bm25"]


@pytest.fixture(scope="module")
def split(require_data) -> Split:
    from llmrec.data import load_dataset

    return leave_one_out_split(load_dataset("ml-100k", require_data("ml-100k").parent))


def config(tmp_path, **kw) -> LTRConfig:
    return LTRConfig(**{"features": FEATURES, "fit_users": 120, "output_dir": str(tmp_path / "ltr"), **kw})


def events(df) -> set[tuple[str, str]]:
    return set(zip(df[USER].astype(str), df[ITEM].astype(str)))


def test_fitting_targets_are_each_users_last_known_event_never_an_evaluated_one(split):
    inner = holdout_last_split(split, "test")
    known = split.known("test")
    assert events(inner.test) <= events(known)
    assert not events(inner.test) & events(split.test) and not events(inner.train) & events(split.test)
    last = known.sort_values([USER, "event_seq"]).groupby(USER).tail(1)
    assert events(inner.test) == events(last)  # every ML-100K user has >= 2 known events
    assert len(inner.train) + len(inner.test) == len(known)


def test_fitting_lists_hold_one_target_and_sampled_negatives_outside_the_history(split):
    inner = holdout_last_split(split, "test")
    lists = fitting_lists(inner, 50, 19, seed=3)
    assert len(lists) == 50 and lists.labels.shape == (50, 20)
    assert (lists.labels.sum(axis=1) == 1).all()
    targets = dict(zip(inner.test[USER].astype(str), inner.test[ITEM].astype(str)))
    for user, history, cands, labels in zip(lists.users, lists.histories, lists.candidates, lists.labels,
                                            strict=True):
        assert cands[int(np.argmax(labels))] == targets[user]
        assert not set(cands) & set(history)


def test_no_evaluated_label_reaches_the_fit(split, tmp_path):
    """Swapping every test target for another item changes nothing the ranking model learns from."""
    context = BuildContext(split, part="test", show_progress=False)
    first = train_ltr(context, config(tmp_path / "a"))
    rng = np.random.default_rng(0)
    moved = split.test.copy()
    moved[ITEM] = rng.permutation(split.dataset.items.index.astype(str).to_numpy())[: len(moved)]
    other = Split(split.name, split.dataset, split.train, split.valid, moved, split.group_targets)
    second = train_ltr(BuildContext(other, part="test", show_progress=False), config(tmp_path / "b"))
    assert first.fit_data is not None and second.fit_data is not None
    np.testing.assert_array_equal(first.fit_data.features, second.fit_data.features)
    np.testing.assert_array_equal(first.fit_data.labels, second.fit_data.labels)
    assert (tmp_path / "a/ltr/ltr_model.txt").read_text() == (tmp_path / "b/ltr/ltr_model.txt").read_text()


def test_scores_follow_the_candidates_not_their_positions(split, tmp_path):
    scorer = train_ltr(BuildContext(split, show_progress=False), config(tmp_path))
    cases = RankingEvaluator(split, EvalConfig(mode="sampled", num_negatives=19, max_cases=4,
                                               show_progress=False)).cases()
    histories = [c["scorer_history"] for c in cases]
    lists = [c["candidates"] for c in cases]
    base = scorer.score(histories, lists)
    perm = np.random.default_rng(1).permutation(20)
    shuffled = scorer.score(histories, [[c[j] for j in perm] for c in lists])
    np.testing.assert_allclose(shuffled, base[:, perm])


def test_the_hybrid_beats_each_of_its_parts_and_reports_their_importance(split, tmp_path):
    context = BuildContext(split, show_progress=False)
    hybrid = train_ltr(context, config(tmp_path, fit_users=300))
    evaluator = RankingEvaluator(split, EvalConfig(mode="sampled", num_negatives=19, max_cases=300, seed=5,
                                                   show_progress=False, per_case=True))
    results = {s.name: evaluator(s) for s in [*hybrid.scorers, hybrid]}
    best_part = max(results[n]["ndcg@10"] for n in FEATURES)
    assert results["ltr"]["ndcg@10"] > best_part
    importances = hybrid.diagnostics()["importances"]
    assert set(importances) == {*FEATURES, "history_len"} and abs(sum(importances.values()) - 1) < 1e-3
    assert len(results["ltr"]["per_case"]["ndcg@10"]) == 300
    assert np.mean(results["ltr"]["per_case"]["ndcg@10"]) == pytest.approx(results["ltr"]["ndcg@10"])
    ablated = hybrid.without(["itemcf"], config(tmp_path, fit_users=300))
    assert [n.split(":")[0] for n in ablated.ranker.names if ":" in n] == ["popularity"] * 3 + ["bm25"] * 3
    gap = paired_difference(results["ltr"]["per_case"]["ndcg@10"], evaluator(ablated)["per_case"]["ndcg@10"])
    assert gap["low"] <= gap["mean"] <= gap["high"] and gap["mean"] > 0  # item-CF carries this data set


def test_a_saved_hybrid_reloads_to_the_same_scores(split, tmp_path):
    context = BuildContext(split, show_progress=False)
    trained = train_ltr(context, config(tmp_path, model="logistic"))
    loaded = build_scorer("ltr", BuildContext(split, show_progress=False, load={"ltr": str(tmp_path / "ltr")}))
    cases = RankingEvaluator(split, EvalConfig(mode="sampled", num_negatives=19, max_cases=5,
                                               show_progress=False)).cases()
    h, c = [x["scorer_history"] for x in cases], [x["candidates"] for x in cases]
    np.testing.assert_allclose(loaded.score(h, c), trained.score(h, c))
    saved = json.loads((tmp_path / "ltr/ltr_report.json").read_text())
    assert saved["fit_users"] == 120 and set(saved["importances"]) == {*FEATURES, "history_len"}


def test_list_features_are_within_list_z_scores_and_ranks():
    scores = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]])
    f = list_features(scores)
    np.testing.assert_allclose(f[0, :, 2], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(f[1, :, 1], 0.0)  # a flat list has no spread: z is 0, not NaN
    assert f[0, 1, 1] > f[0, 2, 1] > f[0, 0, 1]


def test_paired_difference_brackets_the_mean_and_collapses_when_constant():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    gap = paired_difference(a + 0.1 + rng.normal(0, 0.01, 200), a)
    assert 0.09 < gap["low"] < gap["mean"] < gap["high"] < 0.11
    assert paired_difference(a + 0.5, a)["low"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="equal-length"):
        paired_difference([1.0], [0.0])


@pytest.mark.parametrize("bad, match", [({"model": "svm"}, "model must be one of"),
                                        ({"features": []}, "names no scorer"),
                                        ({"features": ["itemcf", "itemcf"]}, "twice"),
                                        ({"features": ["ltr"]}, "itself"),
                                        ({"fit_users": 3}, "fit_users")])
def test_bad_settings_say_what_is_wrong(bad, match):
    with pytest.raises(ValueError, match=match):
        LTRConfig(**bad)


def test_a_stale_feature_model_folder_is_refused(split, tmp_path):
    folder = tmp_path / "ltr/fit/sasrec"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "ltr_stage.json").write_text(json.dumps({"dataset": "other", "split": "x", "part": "test",
                                                       "known_events": 1}))
    with pytest.raises(ValueError, match="remove it or choose another"):
        train_ltr(BuildContext(split, show_progress=False), config(tmp_path, features=["popularity", "sasrec"]))


def test_the_cli_trains_compares_and_ablates(require_data, tmp_path):
    from llmrec.cli import main

    out = tmp_path / "run"
    code = main(["ltr", "--dataset", "ml-100k", "--data-dir", str(require_data("ml-100k").parent),
                 "--split", "leave_one_out", "--mode", "sampled", "--num-negatives", "19", "--max-cases", "40",
                 "--features", "popularity", "itemcf", "--fit-users", "60", "--output-dir", str(out),
                 "--compare", "--ablate", "itemcf", "--no-show-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    names = set(metrics["results"]) if "results" in metrics else set(metrics)
    assert {"popularity", "itemcf", "ltr", "ltr without itemcf"} <= names


def test_full_ranking_reranks_the_first_stage_top_and_keeps_its_order_below(split, tmp_path):
    context = BuildContext(split, show_progress=False)
    hybrid = train_ltr(context, config(tmp_path, fit_users=400, first_stage="itemcf", rerank_top=20))
    assert hybrid.report["fit_users"] <= 400 and hybrid.fit_data is not None
    assert hybrid.fit_data.labels.shape[1] == 20 and (hybrid.fit_data.labels.sum(axis=1) == 1).all()
    evaluator = RankingEvaluator(split, EvalConfig(mode="full", max_cases=30, show_progress=False))
    case = evaluator.cases()[0]
    catalog = evaluator.catalog
    scores = hybrid.score([case["scorer_history"]], catalog)[0]
    first = hybrid.first_stage.score([case["scorer_history"]], catalog)[0]
    seen = {catalog.index(i) for i in case["history"]}
    top = [j for j in np.argsort(-first, kind="stable") if j not in seen][:20]
    rest = np.setdiff1d(np.arange(len(catalog)), top)
    assert scores[top].min() > scores[rest].max()  # the reranked top sits above everything else
    np.testing.assert_allclose(np.argsort(-scores[rest], kind="stable"), np.argsort(-first[rest], kind="stable"))
    result = evaluator(hybrid)
    assert result["mode"] == "full" and 0 < result["ndcg@10"] <= 1


def test_users_a_loaded_feature_model_trained_on_are_left_out_of_the_fitting_lists(split):
    inner = holdout_last_split(split, "test")
    plain = fitting_lists(inner, 60, 19, seed=3)
    trained_on = set(plain.users[::3])
    kept = fitting_lists(inner, 60, 19, seed=3, exclude_users=trained_on)
    assert len(kept) == 60 and not trained_on & set(kept.users)
    assert set(plain.users) - trained_on <= set(kept.users)  # only the excluded lists were replaced


def test_fit_load_needs_the_list_of_users_the_model_trained_on(split, tmp_path):
    from llmrec.ltr.scorer import loaded_for_fitting

    folder = tmp_path / "model"
    folder.mkdir()
    context = BuildContext(split, load={"itemcf": str(folder)})
    cfg = config(tmp_path, fit_load=["itemcf"])
    with pytest.raises(ValueError, match="train_users.json"):
        loaded_for_fitting(context, cfg)
    (folder / "train_users.json").write_text(json.dumps(["1", "2"]))
    assert loaded_for_fitting(context, cfg) == ({"itemcf": str(folder)}, {"1", "2"})
    with pytest.raises(ValueError, match="not among the features"):
        loaded_for_fitting(context, config(tmp_path, fit_load=["sasrec"]))
