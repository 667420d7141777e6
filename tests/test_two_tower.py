"""The two-tower model: accidental-hit removal, logQ correction, per-task weighting, masking, the
collator's leakage rule, the bias baseline, the TFRS top-K protocol, and a real MovieLens run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from llmrec.bias import BiasConfig, BiasModel, BiasScorer
from llmrec.data.schema import Dataset
from llmrec.data.splits import random_split
from llmrec.data.vocabulary import PAD, ItemVocabulary
from llmrec.eval.topk import TopKAccuracyEvaluator, known_histories
from llmrec.scoring import History
from llmrec.two_tower import TwoTower, TwoTowerCollator, TwoTowerConfig, TwoTowerEvents, TwoTowerScorer
from llmrec.two_tower.model import in_batch_softmax_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_interactions(n_users: int = 30, n_items: int = 40, per_user: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for t, i in enumerate(rng.choice(n_items, per_user, replace=False)):
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 6)), 1000 * u + t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def toy_dataset(**kwargs) -> Dataset:
    inter = toy_interactions(**kwargs)
    items = pd.DataFrame({"title": sorted(inter["item_id"].unique())}, index=sorted(inter["item_id"].unique()))
    items.index.name = "item_id"
    return Dataset("toy", inter, items)


# --- the retrieval loss -----------------------------------------------------------------------------------


def test_accidental_hits_are_masked_and_nothing_else():
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    items = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    ids = torch.tensor([5, 5, 7])  # rows 0 and 1 hold the same item: each is the other's accidental hit
    logits = users @ items.T
    # Hand computation: row 0 keeps columns 0 and 2, row 1 keeps columns 1 and 2, row 2 keeps all.
    expected = -np.mean([
        logits[0, 0] - torch.logsumexp(logits[0, [0, 2]], 0),
        logits[1, 1] - torch.logsumexp(logits[1, [1, 2]], 0),
        logits[2, 2] - torch.logsumexp(logits[2], 0),
    ])
    got = in_batch_softmax_loss(users, items, ids, remove_accidental_hits=True)
    assert got.item() == pytest.approx(float(expected), abs=1e-6)
    kept = in_batch_softmax_loss(users, items, ids, remove_accidental_hits=False)
    assert kept.item() == pytest.approx(F.cross_entropy(logits, torch.arange(3)).item(), abs=1e-6)
    assert kept.item() > got.item()  # the masked hits were pushing the positives down


def test_logq_correction_subtracts_log_popularity_per_column():
    torch.manual_seed(0)
    users, items = torch.randn(4, 3), torch.randn(4, 3)
    ids = torch.arange(4)
    log_q = torch.log(torch.tensor([0.5, 0.25, 0.15, 0.1]))
    got = in_batch_softmax_loss(users, items, ids, temperature=0.5, log_q=log_q)
    manual = F.cross_entropy(users @ items.T / 0.5 - log_q[None, :], torch.arange(4))
    assert got.item() == pytest.approx(manual.item(), abs=1e-6)


def tiny_batch(model: TwoTower, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(1, model.n_items, (6, 5), generator=g)
    hist[:, 3:] = PAD
    return {"hist_items": hist, "hist_ratings": torch.randint(1, 6, (6, 5), generator=g).float(),
            "items": torch.randint(1, model.n_items, (6,), generator=g),
            "ratings": torch.randint(1, 6, (6,), generator=g).float(), "rated": torch.ones(6, dtype=torch.bool)}


@pytest.mark.parametrize("weights", [(1.0, 0.0), (0.0, 1.0), (0.3, 2.0)])
def test_multitask_loss_is_the_weighted_sum_and_a_zero_weight_trains_nothing(weights):
    w_ret, w_rat = weights
    torch.manual_seed(0)
    model = TwoTower(TwoTowerConfig(dim=8, embedding_dim=8, hidden=16, dropout=0.0, retrieval_weight=w_ret,
                                    rating_weight=w_rat), n_items=20, mean_rating=3.5).train()
    out = model(**tiny_batch(model))
    assert out["loss"].item() == pytest.approx(w_ret * out["retrieval_loss"].item()
                                               + w_rat * out["rating_loss"].item(), rel=1e-6)
    out["loss"].backward()
    head_grad = sum(float(p.grad.abs().sum()) for p in model.rating_head.parameters() if p.grad is not None)
    assert (head_grad == 0.0) == (w_rat == 0.0)  # the rating head learns only when its task has weight


def test_padding_is_masked_in_the_user_tower():
    torch.manual_seed(0)
    model = TwoTower(TwoTowerConfig(dim=8, embedding_dim=8, hidden=16, dropout=0.0), n_items=20, mean_rating=3.0)
    hist, ratings = torch.tensor([[3, 4, 5]]), torch.tensor([[5.0, 1.0, 4.0]])
    padded, padded_ratings = torch.tensor([[3, 4, 5, PAD, PAD]]), torch.tensor([[5.0, 1.0, 4.0, 2.0, 1.0]])
    a, off_a = model.user_vectors(hist, ratings)
    b, off_b = model.user_vectors(padded, padded_ratings)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(off_a, off_b)
    assert off_a.item() == pytest.approx((2.0 - 2.0 + 1.0) / (3 + 5))  # sum(r - mu) / (n + 5)


def test_user_tower_features_are_the_masked_means_of_the_history():
    """The embedding-bag sums equal the plain masked means over the (B, L, d) block."""
    torch.manual_seed(0)
    model = TwoTower(TwoTowerConfig(dim=8, embedding_dim=8, hidden=16, dropout=0.0), n_items=20, mean_rating=3.0)
    torch.nn.init.normal_(model.item_bias.weight)
    batch = tiny_batch(model)
    batch["hist_items"][2] = PAD  # an empty history: zero vectors, no NaN
    seen = {}
    model.user_tower[0].register_forward_hook(lambda module, args, out: seen.update(x=args[0]))
    model.user_vectors(batch["hist_items"], batch["hist_ratings"])
    items, ratings = batch["hist_items"], batch["hist_ratings"]
    mask = (items != PAD).float()
    n = mask.sum(1)
    dev = (ratings - 3.0 - model.item_bias(items).squeeze(-1)) * mask
    centred = (dev - (dev.sum(1) / (n + 5))[:, None]) * mask
    denom = n.clamp(min=1)[:, None]
    implicit = (model.hist_emb(items) * mask[..., None]).sum(1) / denom
    explicit = (model.rated_emb(items) * centred[..., None]).sum(1) / denom
    assert torch.allclose(seen["x"][:, :8], implicit, atol=1e-6)
    assert torch.allclose(seen["x"][:, 8:16], explicit, atol=1e-6)
    assert torch.isfinite(seen["x"]).all() and seen["x"][2, :16].abs().sum() == 0


def test_collator_never_puts_the_target_in_its_own_history():
    inter = toy_interactions()
    vocab = ItemVocabulary(inter["item_id"].unique())
    events = TwoTowerEvents.from_interactions(inter, vocab)
    collate = TwoTowerCollator(events, max_history=8, history_keep=1.0, mean_rating=3.0, seed=0)
    batch = collate([{"event": i} for i in range(len(events))])
    assert (batch["hist_items"] == batch["items"][:, None]).sum() == 0
    assert ((batch["hist_items"] != PAD).sum(1) == 8).all()  # 11 other events, capped at max_history
    first = inter.sort_values(["user_id", "timestamp"]).iloc[0]
    assert batch["ratings"][0].item() == first["rating"]


# --- baselines and the TFRS protocol -------------------------------------------------------------------------


def test_bias_model_recovers_additive_biases():
    rows = [(u, i, 3.0 + bu + bi, 0) for u, bu in [("a", 1.0), ("b", -1.0), ("c", 0.0)]
            for i, bi in [("x", 0.5), ("y", -0.5), ("z", 0.0)]]
    known = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    model = BiasModel.fit(known, BiasConfig(item_reg=0.0, user_reg=0.0, iterations=50))
    scorer = BiasScorer(model)
    pred = scorer.score([History(["x", "y"], [4.5, 3.5])], ["z", "x", "unknown"])
    assert pred[0] == pytest.approx([4.0, 4.5, 4.0], abs=1e-6)  # user a: +1; unknown item: bias 0
    with pytest.raises(ValueError, match="rating"):
        BiasModel.fit(known.drop(columns="rating"))


class _Fixed:
    """Scores items by a fixed order: i0 best."""

    name = "fixed"

    def score(self, histories, candidates):
        row = np.array([-int(str(c)[1:]) for c in candidates], dtype=float)
        return np.tile(row, (len(histories), 1))


def test_topk_accuracy_counts_known_items_unless_excluded():
    split = random_split(toy_dataset(), test_ratio=0.2, seed=42)
    histories = known_histories(split)
    assert all(not set(h) & set(split.test[split.test.user_id == u].item_id) for u, h in histories.items())
    keep, drop = TopKAccuracyEvaluator(split, ks=(5,)), TopKAccuracyEvaluator(split, ks=(5,), exclude_known=True)
    ranks_all, ranks_excl = [], []
    for u, g in split.test.groupby("user_id"):
        known = set(histories.get(u, []))
        for item in g["item_id"]:
            t = int(item[1:])
            ranks_all.append(t)
            ranks_excl.append(sum(1 for j in range(t) if f"i{j}" not in known))
    assert keep(_Fixed())["top5"] == pytest.approx(np.mean(np.array(ranks_all) < 5))
    assert drop(_Fixed())["top5"] == pytest.approx(np.mean(np.array(ranks_excl) < 5))


def test_scorer_ranks_unknown_items_last_and_serves_through_both_indexes(tmp_path):
    split = random_split(toy_dataset(), test_ratio=0.2, seed=42)
    from llmrec.two_tower import train_two_tower

    config = TwoTowerConfig(dim=8, embedding_dim=8, hidden=16, max_steps=3, batch_size=32, save_steps=0,
                            progress=False, output_dir=str(tmp_path / "m"), logging_steps=10**6)
    model, vocab = train_two_tower(split, config)
    scorer = TwoTowerScorer(model, vocab)
    history = History(["i1", "i2"], [4.0, 2.0])
    scores = scorer.score([history], ["i1", "nope", "i3"])
    assert scores.shape == (1, 3) and scores[0, 1] < scores[0, [0, 2]].min()
    per_user = scorer.score([history, History(["i4"], [5.0])], [["i1", "i3"], ["i3", "i1"]])
    assert per_user[0, 0] == pytest.approx(scores[0, 0]) and per_user[0, 1] == pytest.approx(scores[0, 2])
    brute, _ = scorer.retrieve([history], 5, index="brute")
    flat, _ = scorer.retrieve([history], 5, index="flat")
    assert list(brute[0]) == list(flat[0])
    rating = TwoTowerScorer(model, vocab, score="rating").score([history], ["i1", "i3"])
    assert np.isfinite(rating).all()
    loaded, items = TwoTower.from_pretrained(tmp_path / "m")
    assert items == vocab.items
    assert np.allclose(TwoTowerScorer(loaded, ItemVocabulary(items)).score([history], ["i1", "i3"]),
                       scores[:, [0, 2]], atol=1e-5)


def test_text_vectors_give_cold_items_a_vector(tmp_path):
    from llmrec.embed import write_embedding_folder
    from llmrec.two_tower import train_two_tower
    from llmrec.two_tower.train import read_text_vectors

    dataset = toy_dataset()
    split = random_split(dataset, test_ratio=0.2, seed=42)
    ids = [*map(str, dataset.items.index), "cold"]
    vectors = np.random.default_rng(0).normal(size=(len(ids), 6)).astype(np.float32)
    write_embedding_folder(tmp_path / "emb", ids, vectors, {"model_id": "test"})
    config = TwoTowerConfig(dim=8, embedding_dim=8, hidden=16, max_steps=2, batch_size=32, save_steps=0, progress=False,
                            output_dir=str(tmp_path / "m"), text_embeddings=str(tmp_path / "emb"), logging_steps=10**6)
    model, vocab = train_two_tower(split, config)
    scorer = TwoTowerScorer(model, vocab, text_vectors=read_text_vectors(str(tmp_path / "emb")))
    scores = scorer.score([History(["i1"], [4.0])], ["i1", "cold", "nothing"])
    assert scores[0, 2] < min(scores[0, 0], scores[0, 1])  # no ID row, no text: ranked last
    assert math.isfinite(scores[0, 1]) and scores[0, 1] != scores[0, 2]


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="score"):
        TwoTowerConfig(score="both")
    with pytest.raises(ValueError, match="rating_weight"):
        TwoTowerConfig(retrieval_weight=0.0, rating_weight=0.0)


# --- tuning without the test part, the user-ID option, the biased-MF rating term ---------------------------------


def test_validation_carve_out_holds_training_ratings_only_and_test_is_untouched():
    from llmrec.two_tower.data import carve_validation

    split = random_split(toy_dataset(n_users=60), test_ratio=0.2, seed=42)
    carved = carve_validation(split, ratio=0.1, seed=0)
    key = ["user_id", "item_id", "timestamp"]
    as_set = lambda df: set(map(tuple, df[key].astype(str).to_numpy()))  # noqa: E731
    train, valid, test = as_set(split.train), as_set(carved.valid), as_set(split.test)
    assert valid and not valid & test and valid <= train  # never a test rating
    assert not valid & as_set(carved.train) and as_set(carved.train) | valid == train
    assert as_set(carved.test) == test and as_set(carved.known("test")) == train  # retrain = the whole 80%
    assert as_set(carved.known("valid")) == train - valid  # tuning never sees its validation ratings
    assert len(valid) == pytest.approx(0.1 * len(train), rel=0.35)
    assert as_set(carve_validation(split, 0.1, seed=0).valid) == valid  # seeded
    with pytest.raises(ValueError, match="ratio"):
        carve_validation(split, ratio=1.0)
    with pytest.raises(ValueError, match="valid part"):
        carve_validation(carved)


def test_user_id_option_reads_the_users_row_and_unknown_users_fall_back_to_history(tmp_path):
    from llmrec.eval.topk import rating_evaluator
    from llmrec.two_tower import train_two_tower

    split = random_split(toy_dataset(), test_ratio=0.2, seed=42)
    histories = known_histories(split)
    assert isinstance(histories["u3"], History) and histories["u3"].user == "u3"
    assert histories["u3"].last(2).user == "u3" and histories["u3"].last(2).ratings == histories["u3"].ratings[-2:]
    config = TwoTowerConfig(dim=8, embedding_dim=8, hidden=16, max_steps=3, batch_size=32, save_steps=0,
                            progress=False, output_dir=str(tmp_path / "m"), logging_steps=10**6, user_id=True)
    model, vocab = train_two_tower(split, config)
    assert model.user_emb is not None and len(model.user_ids) == split.train.user_id.nunique()
    scorer = TwoTowerScorer(model, vocab)
    same = ["i1", "i2"], [4.0, 2.0]
    a, b = History(*same, user="u1"), History(*same, user="u2")
    stranger, plain = History(*same, user="nobody"), History(*same)
    scores = scorer.score([a, b, stranger, plain], ["i1", "i3", "i5"])
    assert not np.allclose(scores[0], scores[1])  # same history, different users
    assert np.allclose(scores[2], scores[3])  # unknown user = no user: the history alone
    loaded, items = TwoTower.from_pretrained(tmp_path / "m")
    assert loaded.user_ids == model.user_ids
    assert np.allclose(TwoTowerScorer(loaded, ItemVocabulary(items)).score([a, b], ["i1", "i3", "i5"]), scores[:2],
                       atol=1e-5)
    # the rating evaluator passes history.last(None): the user must survive it
    rmse = rating_evaluator(split, show_progress=False)
    seen = []

    class Spy(TwoTowerScorer):
        def score(self, hs, cands):
            seen.extend(getattr(h, "user", None) for h in hs)
            return super().score(hs, cands)

    rmse(Spy(model, vocab, score="rating"))
    assert None not in seen and set(seen) == set(split.test.user_id)


def test_rating_dot_adds_the_dot_product_of_the_tower_outputs():
    torch.manual_seed(0)
    plain = TwoTower(TwoTowerConfig(dim=8, embedding_dim=8, hidden=16), n_items=20, mean_rating=3.5).eval()
    dot = TwoTower(TwoTowerConfig(dim=8, embedding_dim=8, hidden=16, rating_dot=True, rating_dropout=0.5),
                   n_items=20, mean_rating=3.5).eval()
    dot.load_state_dict(plain.state_dict())
    batch = tiny_batch(plain)
    users, offset = plain.user_vectors(batch["hist_items"], batch["hist_ratings"])
    items = plain.item_vectors(batch["items"])
    gap = dot.predict_rating(users, offset, batch["items"], items) - plain.predict_rating(users, offset,
                                                                                         batch["items"], items)
    assert torch.allclose(gap, (users * items).sum(-1), atol=1e-5)  # rating dropout is off in eval mode
    dot.train()
    out = dot(**batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])


def test_epoch_validation_keeps_the_history_and_stops_after_patience():
    from transformers import TrainerControl, TrainerState

    from llmrec.two_tower.validation import EpochValidation

    values = iter([1.0, 0.9, 0.95, 0.97, 0.5])
    callback = EpochValidation(lambda model: {"rmse": next(values)}, "rmse", greater_is_better=False, patience=2)
    model, state, control = torch.nn.Linear(1, 1).train(), TrainerState(), TrainerControl()
    for epoch in range(1, 5):
        state.epoch = float(epoch)
        callback.on_epoch_end(None, state, control, model=model)
        assert model.training  # evaluation must not leave the model in eval mode
        assert control.should_training_stop == (epoch == 4)  # 0.9 at epoch 2, then two worse epochs
    assert callback.best() == {"epoch": 2.0, "rmse": 0.9} and len(callback.history) == 4


# --- real data --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_tower_beats_chance_on_real_movielens(require_data, tmp_path):
    from llmrec.data.registry import load_dataset
    from llmrec.data.schema import subsample_users
    from llmrec.eval.topk import rating_evaluator
    from llmrec.registry import BuildContext, build_scorer

    require_data("ml-100k", "u.data")
    split = random_split(subsample_users(load_dataset("ml-100k", require_data()), 200, seed=0), 0.2, seed=42)
    context = BuildContext(split, show_progress=False)
    options = dict(epochs=2, batch_size=256, save_steps=0, progress=False, logging_steps=10**6,
                   output_dir=str(tmp_path / "tt"))
    scorer = build_scorer("two-tower", context, **options)
    top = TopKAccuracyEvaluator(split, ks=(100,))(scorer)["top100"]
    assert top > 100 / split.dataset.n_items * 2  # well above a random ranking
    rmse = rating_evaluator(split, show_progress=False)(build_scorer("two-tower", context, score="rating",
                                                                     **{**options, "output_dir": str(tmp_path / "r")}))
    assert rmse["rmse"] < 1.3


@pytest.mark.slow
def test_cli_trains_and_evaluates_on_real_data(require_data, tmp_path):
    import json

    from llmrec.cli import main

    require_data("ml-100k", "u.data")
    out = tmp_path / "model"
    code = main(["two-tower", "--dataset", "ml-100k", "--data-dir", str(require_data()), "--max-users", "60",
                 "--split", "leave_one_out", "--mode", "sampled", "--num-negatives", "50", "--max-steps", "5",
                 "--batch-size", "64", "--save-steps", "0", "--no-progress", "--no-show-progress",
                 "--output-dir", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "two-tower" in json.dumps(metrics) and (out / "model.safetensors").is_file()
