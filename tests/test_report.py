"""Reports: the fixed-width table, metrics.json and metrics.png, written atomically."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from llmrec.data.schema import ITEM, TIME, USER, Dataset
from llmrec.data.splits import temporal_split
from llmrec.eval import EvalConfig, RankingEvaluator, results_table, write_results
from llmrec.scoring import per_user_candidates


def small_log(seed: int = 4) -> Dataset:
    """40 users, skewed popularity, items 50-54 only appear late (cold in a temporal split)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 51)
    p /= p.sum()
    rows = []
    for u in range(40):
        k = int(rng.integers(5, 12))
        times = np.sort(rng.integers(0, 10_000, k))
        items = rng.choice(50, size=k, replace=False, p=p).astype(str)
        for t, i in zip(times, items, strict=True):
            if t > 8_500 and rng.random() < 0.4:
                i = str(50 + int(rng.integers(0, 5)))
            rows.append((f"u{u}", i, int(t)))
    inter = pd.DataFrame(rows, columns=[USER, ITEM, TIME]).drop_duplicates([USER, ITEM])
    return Dataset("tiny-log", inter, pd.DataFrame({ITEM: [str(i) for i in range(55)]}))


class Counts:
    name = "counts"

    def __init__(self, split):
        self.counts = split.item_popularity("test").to_dict()

    def score(self, histories, candidates):
        cands = per_user_candidates(candidates, len(histories))
        return np.array([[float(self.counts.get(i, 0)) for i in c] for c in cands])


class Noise:
    name = "noise"

    def score(self, histories, candidates):
        cands = per_user_candidates(candidates, len(histories))
        return np.random.default_rng(0).random((len(histories), len(cands[0])))


@pytest.fixture(scope="module")
def results():
    split = temporal_split(small_log(), test_ratio=0.3)
    ev = RankingEvaluator(split, EvalConfig(show_progress=False))
    ev(Counts(split))
    ev(Noise())
    return ev.results


def test_table_has_a_row_per_scorer_and_slice_with_counts_and_mode(results):
    table = results_table(results, metrics=("ndcg@10", "recall@10", "auc"))
    lines = table.splitlines()
    assert "tiny-log" in lines[0] and "mode full" in lines[0]
    assert lines[1].split() == ["scorer", "slice", "mode", "cases", "targets", "ndcg@10", "recall@10", "auc"]
    body = lines[3:]
    assert len(body) == 2 * 4  # two scorers x four slices
    assert len({len(line) for line in lines[1:]}) == 1  # fixed width: every row lines up
    for scorer, result in results.items():
        for name, sl in result["slices"].items():
            row = next(r.split() for r in body if r.split()[:2] == [scorer, name])
            assert row[2] == "full" and row[3] == str(sl["cases"]) and row[4] == str(sl["targets"])
            assert row[5] == ("-" if sl["ndcg@10"] is None else f"{sl['ndcg@10']:.4f}")


def test_empty_slice_shows_a_dash_not_zero():
    fake = {"s": {"mode": "sampled-100", "dataset": "d", "slices": {
        "all": {"cases": 3, "targets": 3, "ndcg@10": 0.25, "recall@10": 0.5},
        "cold": {"cases": 0, "targets": 0, "ndcg@10": None, "recall@10": None}}}}
    table = results_table(fake, slices=("all", "cold"))
    cold = next(line for line in table.splitlines() if line.startswith("s ") and " cold " in line)
    assert cold.split()[-2:] == ["-", "-"]
    assert "sampled-100" in table.splitlines()[0]


def test_write_results_writes_json_and_png_atomically(results, tmp_path):
    json_path, png_path = write_results(results, tmp_path / "run", title="tiny log, temporal 70/30")
    assert (json_path.name, png_path.name) == ("metrics.json", "metrics.png")
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(results))
    image = imread(png_path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 300
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.json", "metrics.png"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(results, tmp_path):
    write_results(results, tmp_path)
    before = (tmp_path / "metrics.json").read_text()
    broken = {"x": {"mode": "full", "slices": {"all": {"ndcg@10": 0.1}}, "bad": object()}}
    with pytest.raises(TypeError):
        write_results(broken, tmp_path)
    assert (tmp_path / "metrics.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "metrics.png"]


def test_evaluator_writes_its_results_when_given_a_path(tmp_path):
    split = temporal_split(small_log(seed=9), test_ratio=0.3)
    ev = RankingEvaluator(split, EvalConfig(show_progress=False, mode="sampled", num_negatives=20))
    ev(Counts(split), output_path=tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["counts"]["mode"] == "sampled-20" and saved["counts"]["scorer"] == "counts"
    assert (tmp_path / "metrics.png").stat().st_size > 0
