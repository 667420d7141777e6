"""``llmrec rerank`` end to end: a tiny random model saved as a folder (fast), the packaged SmolLM2 (slow)."""

from __future__ import annotations

import json
import re

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


# Every mode is covered on the scorer level (test_llmrank_model); here the two paths the CLI
# treats differently (a written answer with parse stats; a batched likelihood with calibration).
@pytest.mark.parametrize("mode", ["generate", "score-calibrated"])
def test_rerank_runs_offline_and_writes_json(require_data, tiny_model_dir, tmp_path, capsys, mode):
    data_dir = str(require_data("ml-100k", "u.data").parent.parent)
    out = _run(capsys, "--dataset", "ml-100k", "--data-dir", data_dir, "--model", str(tiny_model_dir),
               "--mode", mode, "--users", "3", "--n-candidates", "5", "--bootstrap", "2",
               "--max-new-tokens", "6", "--baselines", "popularity", "--out", str(tmp_path))
    header = next(line for line in out.splitlines() if line.startswith("scorer"))
    for col in ("ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "parse_fail", "out_of_cand", "s/user"):
        assert col in header
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left over
    result = json.loads(files[0].read_text())
    assert result["users"] == 3 and result["config"]["mode"] == mode and result["config"]["domain"] == "movie"
    llm_row = result["results"][-1]
    assert 0.0 <= llm_row["ndcg@10"] <= 1.0 and llm_row["cases"] == 3
    if mode == "generate":
        assert llm_row["stats"]["answers"] == 6  # 3 users x 2 bootstrap copies
        assert llm_row["stats"]["parse_failure_rate"] is not None


def test_rerank_multichannel_reports_recall_and_dedup(require_data, tiny_model_dir, tmp_path, capsys):
    data_dir = str(require_data("ml-100k", "u.data").parent.parent)
    out = _run(capsys, "--dataset", "ml-100k", "--data-dir", data_dir, "--model", str(tiny_model_dir),
               "--candidates", "multichannel", "--channels", "popularity", "itemcf", "bm25", "--mode", "score",
               "--users", "4", "--n-candidates", "6", "--out", str(tmp_path))
    assert re.search(r"recall@6 of the merged lists \d\.\d{4}; de-duplication removed", out)
    result = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert result["recall"]["channels"] == ["popularity", "itemcf", "bm25"]
    assert result["recall"]["quotas"] == [2, 2, 2]


def test_rerank_rejects_bad_flags(require_data, tiny_model_dir, tmp_path):
    data_dir = str(require_data("ml-100k", "u.data").parent.parent)
    with pytest.raises(SystemExit):
        main(["rerank", "--dataset", "ml-100k", "--mode", "nonsense"])
    with pytest.raises(SystemExit, match="position-bias"):
        main(["rerank", "--dataset", "ml-100k", "--data-dir", data_dir, "--candidates", "multichannel",
              "--position-bias", "--model", str(tiny_model_dir), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="bootstrap"):
        main(["rerank", "--dataset", "ml-100k", "--data-dir", data_dir, "--bootstrap", "0", "--users", "2",
              "--model", str(tiny_model_dir), "--out", str(tmp_path)])


@pytest.mark.slow
def test_rerank_with_packaged_smollm2_in_every_mode(require_data, tmp_path, capsys):
    """The issue's 'done when': `llmrec rerank` end to end offline with a packaged model, every mode."""
    pytest.importorskip("gguf")
    from llmrec.llm.registry import PACKAGED_MODELS

    if not PACKAGED_MODELS["smollm2-135m"].is_installed():
        pytest.skip(f"SmolLM2 package not installed: {PACKAGED_MODELS['smollm2-135m'].pip_install}")
    data_dir = str(require_data("amazon-games", "Games-6k.valid.inter").parent.parent)
    for mode in MODES:
        out = _run(capsys, "--dataset", "amazon-games", "--data-dir", data_dir, "--model", "smollm2-135m",
                   "--mode", mode, "--users", "2", "--max-new-tokens", "60", "--out", str(tmp_path))
        assert "ndcg@10" in out and "wrote" in out
    results = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    assert sorted(r["config"]["mode"] for r in results) == sorted(MODES)
    for r in results:
        assert r["users"] == 2 and r["config"]["domain"] == "game"
