"""TALLRec's collaborative evidence (``tallrec.evidence``): computed label-blind from known events
only (a scored pair: events before the evaluated part and its own history; a training example:
events strictly before its own target), cold items / users said in words, and the option reaching
the prompt through the registered builder, for trained and loaded adapters too. Tiny random models."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from llmrec.data.schema import Dataset
from llmrec.data.splits import make_split
from llmrec.eval.pointwise import PointwiseEvaluator
from llmrec.llm.testing import tiny_llama, train_tiny_tokenizer
from llmrec.registry import BuildContext, build_scorer
from llmrec.scoring import History
from llmrec.tallrec.config import TallRecConfig
from llmrec.tallrec.data import item_titles, rating_examples
from llmrec.tallrec.evidence import ItemEvidence, Stats, evidence_text, items_before, summarize
from llmrec.tallrec.scorer import known_examples

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TARGET_LINE = re.compile(r'Target Ratings: other users rated ".*" ([0-9.]+) out of 5 on average and (\d+)% of them '
                         r'liked it \((\d+) ratings, (.+)\)\.')


def synthetic(n_users: int = 24, n_events: int = 20, n_items: int = 40, seed: int = 0) -> Dataset:
    """Interleaved global times, seeded ratings 1-5; titles use the tiny tokenizer's words."""
    rng = np.random.default_rng(seed)
    words = ["The Matrix", "Alien", "Frozen", "Heat", "Jaws", "Vertigo", "Casablanca", "Predator"]
    times = rng.permutation(n_users * n_events) * 10 + 1_000
    rows = [{"user_id": f"u{u}", "item_id": str(i), "timestamp": int(times[u * n_events + k]),
             "rating": float(rng.integers(1, 6))}
            for u in range(n_users) for k, i in enumerate(rng.choice(n_items, size=n_events, replace=False))]
    items = pd.DataFrame({"item_id": [str(i) for i in range(n_items)],
                          "title": [f"{words[i % len(words)]} {i}" for i in range(n_items)]})
    return Dataset("synthetic", pd.DataFrame(rows), items, domain="movie")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tokenizer = train_tiny_tokenizer()
    folder = tmp_path_factory.mktemp("tiny_llama_evidence")
    tiny_llama(len(tokenizer)).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


class RecordingYesNo:
    """Stands in for YesNoScorer: records every question."""

    def __init__(self) -> None:
        self.questions: list = []

    def p_yes(self, questions):
        self.questions += list(questions)
        return np.linspace(0.1, 0.9, len(questions))


def _split(dataset: Dataset):
    return make_split(dataset, "temporal", test_ratio=0.25, valid_ratio=0.1)


# ------------------------------------------------------------------ statistics: strictly before, label-blind
def test_items_before_sees_only_strictly_earlier_events():
    events = pd.DataFrame({"user_id": ["a", "b", "c", "d", "e"], "item_id": ["x", "x", "y", "x", "x"],
                           "timestamp": [10, 20, 20, 30, 5], "rating": [5.0, 1.0, 4.0, 2.0, 4.0]})
    stats = items_before(events)
    assert stats[4] is None  # the earliest event of x: nothing before it (a cold item)
    assert stats[0] == Stats(1, 4.0, 1.0, 0.0)  # only e's 4 at t=5
    assert stats[2] is None  # y's first rating; b's rating of x in the same second does not count for y either
    # b at t=20 sees e and a (t=5, 10) only; d at t=30 sees b's rating but never its own.
    assert (stats[1].count, stats[1].mean) == (2, 4.5)
    assert (stats[3].count, stats[3].mean, stats[3].liked) == (3, pytest.approx(10 / 3), pytest.approx(2 / 3))
    # Changing the latest event's rating changes nothing earlier, nor its own evidence.
    changed = events.assign(rating=[5.0, 1.0, 4.0, 5.0, 4.0])
    assert items_before(changed) == stats
    table = ItemEvidence(events)
    assert table.get("x") == Stats(4, 3.0, 0.5, 0.0) and table.get("y").top == 0.5 and table.get("z") is None


def test_training_examples_get_evidence_from_before_their_own_target():
    dataset = synthetic()
    events = dataset.interactions
    titles = item_titles(dataset)
    plain = rating_examples(events, titles, history_len=5)
    both = rating_examples(events, titles, history_len=5, evidence="both")
    assert len(plain) == len(both) > 100
    assert all("Ratings:" not in e.input for e in plain)  # "none" is TALLRec's own text
    for e in both[::17]:
        before = events[(events["item_id"] == e.item_id) & (events["timestamp"] < e.timestamp)]
        match = TARGET_LINE.search(e.input)
        if before.empty:
            assert 'no other user has rated' in e.input
            continue
        assert match and int(match.group(3)) == len(before)
        assert match.group(1) == f"{before['rating'].mean():.1f}"
        mine = events[(events["user_id"] == e.user_id) & (events["timestamp"] < e.timestamp)]
        assert f"of the {len(mine)} movies they rated" in e.input
    # Each example's own rating (its label) and every later event are outside its prompt.
    flipped = events.assign(rating=6.0 - events["rating"])
    latest = events["timestamp"].max()
    last = [e for e in both if e.timestamp == latest]
    keep = events["timestamp"] < latest
    mixed = events.assign(rating=np.where(keep, events["rating"], flipped["rating"]))
    again = rating_examples(mixed, titles, history_len=5, evidence="both")
    assert [e.input for e in again] == [e.input for e in both] and last
    assert [e.label for e in again if e.timestamp == latest] != [e.label for e in last]


def test_scored_prompts_are_label_blind_and_never_see_an_event_after_the_cut(model_dir):
    dataset = synthetic()
    split = _split(dataset)
    held = set(zip(split.test["user_id"], split.test["item_id"], strict=True))
    flipped = dataset.interactions.copy()
    mask = [(u, i) in held for u, i in zip(flipped["user_id"], flipped["item_id"], strict=True)]
    flipped.loc[mask, "rating"] = 6.0 - flipped.loc[mask, "rating"]
    other = _split(Dataset("synthetic", flipped, dataset.items, domain="movie"))
    prompts, labels = [], []
    for s in (split, other):
        scorer = build_scorer("tallrec", BuildContext(s, part="test", show_progress=False), model=str(model_dir),
                              device="cpu", zero_shot=True, evidence="both")
        assert scorer.diagnostics()["evidence"] == "both"
        scorer.yes_no = RecordingYesNo()
        evaluator = PointwiseEvaluator.from_split(s, show_progress=False)
        evaluator(scorer)
        prompts.append([q.input for q in scorer.yes_no.questions])
        labels.append(evaluator.values)
    assert prompts[0] == prompts[1] and len(prompts[0]) > 50
    assert (labels[0] != labels[1]).mean() > 0.3
    # Every item line states exactly the known (pre-cut) ratings of the target.
    known = split.known("test")
    for text, item in zip(prompts[0], evaluator.items, strict=True):
        mine = known[known["item_id"] == item]
        match = TARGET_LINE.search(text)
        assert (match is None) == mine.empty
        if match:
            assert (int(match.group(3)), match.group(1)) == (len(mine), f"{mine['rating'].mean():.1f}")


# ------------------------------------------------------------------ wording: cold items and users
def test_template_renders_cold_items_and_users_and_each_mode():
    cold = evidence_text("both", None, None, "Jaws 4", "movie", 5.0)
    assert 'no other user has rated "Jaws 4" yet (a new movie)' in cold and "has not rated any movie yet" in cold
    warm_item = Stats(312, 4.14, 0.78, 0.05)
    user = summarize([5, 4, 2, 1])
    both = evidence_text("both", warm_item, user, "Jaws 4", "movie", 5.0)
    assert ('rated "Jaws 4" 4.1 out of 5 on average and 78% of them liked it (312 ratings, among the most '
            'watched)') in both
    assert "rates movies 3.0 out of 5 on average and liked 50% of the 4 movies they rated" in both
    assert "User Ratings" not in evidence_text("item", warm_item, user, "Jaws 4", "movie", 5.0)
    assert "Target Ratings" not in evidence_text("user", warm_item, user, "Jaws 4", "movie", 5.0)
    assert evidence_text("none", warm_item, user, "Jaws 4", "movie", 5.0) == ""
    assert "rarely watched" in evidence_text("item", Stats(2, 3.0, 0.5, 0.9), None, "X", "movie", 5.0)
    with pytest.raises(ValueError, match="evidence must be one of"):
        TallRecConfig(evidence="all")


# ------------------------------------------------------------------ through the builder: trained and loaded
def test_option_reaches_training_and_loaded_prompts_through_the_builder(model_dir, tmp_path):
    split = _split(synthetic())
    context = BuildContext(split, part="test", show_progress=False)
    train, stop = known_examples(context, TallRecConfig(evidence="item"))
    assert all("Target Ratings:" in e.input and "User Ratings:" not in e.input for e in train + stop)
    options = {"model": str(model_dir), "device": "cpu", "max_steps": 2, "batch_size": 4, "learning_rate": 5e-3,
               "early_stopping_patience": 0, "logging_steps": 100, "shots": 8, "max_eval_examples": 8,
               "output_dir": str(tmp_path / "adapter"), "progress": False, "evidence": "user",
               "bf16": True}  # on a CPU: fp32 weights under bf16 autocast, and the reload guard must still hold
    trained = build_scorer("tallrec", context, **options)
    info = trained.diagnostics()
    assert info["evidence"] == "user" and (info["train_auc"] is None or 0.0 <= info["train_auc"] <= 1.0)
    assert info["real_tokens"] > 0 and info["tokens_per_second"] > 0
    history = History(["1", "2", "3"], [5.0, 1.0, 4.0])
    assert "liked 67% of the 3 movies they rated" in trained.question(history, "4").input
    # A loaded adapter is scored with the evidence it was trained with, whatever the option says.
    loaded = build_scorer("tallrec", BuildContext(split, part="test", load={"tallrec": str(tmp_path / "adapter")},
                                                  show_progress=False), device="cpu", evidence="none")
    assert loaded.diagnostics()["evidence"] == "user" and loaded.yes_no.autocast_bf16
    assert loaded.question(history, "4").input == trained.question(history, "4").input
    np.testing.assert_allclose(loaded.score([history], [["4", "9"]]), trained.score([history], [["4", "9"]]),
                               atol=1e-5)


def test_evidence_without_ratings_fails_naming_the_column(model_dir):
    dataset = synthetic()
    no_ratings = Dataset("clicks", dataset.interactions.drop(columns=["rating"]), dataset.items, domain="movie")
    context = BuildContext(_split(no_ratings), part="test", show_progress=False)
    with pytest.raises(ValueError, match="no 'rating' column"):
        build_scorer("tallrec", context, model=str(model_dir), device="cpu", zero_shot=True, evidence="both")


def test_build_data_writes_evidence_only_with_a_split_by_time(tmp_path, monkeypatch):
    import llmrec.data.registry
    from llmrec.cli import build_parser
    from llmrec.tallrec.data import read_examples

    monkeypatch.setattr(llmrec.data.registry, "load_dataset", lambda *a, **k: synthetic())
    args = build_parser().parse_args(["tallrec", "build-data", "--dataset", "x", "--out", str(tmp_path),
                                      "--evidence", "both"])
    with pytest.raises(SystemExit, match="needs --split-by time"):
        args.func(args)
    args = build_parser().parse_args(["tallrec", "build-data", "--dataset", "x", "--out", str(tmp_path),
                                      "--evidence", "both", "--split-by", "time", "--history-len", "5"])
    assert args.func(args) == 0
    written = read_examples(tmp_path / "test.json")
    assert written and all("Target Ratings:" in e.input and "User Ratings:" in e.input for e in written)
