"""TALLRec splits are leak-free (defect 1), evaluation files are removed from train and valid
(defect 6), and "liked" means ``is_liked`` in prompts, labels and the evaluator (defect 7).

Each regression test fails on the old code: its default ``split_examples(by="example")`` put test
targets into training prompts, ``build-data --exclude`` cleaned only train, and the old evaluator
counted a 3 of 5 as liked.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from llmrec.data.schema import Dataset
from llmrec.tallrec.data import movielens_examples, read_examples, sequence_examples
from llmrec.tallrec.split import exclude_evaluation, leaked_examples, prompt_key, split_examples, users_of


def synthetic(n_users: int = 30, n_events: int = 25, n_items: int = 60, ratings: bool = True, seed: int = 0) -> Dataset:
    """Users rating items at interleaved global times; item ``i`` is rated ``i % 5 + 1`` by everyone."""
    rng = np.random.default_rng(seed)
    rows = []
    times = rng.permutation(n_users * n_events) * 10 + 1_000
    for u in range(n_users):
        items = rng.choice(n_items, size=n_events, replace=False)
        for k, i in enumerate(items):
            rows.append({"user_id": f"u{u}", "item_id": str(i), "timestamp": int(times[u * n_events + k]),
                         **({"rating": float(i % 5 + 1)} if ratings else {})})
    items = pd.DataFrame({"item_id": [str(i) for i in range(n_items)], "title": [f"Movie {i}" for i in range(n_items)]})
    return Dataset("synthetic", pd.DataFrame(rows), items, domain="movie")


# ------------------------------------------------------------------ defect 1: no label leaks across parts
def test_default_split_puts_no_test_target_into_a_training_prompt():
    examples = movielens_examples(synthetic(), history_len=5)
    for by in (None, "user", "time"):
        parts = split_examples(examples, seed=1) if by is None else split_examples(examples, by=by, seed=1)
        assert parts["train"] and parts["valid"] and parts["test"]
        assert leaked_examples(parts["train"], parts["test"]) == []
        assert leaked_examples(parts["train"], parts["valid"]) == []


def test_the_leak_check_catches_a_shuffled_split():
    # What the old default did: shuffle examples into parts. The check must see it, or the test above proves nothing.
    examples = movielens_examples(synthetic(), history_len=5)
    order = np.random.default_rng(0).permutation(len(examples))
    cut = int(0.8 * len(examples))
    train, test = [examples[i] for i in order[:cut]], [examples[i] for i in order[cut:]]
    assert len(leaked_examples(train, test)) > 0.3 * len(train)


def test_yes_no_twins_stay_on_one_side():
    examples = sequence_examples(synthetic(n_users=60, ratings=False), history_len=5, seed=0)
    assert len(examples) == 120 and all(e.timestamp is not None for e in examples)
    for by in ("user", "time"):
        parts = split_examples(examples, by=by, seed=2)
        side = {}
        for name, rows in parts.items():
            for e in rows:
                side.setdefault((e.user_id, e.history, e.timestamp), set()).add(name)
        assert all(len(names) == 1 for names in side.values())
        assert leaked_examples(parts["train"], parts["test"]) == []


def test_split_by_example_is_gone_with_a_reason():
    examples = movielens_examples(synthetic(), history_len=5)
    with pytest.raises(ValueError, match="removed.*labels"):
        split_examples(examples, by="example")


def test_split_by_time_needs_timestamps_and_by_user_needs_users(require_data):
    official = read_examples(require_data("tallrec", "movie", "valid.json"))
    with pytest.raises(ValueError, match="timestamp"):
        split_examples(official, by="time")
    with pytest.raises(ValueError, match="user id"):
        split_examples(official, by="user")


@pytest.fixture(scope="module")
def ml100k_sample(ml100k_tallrec_users):
    return ml100k_tallrec_users


def test_real_movielens_split_is_leak_free(ml100k_sample):
    examples = movielens_examples(ml100k_sample)
    for parts in (split_examples(examples), split_examples(examples, by="time")):
        assert min(len(rows) for rows in parts.values()) > 100
        assert leaked_examples(parts["train"], parts["test"]) == []
        assert leaked_examples(parts["train"], parts["valid"]) == []


# ------------------------------------------------------------------ defect 6: evaluation file out of train AND valid
def test_build_data_removes_the_evaluation_file_from_train_and_valid(ml100k_sample, require_data, tmp_path,
                                                                     monkeypatch):
    import llmrec.data.registry
    from llmrec.cli import build_parser

    official_path = require_data("tallrec", "movie", "valid.json")
    monkeypatch.setattr(llmrec.data.registry, "load_dataset", lambda *a, **k: ml100k_sample)
    args = build_parser().parse_args(["tallrec", "build-data", "--dataset", "ml-100k", "--out", str(tmp_path),
                                      "--exclude", str(official_path), "--seed", "5"])
    assert args.split_by == "user"  # the default is leak-free
    assert args.func(args) == 0
    parts = {name: read_examples(tmp_path / f"{name}.json") for name in ("train", "valid", "test")}
    official = read_examples(official_path)
    built = movielens_examples(ml100k_sample)
    banned = {prompt_key(o) for o in official}
    mapped = [e for e in built if prompt_key(e) in banned]
    assert {e.user_id for e in mapped} == {"913", "932"}
    for name in ("train", "valid"):  # valid drives early stopping: it must be clean too
        assert parts[name], name
        assert not any(prompt_key(e) in banned for e in parts[name]), name
        assert not {e.user_id for e in parts[name]} & {"913", "932"}, name
        assert leaked_examples(parts[name], mapped) == [], name
    assert json.loads((tmp_path / "train.json").read_text())[0]["timestamp"] > 0  # provenance is written


def test_exclude_evaluation_finds_users_through_the_built_examples():
    examples = movielens_examples(synthetic(), history_len=5)
    held = [e for e in examples if e.user_id == "u3"][:4]
    file_like = [type(e)(e.instruction, e.input, e.output, e.label) for e in held]  # no provenance, like TALLRec's
    assert users_of(file_like, examples) == {"u3"}
    parts = split_examples(examples, seed=0)
    before = {name: len(rows) for name, rows in parts.items()}
    dropped = exclude_evaluation(parts, file_like, examples)
    assert dropped["users"] == 1 and dropped["train"] + dropped["valid"] > 0
    assert all(e.user_id != "u3" for name in ("train", "valid") for e in parts[name])
    assert len(parts["test"]) == before["test"]


# ------------------------------------------------------------------ defect 7: one meaning of "liked"
def test_liked_is_rating_above_3_in_prompts_labels_and_the_evaluator():
    from llmrec.data.splits import make_split
    from llmrec.eval.pointwise import PointwiseEvaluator
    from llmrec.tallrec.data import titles_in_input

    dataset = synthetic()
    rating = {str(i): i % 5 + 1 for i in range(60)}  # item i is rated i % 5 + 1
    examples = movielens_examples(dataset, history_len=10)
    assert {rating[e.item_id] for e in examples} == {1, 2, 3, 4, 5}
    for e in examples:
        assert e.label == int(rating[e.item_id] > 3) and e.output == ("Yes." if e.label else "No.")
        liked, disliked, _ = titles_in_input(e.input)
        assert sorted(liked) == sorted(f"Movie {i}" for i in e.history if rating[i] > 3)
        assert sorted(disliked) == sorted(f"Movie {i}" for i in e.history if rating[i] <= 3)
    evaluator = PointwiseEvaluator.from_split(make_split(dataset, "temporal", test_ratio=0.3), show_progress=False)
    assert {rating[i] for i in evaluator.items} == {1, 2, 3, 4, 5}
    assert list(evaluator.values) == [int(rating[i] > 3) for i in evaluator.items]


def test_user_split_is_seeded():
    # A seeded permutation of the sorted user ids: the same seed, the same parts; another seed, others.
    examples = movielens_examples(synthetic(), history_len=5)
    a, b = split_examples(examples, seed=7), split_examples(examples, seed=7)
    assert [e.user_id for e in a["test"]] == [e.user_id for e in b["test"]]
    assert {e.user_id for e in a["test"]} != {e.user_id for e in split_examples(examples, seed=8)["test"]}
