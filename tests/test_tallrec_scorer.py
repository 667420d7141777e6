"""The registered ``tallrec`` scorer: prompts as the builders render them, P(Yes) as YesNoScorer's,
no label in a prompt, training only on known events, load / zero-shot / train, the config on the
shared trainer settings, and ``tallrec score`` through the pointwise evaluator. Tiny random models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data.schema import Dataset
from llmrec.data.splits import make_split
from llmrec.eval.metrics import binary_metrics
from llmrec.eval.pointwise import PointwiseEvaluator
from llmrec.llm.testing import tiny_llama, train_tiny_tokenizer
from llmrec.registry import BuildContext, build_scorer, get_spec
from llmrec.scoring import History
from llmrec.tallrec.config import TallRecConfig
from llmrec.tallrec.data import item_titles, rating_examples
from llmrec.tallrec.model import YesNoScorer
from llmrec.tallrec.scorer import QuestionScorer, TallRecScorer, file_evaluator, known_examples

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic(n_users: int = 24, n_events: int = 20, n_items: int = 40, seed: int = 0) -> Dataset:
    """Interleaved global times; item ``i`` is rated ``i % 5 + 1``; titles use the tiny tokenizer's words."""
    rng = np.random.default_rng(seed)
    words = ["The Matrix", "Alien", "Frozen", "Heat", "Jaws", "Vertigo", "Casablanca", "Predator"]
    times = rng.permutation(n_users * n_events) * 10 + 1_000
    rows = [{"user_id": f"u{u}", "item_id": str(i), "timestamp": int(times[u * n_events + k]),
             "rating": float(i % 5 + 1)}
            for u in range(n_users) for k, i in enumerate(rng.choice(n_items, size=n_events, replace=False))]
    items = pd.DataFrame({"item_id": [str(i) for i in range(n_items)],
                          "title": [f"{words[i % len(words)]} {i}" for i in range(n_items)]})
    return Dataset("synthetic", pd.DataFrame(rows), items, domain="movie")


@pytest.fixture(scope="module")
def tokenizer():
    return train_tiny_tokenizer()


@pytest.fixture(scope="module")
def model_dir(tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_llama")
    tiny_llama(len(tokenizer)).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def split():
    return make_split(synthetic(), "temporal", test_ratio=0.25, valid_ratio=0.1)


class RecordingYesNo:
    """Stands in for YesNoScorer: records every question, answers from the question text only."""

    def __init__(self) -> None:
        self.questions: list = []

    def p_yes(self, questions):
        self.questions += list(questions)
        return np.array([(hash(q.input) % 1000 + 1) / 1002 for q in questions])


def _options(model_dir, tmp_path, **kw):
    return {"model": str(model_dir), "device": "cpu", "max_steps": 3, "batch_size": 4, "learning_rate": 5e-3,
            "early_stopping_patience": 0, "logging_steps": 100, "shots": 16, "max_eval_examples": 8,
            "output_dir": str(tmp_path / "adapter"), "progress": False, **kw}


# ------------------------------------------------------------------ prompts and P(Yes)
def test_scorer_prompt_and_p_yes_equal_the_builders_and_yes_no_scorer(tokenizer):
    dataset = synthetic()
    examples = rating_examples(dataset.interactions, item_titles(dataset), "movie", history_len=10)
    ratings = {(u, i): r for u, i, r in dataset.interactions[["user_id", "item_id", "rating"]]
               .itertuples(index=False)}
    yes_no = YesNoScorer(tiny_llama(len(tokenizer)), tokenizer, template="alpaca")
    scorer = TallRecScorer(yes_no, item_titles(dataset), "movie", history_len=10)
    picked = examples[::37][:12]
    # The scorer gets a longer history (15 events would be too many): it keeps the last 10, as the builder.
    by_user = {u: g.sort_values("timestamp", kind="stable") for u, g in dataset.interactions.groupby("user_id")}
    histories = []
    for e in picked:
        events = by_user[e.user_id]
        end = list(events["item_id"]).index(e.item_id)
        items = list(events["item_id"])[:end]
        histories.append(History(items, [ratings[(e.user_id, i)] for i in items]))
        assert scorer.question(histories[-1], e.item_id).input == e.input
    p = scorer.score(histories, [[e.item_id] for e in picked])
    assert p.shape == (len(picked), 1)
    np.testing.assert_allclose(p[:, 0], yes_no.p_yes(picked), atol=1e-6)


def test_history_without_ratings_is_all_preferences_and_ranking_shapes_work():
    dataset = synthetic()
    recorder = RecordingYesNo()
    scorer = TallRecScorer(recorder, item_titles(dataset), "movie", history_len=3)
    scores = scorer.score([["1", "2", "3", "4"], ["5"]], ["6", "7", "8"])  # shared candidates: full ranking
    assert scores.shape == (2, 3) and len(recorder.questions) == 6
    first = recorder.questions[0].input
    assert 'User Preference: "Frozen 2", "Heat 3", "Jaws 4"\nUser Unpreference: \n' in first
    assert first.endswith('target movie "Casablanca 6"?')


def test_no_label_reaches_a_prompt(split):
    # Flip every held-out rating: the labels change, the prompts the scorer sees must not.
    flipped = split.dataset.interactions.copy()
    held = set(zip(split.test["user_id"], split.test["item_id"], strict=True))
    mask = [(u, i) in held for u, i in zip(flipped["user_id"], flipped["item_id"], strict=True)]
    flipped.loc[mask, "rating"] = 6.0 - flipped.loc[mask, "rating"]
    other = make_split(Dataset("synthetic", flipped, split.dataset.items, domain="movie"), "temporal",
                       test_ratio=0.25, valid_ratio=0.1)
    prompts, labels = [], []
    for s in (split, other):
        evaluator = PointwiseEvaluator.from_split(s, show_progress=False)
        recorder = RecordingYesNo()
        evaluator(TallRecScorer(recorder, item_titles(s.dataset), "movie"))
        prompts.append([q.input for q in recorder.questions])
        labels.append(evaluator.values)
        # The target never appears among the history titles of its own question.
        for q, item in zip(recorder.questions, evaluator.items, strict=True):
            assert f'"{item_titles(s.dataset)[item]}",' not in q.input and q.output == ""
    assert prompts[0] == prompts[1] and len(prompts[0]) == len(labels[0]) > 50
    assert (labels[0] != labels[1]).mean() > 0.3


# ------------------------------------------------------------------ training data: known events only
def test_training_examples_come_only_from_known_events(split):
    config = TallRecConfig(shots=0, early_stopping_share=0.2)
    train, stop = known_examples(BuildContext(split, part="test"), config)
    known = set(zip(split.known("test")["user_id"], split.known("test")["item_id"], strict=True))
    held = set(zip(split.test["user_id"], split.test["item_id"], strict=True))
    assert train and stop
    for e in train + stop:
        assert (e.user_id, e.item_id) in known and (e.user_id, e.item_id) not in held
        assert all((e.user_id, i) in known for i in e.history)
    # The early-stopping set is the latest by target time: no training prompt shows one of its targets.
    assert max(e.timestamp for e in train) < min(e.timestamp for e in stop)
    # For the valid part only train events are known.
    train_v, stop_v = known_examples(BuildContext(split, part="valid"), config)
    only_train = set(zip(split.train["user_id"], split.train["item_id"], strict=True))
    assert all((e.user_id, e.item_id) in only_train for e in train_v + stop_v)


def test_builder_trains_on_known_events_saves_a_guarded_adapter_and_runs_on_the_one_path(split, model_dir, tmp_path,
                                                                                         monkeypatch):
    import llmrec.tallrec.train as train_module
    from llmrec.run import RunConfig, run
    from llmrec.tallrec.guards import check_adapter_files

    seen: dict[str, list] = {}
    real = train_module.train_tallrec

    def spy(config, train, valid=(), *args, **kwargs):
        seen["train"], seen["valid"] = list(train), list(valid)
        return real(config, train, valid, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_tallrec", spy)
    spec = get_spec("tallrec")
    assert spec.trains and spec.uses_llm and set(spec.tasks) == {"pointwise", "ranking"}
    context = BuildContext(split, part="test", show_progress=False)
    trained = build_scorer("tallrec", context, **_options(model_dir, tmp_path))
    held = set(zip(split.test["user_id"], split.test["item_id"], strict=True))
    assert seen["train"] and seen["valid"]
    assert not any((e.user_id, e.item_id) in held or any((e.user_id, i) in held for i in e.history)
                   for e in seen["train"] + seen["valid"])
    info = trained.diagnostics()
    assert info["mode"] == "trained" and info["train_examples"] == 16 and info["steps"] == 3
    assert check_adapter_files(tmp_path / "adapter").nonzero_lora_b > 0

    # --load tallrec=FOLDER gives the same scores; zero_shot gives the base model's.
    loaded = build_scorer("tallrec", BuildContext(split, load={"tallrec": str(tmp_path / "adapter")},
                                                  show_progress=False), model=str(model_dir), device="cpu")
    zero = build_scorer("tallrec", context, model=str(model_dir), device="cpu", zero_shot=True)
    histories, cands = [History(["1", "2", "3"], [5.0, 1.0, 4.0])], [["4", "9"]]
    np.testing.assert_allclose(loaded.score(histories, cands), trained.score(histories, cands), atol=1e-5)
    assert loaded.diagnostics()["mode"] == "loaded" and zero.diagnostics()["mode"] == "zero-shot"
    assert np.abs(zero.score(histories, cands) - trained.score(histories, cands)).max() > 1e-6

    outcome = run(RunConfig(task="pointwise", max_cases=40, show_progress=False), ["item-prior", trained],
                  split=split, write=False, echo=lambda *_: None)
    result = outcome.results["tallrec"]
    assert result["mode"] == "pointwise" and result["population"]["pairs"] == 40 and 0 <= result["auc"] <= 1
    assert outcome.results["item-prior"]["population"] == result["population"]
    # By name with options, as `llmrec evaluate --task pointwise --scorers item-prior tallrec` calls it.
    named = run(RunConfig(task="pointwise", max_cases=20, show_progress=False), ["item-prior", "tallrec"],
                options={"tallrec": {"model": str(model_dir), "device": "cpu", "zero_shot": True}}, split=split,
                write=False, echo=lambda *_: None)
    assert named.results["tallrec"]["diagnostics"]["mode"] == "zero-shot"


# ------------------------------------------------------------------ config on the shared trainer settings
def test_config_stands_on_trainer_settings_and_reads_old_adapters():
    from llmrec.training import TrainerSettings

    config = TallRecConfig(epochs=3, batch_size=2, gradient_accumulation_steps=4, output_dir="/tmp/tr")
    assert isinstance(config, TrainerSettings)
    sft = config.to_sft_config()
    assert (sft.num_train_epochs, sft.per_device_train_batch_size, sft.gradient_accumulation_steps) == (3, 2, 4)
    assert sft.bf16 is False and sft.activation_checkpointing is False and sft.save_strategy == "no"
    assert sft.output_dir == "/tmp/tr/trainer" and sft.completion_only_loss is True
    old = TallRecConfig.from_dict({"num_train_epochs": 7.0, "per_device_train_batch_size": 16, "lora_r": 4,
                                   "no_longer_a_field": 1})
    assert (old.epochs, old.batch_size, old.lora_r) == (7.0, 16, 4)
    assert TallRecConfig.from_dict(config.to_dict()) == config


# ------------------------------------------------------------------ JSON files through the pointwise evaluator
def test_file_questions_are_evaluated_by_the_pointwise_evaluator(tokenizer):
    from llmrec.tallrec.data import render_example

    examples = [render_example(["Alien 1"], ["Frozen 2"], title, label)
                for title, label in [("Heat 3", 1), ("Jaws 4", 0), ("Vertigo 5", 1), ("Predator 6", 0)] * 2]
    yes_no = YesNoScorer(tiny_llama(len(tokenizer)), tokenizer)
    scorer = QuestionScorer(yes_no, examples)
    result = file_evaluator(examples, total=10, show_progress=False)(scorer)
    expected = binary_metrics([e.label for e in examples], yes_no.p_yes(examples))
    assert result["auc"] == pytest.approx(expected["auc"]) and result["logloss"] == pytest.approx(
        expected["logloss"])
    assert result["population"]["pairs"] == 8 and result["population"]["pairs_total"] == 10
    assert len(scorer.p_yes) == 4  # repeated questions are scored once
