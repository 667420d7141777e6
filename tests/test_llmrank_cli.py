"""``llmrec rerank`` end to end: a tiny random model saved as a folder (fast), the packaged SmolLM2 (slow)."""

from __future__ import annotations

import json

import pytest

from llmrec.cli import main
from llmrec.llmrank.config import MODES

CHATML = (
    "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\\n'}}{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama with a small trained BPE tokenizer and a chat template, saved like any
    local transformers folder (safetensors)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    words = ["I've watched the following movies in the past in order", "candidate movies", "Answer",
             "Toy Story (1995)", "GoldenEye (1995)", "Star Wars (1977)", "[1]", "[20]"] + list("ABCDEFGHIJKLMNOPQRST")
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator([f"{a} {b}" for a in words for b in words],
                            trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>",
                                                                                "<|im_end|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHATML
    torch.manual_seed(0)
    config = AutoConfig.for_model("llama", hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                  num_key_value_heads=2, intermediate_size=64, vocab_size=len(tok),
                                  max_position_embeddings=4096, eos_token_id=2, pad_token_id=0, bos_token_id=None)
    folder = tmp_path_factory.mktemp("tiny-llm")
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _run(capsys, *argv) -> str:
    assert main(["rerank", *argv]) == 0
    return capsys.readouterr().out


def _table_rows(out: str, scorer_prefix: str) -> list[list[str]]:
    """The printed results table's rows of one scorer: [scorer, slice, mode, cases, targets, metrics...]."""
    return [line.split() for line in out.splitlines() if line.startswith(scorer_prefix)
            and len(line.split()) >= 7 and line.split()[1] in ("all", "warm", "long_tail", "cold")]


# Every mode is covered on the scorer level (test_llmrank_model); here the two paths the CLI
# treats differently (a written answer with parse stats; a batched likelihood with calibration).
@pytest.mark.parametrize("mode", ["generate", "score-calibrated"])
def test_rerank_runs_offline_and_writes_metrics(require_data, tiny_model_dir, tmp_path, capsys, mode):
    data_dir = str(require_data("ml-100k", "u.data").parent.parent)
    out = _run(capsys, "--dataset", "ml-100k", "--data-dir", data_dir, "--model", str(tiny_model_dir),
               "--mode", mode, "--users", "3", "--n-candidates", "5", "--bootstrap", "2",
               "--max-new-tokens", "6", "--baselines", "popularity", "--out-dir", str(tmp_path), "--no-show-progress")
    # One results table for every scorer, labelled with the candidates (target + 4 sampled negatives).
    header = next(line for line in out.splitlines() if line.startswith("scorer"))
    assert header.split()[:5] == ["scorer", "slice", "mode", "cases", "targets"] and "ndcg@10" in header
    assert "3 cases (seeded subsample), 3 of 943 users" in out
    llm_name = f"llmrank[{mode},sequential,B=2]"
    for prefix in ("popularity", llm_name):
        rows = _table_rows(out, prefix)
        assert rows and rows[0][1:4] == ["all", "sampled-4", "3"]
    # One parse-rate line per LLM (generate mode parses answers; likelihood modes have nothing to parse).
    rates = [line for line in out.splitlines() if line.startswith(llm_name) and "parse_failure_rate" in line]
    assert len(rates) == 1 and "out_of_candidate_rate" in rates[0] and "seconds_per_user" in rates[0]
    assert ("parse_failure_rate -" in rates[0]) == (mode != "generate")
    assert not any(line.startswith("popularity:") for line in out.splitlines())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "metrics.png", "run.json"]  # atomic
    results = json.loads((tmp_path / "metrics.json").read_text())
    assert list(results) == ["popularity", f"{llm_name}({tiny_model_dir})"]
    llm = results[f"{llm_name}({tiny_model_dir})"]
    assert llm["mode"] == "sampled-4" and llm["counts"]["cases"] == 3 and llm["candidates"]["num_negatives"] == 4
    assert 0.0 <= llm["ndcg@10"] <= 1.0
    assert llm["population"]["users_in_dataset"] == 943 and llm["population"]["subsampled_cases"]
    assert llm["diagnostics"]["users"] == 3 and llm["diagnostics"]["prompts"] == 6  # 3 users x 2 bootstrap copies
    if mode == "generate":
        assert llm["diagnostics"]["parse_failure_rate"] is not None
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["mode"] == "sampled" and run["num_negatives"] == 4 and run["max_cases"] == 3
    # Both scorers ranked the same lists of the same cases.
    assert results["popularity"]["counts"] == llm["counts"]


def test_rerank_multichannel_ranks_recalled_lists(require_data, tiny_model_dir, tmp_path, capsys):
    data_dir = str(require_data("ml-100k", "u.data").parent.parent)
    out = _run(capsys, "--dataset", "ml-100k", "--data-dir", data_dir, "--model", str(tiny_model_dir),
               "--candidates", "multichannel", "--channels", "popularity", "itemcf", "bm25", "--mode", "score",
               "--users", "4", "--n-candidates", "6", "--baselines", "itemcf", "--out-dir", str(tmp_path),
               "--no-show-progress")
    assert _table_rows(out, "itemcf")[0][1:4] == ["all", "recalled-6", "4"]
    results = json.loads((tmp_path / "metrics.json").read_text())
    for result in results.values():
        assert result["mode"] == "recalled-6"
        recall = result["candidates"]
        assert recall["channels"] == ["popularity", "itemcf", "bm25"] and recall["quotas"] == [2, 2, 2]
        assert recall["n_candidates"] == 6 and recall["dedup_removed_total"] >= 0
        # The target is not forced in: a case whose target was not recalled counts, as a miss.
        everything = result["slices"]["all"]
        assert everything["cases"] == 4 and everything["targets"] == 4
        assert result["hr@20"] == pytest.approx(everything["targets_listed"] / 4)


def test_rerank_position_bias_writes_its_report(require_data, tiny_model_dir, tmp_path, capsys):
    data_dir = str(require_data("ml-100k", "u.data").parent.parent)
    out = _run(capsys, "--dataset", "ml-100k", "--data-dir", data_dir, "--model", str(tiny_model_dir),
               "--mode", "score", "--users", "3", "--position-bias", "--out-dir", str(tmp_path), "--no-show-progress")
    assert "position bias (ground truth fixed at position):" in out
    report = json.loads((tmp_path / "position_bias.json").read_text())
    assert report["cases"] == 3 and sorted(map(int, report["positions"])) == [0, 5, 10, 15, 19]
    for metrics in report["positions"].values():
        assert 0.0 <= metrics["ndcg@10"] <= 1.0


def test_rerank_rejects_bad_flags(require_data, tiny_model_dir, tmp_path, capsys):
    data_dir = str(require_data("ml-100k", "u.data").parent.parent)
    with pytest.raises(SystemExit):
        main(["rerank", "--dataset", "ml-100k", "--candidates", "nonsense"])
    for flags, message in ([["--mode", "nonsense"], "LLMRankConfig.mode must be one of ['generate', 'score', "],
                           [["--candidates", "multichannel", "--position-bias"], "--position-bias needs"],
                           [["--bootstrap", "0"], "bootstrap must be >= 1"],
                           [["--n-candidates", "1"], "--n-candidates must be >= 2"],
                           [["--users", "-1"], "--users must be >= 0"]):
        code = main(["rerank", "--dataset", "ml-100k", "--data-dir", data_dir, "--users", "2",
                     "--model", str(tiny_model_dir), "--out-dir", str(tmp_path), *flags])
        err = capsys.readouterr().err
        assert code == 1 and message in err and "Traceback" not in err, (flags, err)
    assert not list(tmp_path.iterdir())  # nothing was evaluated or written


@pytest.mark.slow
def test_rerank_with_packaged_smollm2_in_every_mode(require_data, tmp_path, capsys):
    """The issue's 'done when': `llmrec rerank` end to end offline with a packaged model, every mode."""
    pytest.importorskip("gguf")
    from llmrec.llm.registry import PACKAGED_MODELS

    if not PACKAGED_MODELS["smollm2-135m"].is_installed():
        pytest.skip(f"SmolLM2 package not installed: {PACKAGED_MODELS['smollm2-135m'].pip_install}")
    data_dir = str(require_data("amazon-games", "Games-6k.valid.inter").parent.parent)
    for mode in MODES:
        out_dir = tmp_path / mode
        out = _run(capsys, "--dataset", "amazon-games", "--data-dir", data_dir, "--model", "smollm2-135m",
                   "--mode", mode, "--users", "2", "--max-new-tokens", "60", "--out-dir", str(out_dir),
                   "--no-show-progress")
        assert "ndcg@10" in out and "wrote" in out and "sampled-19" in out
        (result,) = json.loads((out_dir / "metrics.json").read_text()).values()
        assert result["mode"] == "sampled-19" and result["counts"]["cases"] == 2
        assert result["scorer"].startswith(f"llmrank[{mode},") and result["dataset"] == "amazon-games"
        assert json.loads((out_dir / "run.json").read_text())["dataset"] == "amazon-games"
