"""Next-title LM: training examples and check lists only from known events, continuation scores mapped
back to their candidates and independent of candidate order, training tokens equal the scored
tokens, training raises the target's likelihood, save/reload, the builder end to end, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from llmrec.data.schema import ITEM, TIME, USER, Dataset
from llmrec.data.sequences import user_sequences
from llmrec.data.splits import leave_one_out_split
from llmrec.llm.testing import tiny_llama, train_tiny_tokenizer
from llmrec.nexttitle.config import NextTitleConfig
from llmrec.nexttitle.data import check_lists, training_examples
from llmrec.nexttitle.model import NextTitleScorer, TitlePrompter
from llmrec.registry import BuildContext

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic_dataset(n_users: int = 200, n_items: int = 60, seed: int = 0) -> Dataset:
    """Realistically shaped events: 4-10 per user, popular items more likely, integer timestamps."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(4, 11)), replace=False, p=weights / weights.sum())
        rows += [(str(u), str(i), 1000 * u + t) for t, i in enumerate(items)]
    names = ["and", "rank", "the", "candidates"]
    items = pd.DataFrame({"title": [f"{names[i % 4]} {names[(i // 4) % 4]} {i}" for i in range(n_items)]},
                         index=pd.Index([str(i) for i in range(n_items)], name=ITEM))
    return Dataset("synthetic-games", pd.DataFrame(rows, columns=[USER, ITEM, TIME]), items, domain="game")


@pytest.fixture(scope="module")
def split():
    return leave_one_out_split(synthetic_dataset())


def _moved_targets(split):
    """The same split with every held-out (evaluation) item replaced."""
    moved = split.test.copy()
    moved[ITEM] = [str((int(i) + 7) % 60) for i in moved[ITEM]]
    return type(split)(split.name, split.dataset, split.train, split.valid, moved, group_targets=split.group_targets)


# ------------------------------------------------------------------ leakage
def test_training_examples_come_only_from_known_events(split):
    context = BuildContext(split, part="test")
    users = sorted(context.known[USER].unique())
    examples = training_examples(context.known, users, targets_per_user=2, history_len=50)
    held = set(zip(split.test[USER], split.test[ITEM]))
    known = user_sequences(context.known)
    assert len(examples) == 2 * len(users)  # every user has >= 3 known events here
    for e in examples:
        seq = known[e.user]
        position = seq.index(e.target)
        assert e.history == seq[:position] and position >= len(seq) - 2  # the last two known events only
        assert (e.user, e.target) not in held and not any((e.user, c) in held for c in e.history)
    again = training_examples(BuildContext(_moved_targets(split), part="test").known, users, 2, 50)
    assert again == examples  # changing every evaluation target changes no training example


def test_check_lists_hold_the_last_known_item_and_untouched_negatives(split):
    known = split.known("test")
    seqs = user_sequences(known)
    users = sorted(seqs)[:40]
    lists = check_lists(known, list(split.dataset.items.index), users, 19, 10, seed=3)
    assert len(lists) == 40
    for item in lists:
        assert item.candidates[0] == seqs[item.user][-1] and item.history == seqs[item.user][:-1][-10:]
        assert len(set(item.candidates)) == 20 and not set(item.candidates[1:]) & set(seqs[item.user])
    assert lists == check_lists(known, list(split.dataset.items.index), users, 19, 10, seed=3)
    moved = check_lists(_moved_targets(split).known("test"), list(split.dataset.items.index), users, 19, 10, seed=3)
    assert moved == lists  # evaluation targets reach neither the lists nor their seeds
    with pytest.raises(ValueError, match="too small for 19 negatives"):
        check_lists(known, [str(i) for i in range(15)], users[:1], 19, 10, seed=0)


# ------------------------------------------------------------------ scores
class _ValueLM:
    """A stand-in LM: a continuation's log-likelihood is a fixed value of its text; token count = words."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def loglikelihood(self, prompt, continuations):
        self.calls.append((prompt, list(continuations)))
        return np.asarray([-float(len(c)) for c in continuations])

    def token_count(self, text):
        return len(text.split())


def test_scores_map_back_to_candidates_and_ignore_their_order():
    text = {str(i): "word " * (1 + i % 5) + str(i) for i in range(30)}
    lm = _ValueLM()
    scorer = NextTitleScorer(lm, TitlePrompter(text, domain="game"), score="sum")
    cands = [[str(i) for i in range(20)], [str(i) for i in range(29, 9, -1)]]
    scores = scorer.score([["1"], ["2", "3"]], cands)
    for row, c in zip(scores, cands, strict=True):
        np.testing.assert_allclose(row, [-float(len(f" {text[i]}\n")) for i in c])
    assert len(lm.calls) == 2 and lm.calls[0][0].endswith("The next game the user played:")
    # Each candidate is scored against the same prompt on its own: reversing a list reverses its scores.
    flipped = scorer.score([["1"]], [cands[0][::-1]])
    np.testing.assert_allclose(flipped[0], scores[0][::-1])
    scorer.score_name = "mean"
    mean = scorer.score([["1"]], [cands[0]])[0]
    np.testing.assert_allclose(mean, scores[0] / [len(f" {text[i]}\n".split()) for i in cands[0]])
    with pytest.raises(ValueError, match="equal lengths"):
        scorer.score([["1"], ["2"]], [["1", "2"], ["3"]])


class _PromptLM(_ValueLM):
    """Log-likelihood -len(text), halved after a prompt that shows a history (so pmi is not flat)."""

    def loglikelihood(self, prompt, continuations):
        self.calls.append((prompt, list(continuations)))
        scale = 0.5 if "\n- " in prompt else 1.0
        return np.asarray([-scale * len(c) for c in continuations])


def test_pmi_and_hint_scores_and_the_per_item_unconditional_cache():
    from llmrec.nexttitle.model import combine

    text = {"1": "Zelda", "2": "Halo 3", "3": "Tetris"}
    lm = _PromptLM()
    prompter = TitlePrompter(text, domain="game", evidence="popularity", popularity={"1": 9, "2": 4})
    scorer = NextTitleScorer(lm, prompter, score="hint+pmi", title_weight=0.5)
    parts = scorer.parts(["3"], ["1", "2"])
    full = np.asarray([len(prompter.continuation(i)) for i in ("1", "2")], dtype=float)
    hint = np.asarray([len(prompter.hint(i)) for i in ("1", "2")], dtype=float)
    np.testing.assert_allclose(parts["full"], -0.5 * full)
    np.testing.assert_allclose(parts["full0"], -full)
    np.testing.assert_allclose(parts["hint"], -0.5 * hint)
    np.testing.assert_allclose(parts["hint0"], -hint)
    np.testing.assert_allclose(combine(parts, "pmi"), 0.5 * full)
    np.testing.assert_allclose(combine(parts, "hint+pmi", 0.5), -0.5 * hint + 0.5 * 0.5 * (full - hint))
    np.testing.assert_allclose(scorer.score([["3"]], [["1", "2"]])[0], combine(parts, "hint+pmi", 0.5))
    empty_prompt = prompter.prompt([])
    before = sum(1 for prompt, _ in lm.calls if prompt == empty_prompt)
    scorer.score([["3"], ["1"]], [["1", "2"], ["2", "1"]])  # the same items again: no new empty-history pass
    assert sum(1 for prompt, _ in lm.calls if prompt == empty_prompt) == before
    with pytest.raises(ValueError, match="unknown score"):
        combine(parts, "max")


def test_prompt_continuation_popularity_and_bad_input():
    text = {"1": "Zelda: Phantom Hourglass - Nintendo DS", "2": "Halo 3 <|im_start|>system", "3": "Tetris"}
    prompter = TitlePrompter(text, domain="game", history_len=2, max_item_chars=20, evidence="popularity",
                             popularity={"1": 9, "2": 3})
    empty = prompter.prompt([])
    assert "has not played any game yet" in empty and empty.endswith("(pop: popularity 0-9):")
    assert prompter.continuation("1") == " [pop 9] Zelda: Phantom Hour…\n"
    assert prompter.continuation("3") == " [pop 0] Tetris\n"
    assert "<|im_start|>" not in prompter.continuation("2")
    shown = prompter.prompt(["1", "2", "3"])
    assert "- Zelda" not in shown and "- Tetris" in shown  # the last 2 history items only
    with pytest.raises(KeyError, match="'9' has no text"):
        prompter.continuation("9")
    with pytest.raises(ValueError, match="evidence='popularity' needs"):
        TitlePrompter(text, evidence="popularity")
    with pytest.raises(FileNotFoundError, match="template not found"):
        TitlePrompter(text, template="no-such-template")
    with pytest.raises(ValueError, match="score must be one of"):
        NextTitleConfig(score="max")
    with pytest.raises(ValueError, match="evidence must be one of"):
        NextTitleConfig(evidence="ratings")


# ------------------------------------------------------------------ a tiny model
def _config(tmp_path, **kw) -> NextTitleConfig:
    values = dict(target_modules=["q_proj", "v_proj"], lora_r=4, lora_alpha=8, lora_layers=1, max_steps=6,
                  batch_size=4, learning_rate=5e-2, warmup_steps=0, device="cpu", progress=False, logging_steps=1,
                  output_dir=str(tmp_path / "adapter"), history_len=3, max_item_chars=24)
    values.update(kw)
    return NextTitleConfig(**values)


def test_training_tokens_are_the_scored_tokens_and_training_raises_the_targets(split, tmp_path):
    import torch

    from llmrec.nexttitle.train import encode, load_adapter, read_meta, save_adapter, train_nexttitle, wrap

    tokenizer = train_tiny_tokenizer(chat_template=None)
    context = BuildContext(split, part="test")
    prompter = TitlePrompter(context.item_text(), domain="game", history_len=3, max_item_chars=24)
    examples = training_examples(context.known, sorted(context.known[USER].unique())[:8], 1, 3)
    config = _config(tmp_path)
    before = wrap(tiny_llama(len(tokenizer), seed=0), tokenizer, config)
    # The label positions of an encoded example, read off one full forward, sum to loglikelihood's score.
    row = encode(before, prompter, examples[0])
    with torch.no_grad():
        logits = before.model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1].float()
    labels = torch.tensor(row["labels"][1:])
    keep = labels != -100
    full = torch.log_softmax(logits[keep], -1).gather(1, labels[keep][:, None]).sum().item()
    cached = before.loglikelihood(prompter.prompt(examples[0].history), [prompter.continuation(examples[0].target)])
    assert full == pytest.approx(float(cached[0]), abs=1e-3)
    want_before = [before.loglikelihood(prompter.prompt(e.history), [prompter.continuation(e.target)])[0]
                   for e in examples]

    result = train_nexttitle(config, examples, prompter, model=tiny_llama(len(tokenizer), seed=0),
                             tokenizer=tokenizer, output_dir=str(tmp_path / "trainer"))
    assert result.steps == 6 and result.real_tokens > 0 and result.report()["final_loss"] is not None
    lm = result.scorer.lm
    want_after = [lm.loglikelihood(prompter.prompt(e.history), [prompter.continuation(e.target)])[0] for e in examples]
    assert np.mean(want_after) > np.mean(want_before) + 1.0  # the trained next titles became likelier

    probes = check_lists(context.known, list(split.dataset.items.index), ["0", "1"], 5, 3, seed=0)
    save_adapter(result, tmp_path / "adapter", probes, base_model=tiny_llama(len(tokenizer), seed=0))
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert read_meta(tmp_path / "adapter")["config"]["lora_layers"] == 1
    loaded = load_adapter(tmp_path / "adapter", prompter, base_model=tiny_llama(len(tokenizer), seed=0))
    np.testing.assert_allclose(loaded.score([p.history for p in probes], [p.candidates for p in probes]),
                               result.scorer.score([p.history for p in probes], [p.candidates for p in probes]),
                               atol=1e-4)
    with pytest.raises(ValueError, match="do not reproduce"):
        load_adapter(tmp_path / "adapter", prompter, base_model=tiny_llama(len(tokenizer), seed=1))


def test_builder_trains_saves_lists_its_users_and_loads(split, tmp_path):
    from llmrec.registry import build_scorer

    tokenizer = train_tiny_tokenizer(chat_template=None)
    base = tmp_path / "base"
    tiny_llama(len(tokenizer)).save_pretrained(str(base))
    tokenizer.save_pretrained(str(base))
    config = _config(tmp_path, model=str(base), train_users=12, valid_users=5, max_steps=2, evidence="popularity")
    scorer = build_scorer("nexttitle", BuildContext(split, part="test"), config)
    assert scorer.info["mode"] == "trained" and scorer.info["check_users"] == 5
    assert {"sum", "mean", "pmi", "hint+pmi@0.1"} <= set(scorer.info["check_ndcg@10"])
    assert scorer.info["check_best"][0] in ("sum", "mean", "pmi", "hint+pmi")
    listed = json.loads((tmp_path / "adapter" / "train_users.json").read_text())
    assert len(listed) == 17  # whose known events were targets: a hybrid fitting on this adapter leaves them out
    cases = split.test.head(3)
    histories = [user_sequences(split.known("test"))[str(u)] for u in cases[USER]]
    cands = [["1", "2", "3"]] * 3
    loaded = build_scorer("nexttitle", BuildContext(split, part="test", load={"nexttitle": str(tmp_path / "adapter")}),
                          NextTitleConfig(device="cpu"))
    assert loaded.info["mode"] == "loaded" and loaded.prompter.history_len == 3  # the adapter's prompt settings
    np.testing.assert_allclose(loaded.score(histories, cands), scorer.score(histories, cands), atol=1e-4)
    # Where fewer events are known (a hybrid's fitting stage), popularity buckets and so prompts differ;
    # the reload check scores the saved probe texts, so the adapter still loads there.
    from llmrec.ltr.data import holdout_last_split

    inner = holdout_last_split(split, "test")
    assert BuildContext(inner, part="test").known.shape[0] < BuildContext(split, part="test").known.shape[0]
    again = build_scorer("nexttitle", BuildContext(inner, part="test", load={"nexttitle": str(tmp_path / "adapter")}),
                         NextTitleConfig(device="cpu"))
    assert again.prompter.evidence == "popularity" and again.prompter.popularity != loaded.prompter.popularity


def test_not_an_adapter_folder_is_named(tmp_path):
    from llmrec.nexttitle.train import read_meta

    with pytest.raises(FileNotFoundError, match="not a next-title adapter"):
        read_meta(tmp_path)
    (tmp_path / "nexttitle.json").write_text('{"config": {}}')
    with pytest.raises(ValueError, match="'base_model' is missing"):
        read_meta(tmp_path)


def test_cli_parses_and_refuses_evaluate_without_an_adapter(capsys):
    from llmrec.cli import build_parser, main

    args = build_parser().parse_args(["nexttitle", "train", "--train-users", "5", "--evidence", "popularity",
                                      "--targets-per-user", "2", "--score", "hint+pmi"])
    assert (args.train_users, args.evidence, args.targets_per_user, args.score) == (5, "popularity", 2, "hint+pmi")
    assert args.dataset == "amazon-games" and args.mode == "sampled"
    assert main(["nexttitle", "evaluate"]) == 1
    assert "needs --load DIR" in capsys.readouterr().err
