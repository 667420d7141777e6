"""The shared data -> split -> evaluate path of the training launchers and `llmrec learn | sasrec`."""

from __future__ import annotations

import json

import pytest

from llmrec.popularity import PopularityScorer
from llmrec.training import RunArguments


def test_run_arguments_load_subsample_split_and_write_metrics(require_data, tmp_path, capsys):
    require_data("ml-100k", "u.data")
    run = RunArguments(dataset="ml-100k", data_dir=str(require_data()), split="auto", max_users=40, max_cases=25)
    split = run.load_split()
    assert split.name == "leave_one_out"  # ml-100k ships no evaluation sequences
    assert split.dataset.n_users == 40 and split.dataset.n_items == 1682  # whole catalogue kept
    scorer = PopularityScorer(split.known("test"))
    result = run.evaluate_and_write(split, scorer, str(tmp_path))
    assert result["counts"]["cases"] == 25 and result["mode"] == "full"
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written[scorer.name]["ndcg@10"] == pytest.approx(result["ndcg@10"])
    assert (tmp_path / "metrics.png").exists()
    assert "popularity" in capsys.readouterr().out


def test_run_arguments_reject_an_empty_subsample(require_data):
    require_data("ml-100k", "u.data")
    with pytest.raises(ValueError, match="max_users must be at least 1"):
        RunArguments(dataset="ml-100k", data_dir=str(require_data()), max_users=0).load_split()
