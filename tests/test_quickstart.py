"""The main job as a user runs it: `llmrec quickstart`, the notebook, and the CLI plumbing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llmrec.cli import build_parser, main
from llmrec.cli.options import add_dataclass_arguments, dataclass_from_args

REPO = Path(__file__).resolve().parents[1]


@dataclass
class _Config:
    name: str = field(default="x", metadata={"help": "a name"})
    count: int | None = field(default=None, metadata={"help": "how many"})
    ratio: float = field(default=0.5, metadata={"help": "a ratio"})
    flag: bool = field(default=True, metadata={"help": "a switch"})


def test_dataclass_flags_round_trip():
    import argparse

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, _Config)
    cfg = dataclass_from_args(_Config, parser.parse_args(["--count", "3", "--ratio", "0.25", "--no-flag"]))
    assert cfg == _Config(name="x", count=3, ratio=0.25, flag=False)
    assert "how many" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--count", "three"])


def test_every_command_is_registered_and_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("quickstart", "data", "embed", "evaluate"):
        assert name in sub.choices
        assert sub.choices[name].format_help()


def test_cli_reports_missing_data_as_an_error_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LLMREC_DATA_DIR", str(tmp_path))
    code = main(["evaluate", "--dataset", "amazon-games", "--scorers", "popularity", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1
    assert "amazon-games" in err and "Games" in err


def test_cli_reports_an_unknown_data_set_by_name(capsys):
    assert main(["evaluate", "--dataset", "nope", "--scorers", "popularity"]) == 1
    err = capsys.readouterr().err
    assert "unknown data set 'nope'" in err and "ml-100k" in err and "Traceback" not in err


def _quickstart_env(data_dir: Path, tmp_path: Path) -> dict:
    env = dict(os.environ, LLMREC_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1",
               LLMREC_CACHE_DIR=str(tmp_path / "cache"))
    return env


def test_quickstart_command_prints_warm_and_cold_rows(data_dir, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "llmrec.cli", "quickstart", "--out-dir", str(out), "--max-cases", "60",
         "--cache-dir", str(tmp_path / "emb"), "--no-show-progress"],
        capture_output=True, text=True, env=_quickstart_env(data_dir, tmp_path), timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert "cold-start" in text and "full" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"embedding", "popularity", "newest", "itemcf", "hybrid"}
    assert "In one line:" in text and "the hybrid's top 10" in text
    after = text.split("the hybrid's top 10", 1)[1].splitlines()
    listed = [line for line in after if re.match(r"^\s+\d+\. ", line)]
    assert [int(line.split(".")[0]) for line in listed] == list(range(1, 11))
    # The summary line agrees with the marks: "<hits> of these 10 were really watched".
    hits = int(re.search(r"(\d+) of these 10 were really watched", text).group(1))
    assert hits == sum("[watched]" in line for line in listed)
    assert metrics["hybrid"]["diagnostics"]["weights"]  # fitted on validation, reported
    for result in metrics.values():
        assert result["mode"] == "full"
        assert {"all", "warm", "cold"} <= set(result["slices"])
    # Popularity cannot rank what it never saw in training; text embeddings can.
    assert metrics["popularity"]["slices"]["cold"]["ndcg@10"] == 0.0
    assert metrics["itemcf"]["slices"]["cold"]["ndcg@10"] == 0.0  # no co-occurrence without an event
    assert metrics["embedding"]["slices"]["cold"]["targets"] > 0  # the split really has cold targets
    assert metrics["embedding"]["ndcg@10"] > 0  # the ranker finds some test movies among 1,682
    assert (out / "metrics.png").stat().st_size > 1000


def test_notebook_runs_top_to_bottom(data_dir, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    env = _quickstart_env(data_dir, tmp_path)
    env["LLMREC_NOTEBOOK_MAX_CASES"] = "40"
    old = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    printed = "".join(o.get("text", "") for o in outputs)
    assert "popularity" in printed and "embedding" in printed


def test_the_headline_is_written_from_the_numbers():
    from llmrec.quickstart import headline

    def result(all_ndcg, cold_ndcg):
        return {"slices": {"all": {"ndcg@10": all_ndcg}, "cold": {"ndcg@10": cold_ndcg}}}

    results = {"popularity": result(0.16, 0.0), "newest": result(0.03, 0.05), "hybrid": result(0.25, 0.001)}
    line = headline(results)
    assert "0.2500" in line and "newest 0.0500" in line and "popularity 0.1600" in line
    assert line.endswith("better than every baseline over all movies, not on cold-start ones.")
    results["hybrid"] = result(0.2, 0.09)
    assert headline(results).endswith("better than every baseline on both.")
