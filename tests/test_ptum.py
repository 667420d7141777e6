"""PTUM: masking hides the hidden behaviours, seeded negatives never equal the positive, the next-K
split holds the last K out of the input, demographics labels never reach pretraining, pretraining
lowers the loss, the scorer ranks through the one evaluator path, save / load round trip, bad
config values fail clearly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec.data.schema import Dataset
from llmrec.data.splits import leave_one_out_split
from llmrec.ptum import (
    PTUM,
    ItemVocabulary,
    PTUMClassifier,
    PTUMCollator,
    PTUMConfig,
    PTUMScorer,
    PTUMSequences,
    demographic_data,
    finetune_ptum,
    new_encoder,
    pretrain_ptum,
)
from llmrec.ptum.data import user_sequences, user_subset
from llmrec.ptum.train import next_item_windows
from llmrec.registry import BuildContext, build_scorer
from llmrec.run import RunConfig, run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def behaviour_dataset(n_users: int = 120, n_items: int = 40, seed: int = 0, with_users: bool = True) -> Dataset:
    """Users walk items k, k + 1, ... (with random jumps) inside one half of the catalogue that
    their gender decides: behaviour predicts both the next item and the label."""
    rng = np.random.default_rng(seed)
    rows, users = [], []
    half = n_items // 2
    for u in range(n_users):
        gender = "F" if u % 3 == 0 else "M"
        base = 0 if gender == "F" else half
        k = int(rng.integers(half))
        for step in range(int(rng.integers(6, 14))):
            item = base + (k if rng.random() > 0.1 else int(rng.integers(half)))
            rows.append({"user_id": f"u{u}", "item_id": f"i{item}", "timestamp": 1000 * u + step})
            k = (k + 1) % half
        users.append({"user_id": f"u{u}", "age": int(rng.integers(15, 70)), "gender": gender,
                      "occupation": ["student", "writer", "other"][u % 3]})
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(n_items)], "title": [f"item {k}" for k in range(n_items)]})
    table = pd.DataFrame(users).set_index("user_id") if with_users else None
    return Dataset("synthetic-behaviour", pd.DataFrame(rows), items, users=table)


def small_config(tmp_path, **overrides) -> PTUMConfig:
    values = dict(d_model=32, n_heads=2, n_layers=1, dropout=0.0, max_len=12, epochs=8, batch_size=32,
                  learning_rate=3e-3, output_dir=str(tmp_path / "run"), save_steps=0, progress=False,
                  logging_steps=10_000, finetune_epochs=10)
    values.update(overrides)
    return PTUMConfig(**values)


def test_masked_behaviours_are_invisible_to_the_encoder(tmp_path):
    windows = [np.array([3, 5, 7, 9, 11, 4, 6, 8]), np.array([2, 10, 12, 14])]
    batch = PTUMCollator(n_items=20, mask_share=0.3, seed=0)([{"items": w} for w in windows])
    ids, cands = batch["input_ids"], batch["mask_candidates"]
    masked = ids == 20
    assert masked.sum(1).min() >= 1  # every window hides at least one behaviour
    for i, w in enumerate(windows):
        where = masked[i, : len(w)].numpy()
        assert np.array_equal(cands[i, : len(w), 0][masked[i, : len(w)]].numpy(), w[where])  # true item first
        assert np.array_equal(ids[i, : len(w)][~masked[i, : len(w)]].numpy(), w[~where])
    # Other items at the masked positions: the same encoder input, the same hidden states.
    changed = [w.copy() for w in windows]
    for i, w in enumerate(changed):
        where = masked[i, : len(w)].numpy()
        w[where] = 19 - w[where] % 5
    other = PTUMCollator(n_items=20, mask_share=0.3, seed=0)([{"items": w} for w in changed])
    assert torch.equal(other["input_ids"], ids)
    torch.manual_seed(0)
    model = PTUM(small_config(tmp_path), n_items=20).eval()
    torch.testing.assert_close(model.encode(other["input_ids"]), model.encode(ids))


def test_negatives_never_equal_the_positive_and_are_seeded():
    windows = [{"items": np.arange(1, 9)}, {"items": np.array([9, 10, 11])}]

    def negatives(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = PTUMCollator(n_items=30, mask_share=0.5, mask_negatives=6, next_k=2, next_negatives=5, seed=seed)(windows)
        return b["mask_candidates"], b["next_candidates"]

    masks, nexts = negatives(0)
    for i, w in enumerate(windows):
        hidden = masks[i][masks[i, :, 0] != 0]
        assert not np.isin(hidden[:, 1:].numpy(), w["items"]).any()  # outside the window, so never the positive
        assert not np.isin(nexts[i, :, 1:].numpy(), w["items"]).any()
    assert ((nexts[..., 1:] >= 1) & (nexts[..., 1:] < 30)).all()
    again, other = negatives(0), negatives(1)
    assert torch.equal(again[0], masks) and torch.equal(again[1], nexts)
    assert not torch.equal(other[1], nexts)
    # A window that holds every item: negatives are other items of it, still never the positive.
    collate = PTUMCollator(n_items=5, next_k=2, next_negatives=8, masked=False, seed=0)
    full = collate([{"items": np.array([1, 2, 3, 4])}])
    cands = full["next_candidates"][0]
    assert (cands[:, 1:] != cands[:, :1]).all()


def test_next_k_targets_are_the_last_k_and_absent_from_the_input():
    windows = [np.array([5, 6, 7, 8, 9]), np.array([1, 2, 3])]
    b = PTUMCollator(n_items=12, masked=False, next_k=2, seed=0)([{"items": w} for w in windows])
    assert b["next_candidates"][:, :, 0].tolist() == [[8, 9], [2, 3]]
    assert b["prefix_ids"].tolist() == [[5, 6, 7], [1, 0, 0]]
    for prefix, targets in zip(b["prefix_ids"], b["next_candidates"][:, :, 0]):
        assert not np.isin(targets.numpy(), prefix.numpy()).any()
    assert "input_ids" not in b  # masked task off
    with pytest.raises(ValueError, match="longer than K=2"):
        PTUMCollator(n_items=12, masked=False, next_k=2)([{"items": np.array([1, 2])}])


def test_demographic_labels_never_reach_training(tmp_path):
    config = small_config(tmp_path)
    split = leave_one_out_split(behaviour_dataset())
    bare = leave_one_out_split(behaviour_dataset(with_users=False))
    vocabulary = ItemVocabulary.from_split(split)
    # Pretraining windows come from the known interactions alone: the users table changes nothing.
    a, b = PTUMSequences.from_split(split, vocabulary, config), PTUMSequences.from_split(bare, vocabulary, config)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a.windows, b.windows))
    known = set(map(str, split.known("test")["item_id"]))
    assert {vocabulary.items[r - 1] for w in a.windows for r in w} <= known
    data = demographic_data(split, vocabulary, "gender", 0.5, seed=3, max_len=config.max_len)
    assert not set(data.train_users) & set(data.test_users)
    # A test user's label flips: the training users, their behaviour and their labels stay the same.
    users = split.dataset.users.copy()
    flipped = data.test_users[0]
    users.loc[flipped, "gender"] = "F" if users.loc[flipped, "gender"] == "M" else "M"
    changed = dataclasses.replace(split, dataset=dataclasses.replace(split.dataset, users=users))
    again = demographic_data(changed, vocabulary, "gender", 0.5, seed=3, max_len=config.max_len)
    assert again.train_users == data.train_users and again.train_labels == data.train_labels
    assert all(np.array_equal(x, y) for x, y in zip(again.train_items, data.train_items))
    assert again.test_labels != data.test_labels
    # Label fractions of one seed are nested; ages fall into bands.
    small = demographic_data(split, vocabulary, "gender", 0.1, seed=3, max_len=config.max_len)
    assert set(small.train_users) < set(data.train_users) and small.test_users == data.test_users
    ages = demographic_data(split, vocabulary, "age", 1.0, seed=3, max_len=config.max_len)
    assert len(ages.classes) == 7 and set(ages.train_labels) <= set(range(7))


def test_validation_holdout_never_reads_a_test_user(tmp_path):
    split = leave_one_out_split(behaviour_dataset())
    vocabulary = ItemVocabulary.from_split(split)
    test = demographic_data(split, vocabulary, "gender", 1.0, seed=4, max_len=12)
    valid = demographic_data(split, vocabulary, "gender", 1.0, seed=4, max_len=12, holdout="valid")
    assert valid.holdout == "valid" and len(valid.test_users) > 0
    # The validation users and their training users are both drawn from the test split's pool.
    assert not (set(valid.train_users) | set(valid.test_users)) & set(test.test_users)
    assert not set(valid.train_users) & set(valid.test_users)
    assert set(valid.train_users) | set(valid.test_users) == set(test.train_users)
    # A test user's label flips: nothing the validation run reads changes.
    users = split.dataset.users.copy()
    for user in test.test_users:
        users.loc[user, "gender"] = "F" if users.loc[user, "gender"] == "M" else "M"
    changed = dataclasses.replace(split, dataset=dataclasses.replace(split.dataset, users=users))
    again = demographic_data(changed, vocabulary, "gender", 1.0, seed=4, max_len=12, holdout="valid")
    assert (again.train_labels, again.test_labels) == (valid.train_labels, valid.test_labels)
    with pytest.raises(ValueError, match="holdout must be one of"):
        demographic_data(split, vocabulary, "gender", 1.0, seed=4, max_len=12, holdout="train")


def test_user_fraction_draws_a_seeded_nested_subset():
    users = [f"u{i}" for i in range(200)]
    small, large = user_subset(users, 0.05, seed=1), user_subset(users, 0.5, seed=1)
    assert len(small) == 10 and len(large) == 100 and small < large
    assert user_subset(list(reversed(users)), 0.05, seed=1) == small  # the input order does not matter
    assert user_subset(users, 0.05, seed=2) != small
    assert len(user_subset(users, 0.001, seed=1)) == 1  # at least one user
    split = leave_one_out_split(behaviour_dataset())
    vocabulary = ItemVocabulary.from_split(split)
    every = next_item_windows(split, vocabulary, 12)
    some = next_item_windows(split, vocabulary, 12, user_fraction=0.1, seed=0)
    assert 0 < len(some) < len(every) / 5
    chosen = user_subset([str(u) for u in split.known("test")["user_id"].unique()], 0.1, seed=0)
    sequences = {u: s for u, s in user_sequences(split.known("test"), vocabulary).items() if u in chosen}
    assert len(some) == sum(len(s) - 1 for s in sequences.values())


def test_frozen_encoder_trains_only_the_head(tmp_path):
    config = small_config(tmp_path, dropout=0.3)
    model = PTUMClassifier(PTUM(config, n_items=20), n_classes=2, freeze_encoder=True).train()
    assert not model.encoder.training and model.head.training  # no dropout on the fixed user vectors
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    model(ids, labels=torch.tensor([0, 1]))["loss"].backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
    torch.testing.assert_close(model.encoder.user_vector(ids), model.encoder.user_vector(ids))  # deterministic
    # Through finetune_ptum: the probe's result says so, and the encoder it was given is unchanged.
    split = leave_one_out_split(behaviour_dataset())
    vocabulary = ItemVocabulary.from_split(split)
    encoder = new_encoder(split, small_config(tmp_path), vocabulary, seed=0)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    result = finetune_ptum(split, small_config(tmp_path, finetune_encoder="frozen", finetune_epochs=3), encoder,
                           vocabulary, "gender", 1.0, seed=0)
    assert result["finetune_encoder"] == "frozen" and 0 <= result["auc"] <= 1
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(value, before[name], msg=name)


def test_from_scratch_next_item_skips_pretraining(tmp_path):
    split = leave_one_out_split(behaviour_dataset())
    config = small_config(tmp_path, pretrain=False, next_item_epochs=1)
    scorer = build_scorer("ptum", BuildContext(split), config)
    # No pretrained model was written, only the next-item fine-tuned one.
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert (tmp_path / "run" / "next-item" / "model.safetensors").exists()
    assert np.isfinite(scorer.score([["i1", "i2"]], ["i3", "i4"])).all()


def _mean_loss(model: PTUM, batches: list[dict]) -> float:
    model.eval()
    with torch.no_grad():
        return float(np.mean([model(**b)["loss"].item() for b in batches]))


def test_pretraining_lowers_the_loss(tmp_path):
    config = small_config(tmp_path)
    split = leave_one_out_split(behaviour_dataset())
    vocabulary = ItemVocabulary.from_split(split)
    dataset = PTUMSequences.from_split(split, vocabulary, config)
    collate = PTUMCollator(len(vocabulary), mask_share=config.mask_share, next_k=config.next_k, seed=123)
    batches = [collate([dataset[j] for j in range(i, min(i + 32, len(dataset)))]) for i in range(0, len(dataset), 32)]
    before = _mean_loss(new_encoder(split, config, vocabulary), batches)
    model, _ = pretrain_ptum(split, config)
    after = _mean_loss(model, batches)
    assert after < before - 0.3, (before, after)


def test_scorer_ranks_through_the_one_evaluator_path(tmp_path):
    split = leave_one_out_split(behaviour_dataset())
    options = dataclasses.asdict(small_config(tmp_path, next_item_epochs=2))
    untrained = build_scorer("ptum", BuildContext(split), **{**options, "max_steps": 1, "learning_rate": 1e-9,
                                                             "next_item_epochs": 0.0,
                                                             "output_dir": str(tmp_path / "untrained")})
    untrained.name = "ptum-untrained"
    outcome = run(RunConfig(show_progress=False), ["ptum", untrained],
                  options={"ptum": options}, split=split, write=False, echo=lambda _: None)
    trained, random = outcome.results["ptum"], outcome.results["ptum-untrained"]
    # One evaluator, the same cases for both (repeat-consumption targets removed and counted by it).
    assert trained["counts"] == random["counts"] and trained["counts"]["cases"] > 100
    assert 0 <= trained["ndcg@10"] <= 1
    assert trained["ndcg@10"] > random["ndcg@10"] + 0.1, (trained["ndcg@10"], random["ndcg@10"])
    # Items outside the vocabulary (never known) rank last with a finite score.
    scorer = outcome.scorers["ptum"]
    scores = scorer.score([["i1", "not-an-item"], []], ["i2", "brand-new", "i3"])
    assert np.isfinite(scores).all() and scores[0, 1] < scores[0, [0, 2]].min()
    np.testing.assert_allclose(scorer.score([["i1"]], ["i2", "brand-new", "i3"]), scores[:1], rtol=1e-6)


def test_save_and_load_give_equal_scores(tmp_path, tiny_sentence_model):
    split = leave_one_out_split(behaviour_dataset(n_users=40))
    histories, items = [["i1", "i2", "i3"], ["i25"]], [f"i{k}" for k in range(40)]
    for encoder in ("id", "text"):
        config = small_config(tmp_path / encoder, item_encoder=encoder, max_steps=3,
                              text_model=str(tiny_sentence_model), cache_dir=None)
        model, vocabulary = pretrain_ptum(split, config)
        loaded, saved_items = PTUM.from_pretrained(config.output_dir)
        assert saved_items == vocabulary.items and loaded.config == model.config
        for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
            torch.testing.assert_close(a, b, msg=name)
        np.testing.assert_allclose(PTUMScorer(loaded, ItemVocabulary(saved_items)).score(histories, items),
                                   PTUMScorer(model, vocabulary).score(histories, items), rtol=1e-5)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("item_encoder", "bert", "item_encoder must be one of"),
    ("d_model", 33, "divisible by n_heads"),
    ("mask_share", 0.0, "mask_share must be in"),
    ("mask_share", 1.0, "mask_share must be in"),
    ("next_k", 0, "next_k must be >= 1"),
    ("max_len", 2, "max_len must be >= 2 and > next_k"),
    ("mask_negatives", 0, "mask_negatives and next_negatives must be >= 1"),
    ("test_share", 1.0, "test_share must be in"),
    ("dropout", 1.0, "dropout must be in"),
    ("finetune_encoder", "half", "finetune_encoder must be one of"),
    ("user_fraction", 0.0, "user_fraction must be in"),
    ("probe_learning_rate", 0.0, "probe_learning_rate and finetune_learning_rate must be > 0"),
    ("pretrain", False, "pretrain=False .* needs next_item_epochs > 0"),
])
def test_bad_config_values_raise_clear_errors(option, value, message):
    with pytest.raises(ValueError, match=message):
        PTUMConfig(n_heads=2, **{option: value})
    with pytest.raises(ValueError, match="at least one pretraining task"):
        PTUMConfig(masked_task=False, next_k_task=False)


def test_finetune_demographics_on_real_movielens(require_data, tmp_path):
    """Real ML-100K, 150 users: a short pretraining, then gender from 10% of the training users,
    pretrained and from scratch; both report accuracy and macro-F1 over the same test users."""
    from llmrec.data.registry import load_dataset
    from llmrec.data.schema import subsample_users

    split = leave_one_out_split(subsample_users(load_dataset("ml-100k", require_data()), 150, seed=0))
    config = small_config(tmp_path, max_len=30, max_steps=20, finetune_epochs=5)
    model, vocabulary = pretrain_ptum(split, config)
    pre = finetune_ptum(split, config, model, vocabulary, "gender", 0.1, seed=0)
    scratch = finetune_ptum(split, config, new_encoder(split, config, vocabulary, seed=0), vocabulary, "gender",
                            0.1, seed=0)
    assert pre["test_users"] == scratch["test_users"] == 30 and pre["train_users"] == 12
    assert pre["classes"] == ["F", "M"]
    for result in (pre, scratch):
        assert 0 <= result["accuracy"] <= 1 and 0 <= result["macro_f1"] <= 1 and 0 <= result["auc"] <= 1
    # Fine-tuning works on a copy: the pretrained encoder is unchanged.
    loaded, _ = PTUM.from_pretrained(config.output_dir)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_cli_finetune_flags_and_clear_errors(capsys):
    from llmrec.cli import build_parser, main

    args = build_parser().parse_args(["ptum", "finetune", "--task", "demographics", "--target", "age",
                                      "--label-fraction", "0.01", "0.1", "--seeds", "0", "1", "--scratch"])
    assert (args.ptum_task, args.target, args.label_fraction, args.seeds, args.scratch) == \
        ("demographics", "age", [0.01, 0.1], [0, 1], True)
    assert args.dataset == "ml-100k" and not hasattr(args, "task")  # RunConfig's --task is not offered here
    assert main(["ptum", "finetune", "--target", "gender"]) == 1
    assert "exactly one of --load PRETRAINED_DIR and --scratch" in capsys.readouterr().err
    assert main(["ptum", "finetune", "--task", "next-item", "--load", "x"]) == 1
    assert "--next-item-epochs > 0" in capsys.readouterr().err
    assert main(["ptum", "finetune", "--task", "next-item", "--load", "x", "--no-pretrain",
                 "--next-item-epochs", "1"]) == 1
    assert "exactly one of --load PRETRAINED_DIR and --no-pretrain" in capsys.readouterr().err
