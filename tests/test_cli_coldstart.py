"""``llmrec coldstart enrich | simulate | evaluate`` end to end on real MovieLens 100K, with a tiny
random LLM saved as a transformers folder (what a user passes as ``--model DIR``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmrec.coldstart.files import read_enriched, read_simulated
from llmrec.run import RunConfig, load_split


@pytest.fixture(scope="module")
def tiny_llm_folder(tmp_path_factory) -> Path:
    from llmrec.llm.testing import tiny_lm

    folder = tmp_path_factory.mktemp("tiny_llm")
    llm = tiny_lm(chat=True)
    llm.model.save_pretrained(folder)
    llm.tokenizer.save_pretrained(folder)
    return folder


def _cli(args: list[str], data_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, LLMREC_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", LLMREC_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "llmrec.cli", "coldstart", *args], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_enrich_simulate_evaluate_on_movielens(data_dir, tmp_path, tiny_llm_folder):
    common = ["--dataset", "ml-100k", "--split", "temporal", "--no-show-progress", "--cache-dir", str(tmp_path / "llm")]
    enriched, simulated = tmp_path / "enriched.csv", tmp_path / "simulated.csv"
    proc = _cli(["enrich", *common, "--model", str(tiny_llm_folder), "--max-new-tokens", "8", "--out", str(enriched)],
                data_dir, tmp_path)
    summary = json.loads(proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1])
    split = load_split(RunConfig(dataset="ml-100k", data_dir=str(data_dir), split="temporal"))
    cold = split.cold_items("test")
    back = read_enriched(enriched, split.dataset.items)
    # Every cold-start movie got an answer, each accepted or rejected for a named reason, and counted.
    assert set(back.status) == cold and summary["items"] == len(cold) == 109
    assert summary["accepted"] + sum(summary["rejected"].values()) + summary["no_text"] == len(cold)
    again = _cli(["enrich", *common, "--model", str(tiny_llm_folder), "--max-new-tokens", "8", "--out",
                  str(enriched)], data_dir, tmp_path)
    assert '"llm_calls": 0' in again.stdout  # all served from the cache

    _cli(["simulate", *common, "--model", str(tiny_llm_folder), "--prefilter-users", "3", "--keep-users", "1",
          "--out", str(simulated)], data_dir, tmp_path)
    events = read_simulated(simulated, split)
    assert set(events["item_id"]) <= cold and len(events) <= len(cold) and events["simulated"].all()
    assert (events["timestamp"] > split.train["timestamp"].max()).all()

    out = tmp_path / "eval"
    proc = _cli(["evaluate", "--dataset", "ml-100k", "--split", "temporal", "--no-show-progress", "--max-cases", "40",
                 "--baselines", "popularity", "itemcf", "--no-rank-average", "--enriched-text", str(enriched),
                 "--simulated-events", str(simulated), "--out-dir", str(out)], data_dir, tmp_path)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"popularity", "itemcf", "hybrid", "embedding+enriched", "itemcf+simulated",
                            "hybrid+enriched", "hybrid+simulated", "hybrid+both"}
    # One evaluator for all: the same cases and the same cold-start slice, simulated events or not.
    assert len({(m["counts"]["cases"], m["slices"]["cold"]["cases"], m["slices"]["cold"]["targets"])
                for m in metrics.values()}) == 1
    assert metrics["itemcf"]["slices"]["cold"]["ndcg@10"] == 0.0
    weights = metrics["hybrid"]["diagnostics"]["weights"]
    assert all(metrics[n]["diagnostics"]["weights"] == weights for n in ("hybrid+enriched", "hybrid+both"))
    assert "hybrid+both" in proc.stdout and (out / "metrics.png").is_file()


def test_bad_llm_files_fail_first_with_the_file_line_and_field(data_dir, tmp_path):
    env = dict(os.environ, LLMREC_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", LLMREC_CACHE_DIR=str(tmp_path / "cache"))
    bad = tmp_path / "simulated.csv"
    bad.write_text("user_id,item_id,timestamp,rating,simulated,p_yes,prefilter_rank\n"
                   "1,50,893286638,5.0,True,0.4,1\n"
                   "1,no-such-movie,893286638,5.0,True,0.4,2\n", encoding="utf-8")
    enriched = tmp_path / "enriched.csv"
    enriched.write_text("item_id,text,status\n50,A space opera.,accepted\n51,,maybe\n", encoding="utf-8")
    cases = [(["--simulated-events", str(tmp_path / "missing.csv")], ["missing.csv", "no such file"]),
             (["--simulated-events", str(bad)], ["simulated.csv", "line 3", "item_id"]),
             (["--enriched-text", str(enriched)], ["enriched.csv", "line 3", "status"])]
    for flags, expected in cases:
        proc = subprocess.run([sys.executable, "-m", "llmrec.cli", "coldstart", "evaluate", "--dataset", "ml-100k",
                               "--split", "temporal", "--no-show-progress", "--out-dir", str(tmp_path / "out"),
                               *flags], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert all(part in proc.stderr for part in expected), proc.stderr[-2000:]
        assert not (tmp_path / "out").exists()  # it failed before writing anything
