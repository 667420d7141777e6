"""The one path (``llmrec.run``): load -> subsample -> split -> candidates -> score -> evaluate -> write,
as the Python API, ``llmrec evaluate`` and the method shortcuts ``llmrec learn | sasrec`` use it."""

from __future__ import annotations

import json

import pytest

from llmrec.cli import main
from llmrec.run import RunConfig, load_split, run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_SASREC = {"max_steps": 3, "d_model": 16, "n_layers": 1, "batch_size": 32, "max_len": 20, "save_steps": 0,
               "progress": False, "logging_steps": 10**6}


@pytest.fixture(scope="module")
def ml100k(require_data) -> str:
    return str(require_data("ml-100k", "u.data").parent.parent)


def _config(data_dir: str, out_dir, **overrides) -> RunConfig:
    values = dict(dataset="ml-100k", data_dir=data_dir, split="auto", max_users=40, max_cases=25,
                  out_dir=str(out_dir), show_progress=False)
    return RunConfig(**{**values, **overrides})


def test_run_loads_subsamples_splits_evaluates_and_writes(ml100k, tmp_path):
    lines: list[str] = []
    outcome = run(_config(ml100k, tmp_path), ["popularity", "itemcf"], echo=lines.append)
    split = outcome.split
    assert split.name == "leave_one_out"  # ml-100k ships no evaluation sequences
    assert split.dataset.n_users == 40 and split.dataset.n_items == 1682  # whole catalogue kept
    result = outcome.results["popularity"]
    assert result["counts"]["cases"] == 25 and result["mode"] == "full" and result["split"] == "leave_one_out"
    assert result["population"]["users_in_dataset"] == 40 and result["population"]["users_in_source"] == 943
    assert result["population"]["subsampled_dataset"] and result["population"]["subsampled_cases"]
    # Both scorers were evaluated on the same cases by the same evaluator.
    assert outcome.results["itemcf"]["counts"] == result["counts"]
    assert outcome.evaluator.results == outcome.results
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert set(written) == {"popularity", "itemcf"}
    assert written["itemcf"]["ndcg@10"] == pytest.approx(outcome.results["itemcf"]["ndcg@10"])
    assert (tmp_path / "metrics.png").stat().st_size > 0
    settings = json.loads((tmp_path / "run.json").read_text())
    assert settings["dataset"] == "ml-100k" and settings["max_users"] == 40 and settings["max_cases"] == 25
    assert outcome.files == [tmp_path / "metrics.json", tmp_path / "metrics.png"]
    # What it printed: the data and split (with the subsample and the protocol's caveat), the table, the files.
    assert lines[0].startswith("ml-100k: 40 users (seeded subsample of 943), 1,682 items; leave_one_out split")
    assert "trains on the future" in lines[0]
    assert lines[1] == outcome.table and lines[2].startswith("wrote ") and str(tmp_path / "metrics.json") in lines[2]


def test_the_printed_table_has_one_row_per_scorer_and_slice(ml100k, tmp_path, capsys):
    outcome = run(_config(ml100k, tmp_path), ["popularity"], write=False)
    out = capsys.readouterr().out
    assert outcome.table in out and outcome.files == [] and not (tmp_path / "metrics.json").exists()
    title, header, rule, *rows = outcome.table.splitlines()
    assert "ml-100k" in title and "leave_one_out split" in title and "mode full" in title
    assert "25 cases (seeded subsample), 25 of 40 users; the data set is a seeded 40 of 943 users" in title
    assert header.split() == ["scorer", "slice", "mode", "cases", "targets", "ndcg@10", "recall@10"]
    assert set(rule) <= {"-", " "}
    assert [r.split()[:3] for r in rows][0] == ["popularity", "all", "full"]
    assert {r.split()[1] for r in rows} == {"all", "warm", "long_tail", "cold"}
    everything = rows[0].split()
    assert everything[3] == "25" and float(everything[5]) == pytest.approx(outcome.results["popularity"]["ndcg@10"],
                                                                          abs=5e-5)


def test_an_empty_user_subsample_is_rejected(ml100k):
    with pytest.raises(ValueError, match="max_users must be at least 1"):
        RunConfig(dataset="ml-100k", data_dir=ml100k, max_users=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        RunConfig(mode="everything")


def test_load_split_is_the_runs_split(ml100k):
    split = load_split(_config(ml100k, "unused", split="temporal", max_users=60))
    assert split.name == "temporal" and split.dataset.n_users == 60
    assert split.dataset.population() == {"users": 60, "users_total": 943, "subsampled": True, "subsample_seed": 0}


def test_a_registered_trained_scorer_trains_then_loads_through_run(ml100k, tmp_path):
    config = _config(ml100k, tmp_path / "eval")
    model_dir = tmp_path / "sasrec"
    trained = run(config, ["sasrec"], options={"sasrec": {**TINY_SASREC, "output_dir": str(model_dir)}},
                  echo=lambda _: None)
    result = trained.results["sasrec"]
    assert result["mode"] == "full" and result["counts"]["cases"] == 25 and 0.0 <= result["ndcg@10"] <= 1.0
    assert (model_dir / "model.safetensors").is_file()
    # The saved model, loaded instead of trained, ranks exactly as it did.
    loaded = run(config, ["sasrec"], load={"sasrec": str(model_dir)}, echo=lambda _: None, write=False)
    for key in ("ndcg@10", "recall@10", "mrr@20"):
        assert loaded.results["sasrec"][key] == pytest.approx(result[key])


# --- the commands ---------------------------------------------------------------------------------

def test_evaluate_command_compares_scorers_with_options(ml100k, tmp_path, capsys):
    argv = ["evaluate", "--dataset", "ml-100k", "--data-dir", ml100k, "--max-users", "100", "--max-cases", "60",
            "--no-show-progress"]
    assert main([*argv, "--scorers", "popularity", "itemcf", "--set", "itemcf.recency_decay=none",
                 "--out-dir", str(tmp_path / "flat")]) == 0
    out = capsys.readouterr().out
    assert "ml-100k: 100 users (seeded subsample of 943)" in out
    assert any(line.split()[:3] == ["itemcf", "all", "full"] for line in out.splitlines())
    flat = json.loads((tmp_path / "flat" / "metrics.json").read_text())
    assert list(flat) == ["popularity", "itemcf"] and flat["itemcf"]["counts"]["cases"] == 60
    # --set reached the scorer: the same run through the API with the same option agrees, the default differs.
    config = _config(ml100k, tmp_path, max_users=100, max_cases=60)
    api = run(config, ["itemcf"], options={"itemcf": {"recency_decay": None}}, echo=lambda _: None, write=False)
    default = run(config, ["itemcf"], echo=lambda _: None, write=False)
    assert flat["itemcf"]["ndcg@10"] == pytest.approx(api.results["itemcf"]["ndcg@10"])
    assert flat["itemcf"]["mrr@20"] != pytest.approx(default.results["itemcf"]["mrr@20"])


def test_evaluate_command_loads_a_saved_model(ml100k, tmp_path, capsys):
    model_dir = tmp_path / "sasrec"
    run(_config(ml100k, tmp_path / "train"), ["sasrec"],
        options={"sasrec": {**TINY_SASREC, "output_dir": str(model_dir)}}, echo=lambda _: None)
    trained = json.loads((tmp_path / "train" / "metrics.json").read_text())["sasrec"]
    assert main(["evaluate", "--dataset", "ml-100k", "--data-dir", ml100k, "--max-users", "40", "--max-cases", "25",
                 "--scorers", "sasrec", "--load", f"sasrec={model_dir}", "--out-dir", str(tmp_path / "o"),
                 "--no-show-progress"]) == 0
    loaded = json.loads((tmp_path / "o" / "metrics.json").read_text())["sasrec"]
    assert loaded["ndcg@10"] == pytest.approx(trained["ndcg@10"])


@pytest.mark.parametrize(("flags", "message"), [
    (["--set", "itemcf.recency_decay"], "--set 'itemcf.recency_decay': expected SCORER.OPTION=VALUE"),
    (["--set", "recency_decay=3"], "--set 'recency_decay=3': expected SCORER.OPTION=VALUE"),
    (["--set", "itemcf.decay=3"], "has no option 'decay'"),
    (["--set", "itemcf.recency_decay=soon"], "option 'recency_decay' takes a float, got 'soon'"),
    (["--set", "popularity.x=1"], "scorer 'popularity' takes no options"),
    (["--set", "bm25.query_items=3"], "--set names scorers that are not evaluated: ['bm25']"),
    (["--load", "sasrec"], "--load 'sasrec': expected SCORER=FOLDER"),
])
def test_bad_evaluate_options_are_one_line_errors(ml100k, tmp_path, capsys, flags, message):
    code = main(["evaluate", "--dataset", "ml-100k", "--data-dir", ml100k, "--scorers", "popularity", "itemcf",
                 "--out-dir", str(tmp_path), *flags])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("llmrec evaluate: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing was evaluated or written


def test_sasrec_command_trains_evaluates_and_writes_beside_the_model(ml100k, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["sasrec", "--dataset", "ml-100k", "--data-dir", ml100k, "--max-users", "40", "--max-cases", "20",
                 "--max-steps", "3", "--d-model", "16", "--n-layers", "1", "--batch-size", "32",
                 "--output-dir", str(run_dir), "--no-progress", "--no-show-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("all", "warm", "long_tail", "cold"):
        assert any(line.split()[:2] == ["sasrec", row] for line in out.splitlines())
    (result,) = json.loads((run_dir / "metrics.json").read_text()).values()
    assert result["mode"] == "full" and result["counts"]["cases"] == 20 and result["counts"]["catalog_items"] == 1682
    assert (run_dir / "model.safetensors").is_file() and (run_dir / "metrics.png").is_file()
    # --load evaluates the saved model (metrics again beside it, or in --out-dir).
    assert main(["sasrec", "--dataset", "ml-100k", "--data-dir", ml100k, "--max-users", "40", "--max-cases", "20",
                 "--load", str(run_dir), "--out-dir", str(tmp_path / "again"), "--no-show-progress"]) == 0
    (again,) = json.loads((tmp_path / "again" / "metrics.json").read_text()).values()
    assert again["ndcg@10"] == pytest.approx(result["ndcg@10"])


def test_learn_command_trains_evaluates_and_writes(ml100k, tiny_sentence_model, tmp_path, capsys):
    run_dir = tmp_path / "run"
    text_model = tiny_sentence_model.parent / "bert"  # a local transformers folder (tiny random BERT)
    assert main(["learn", "--dataset", "ml-100k", "--data-dir", ml100k, "--max-users", "40", "--max-cases", "20",
                 "--text-model", str(text_model), "--cache-dir", str(tmp_path / "ceg"), "--item-tower", "projection",
                 "--max-steps", "3", "--d-model", "32", "--batch-size", "32", "--max-text-tokens", "16",
                 "--output-dir", str(run_dir), "--out-dir", str(tmp_path / "metrics"), "--no-progress",
                 "--no-show-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:3] == ["learn-projection", "all", "full"] for line in out.splitlines())
    (result,) = json.loads((tmp_path / "metrics" / "metrics.json").read_text()).values()
    assert result["scorer"] == "learn-projection" and result["counts"]["cases"] == 20
    assert 0.0 <= result["ndcg@10"] <= 1.0
    assert (run_dir / "model.safetensors").is_file()
    assert json.loads((tmp_path / "metrics" / "run.json").read_text())["max_users"] == 40
