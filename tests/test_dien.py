"""DIEN: each GRU cell's equations on a hand-computed case, masking everywhere, the auxiliary loss,
the collator's leakage rules, the CTR pairs, and a real MovieLens run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from llmrec.data.vocabulary import PAD, ItemVocabulary
from llmrec.dien import DIEN, DIENCollator, DIENConfig, DIENExamples, DIENScorer, InterestCell, run_cell
from llmrec.dien.data import category_rows, item_categories
from llmrec.dien.model import masked_softmax

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def one_dim_cell(mode: str) -> InterestCell:
    """A 1-in, 1-hidden cell with W = (0.5, -1, 2) (update, reset, candidate), b = (0.1, 0.2, -0.3),
    U = (1.5, 0.5, -2)."""
    cell = InterestCell(1, 1, mode)
    with torch.no_grad():
        cell.x2h.weight.copy_(torch.tensor([[0.5], [-1.0], [2.0]]))
        cell.x2h.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
        cell.h2h.weight.copy_(torch.tensor([[1.5], [0.5], [-2.0]]))
    return cell


X, H, A = 0.8, 0.4, 0.25
U = sigmoid(0.5 * X + 0.1 + 1.5 * H)                       # update gate
R = sigmoid(-1.0 * X + 0.2 + 0.5 * H)                      # reset gate
H_TILDE = math.tanh(2.0 * X - 0.3 + R * (-2.0 * H))        # candidate state


@pytest.mark.parametrize(("mode", "gate"), [("gru", U), ("agru", A), ("augru", A * U)])
def test_cell_equations_on_a_hand_computed_case(mode, gate):
    cell = one_dim_cell(mode)
    att = torch.tensor([A]) if mode != "gru" else None
    got = cell(torch.tensor([[X]]), torch.tensor([[H]]), att).item()
    assert got == pytest.approx((1 - gate) * H + gate * H_TILDE, abs=1e-6)


def test_gru_cell_matches_pytorch_gru_with_its_update_gate_flipped():
    torch.manual_seed(0)
    cell, ref = InterestCell(3, 4, "gru"), torch.nn.GRUCell(3, 4)
    # PyTorch orders the gates (reset, z, new) and keeps z = 1 - u of the old state; sigmoid(-a) = 1 - sigmoid(a)
    with torch.no_grad():
        wu, wr, wh = cell.x2h.weight.chunk(3)
        bu, br, bh = cell.x2h.bias.chunk(3)
        uu, ur, uh = cell.h2h.weight.chunk(3)
        ref.weight_ih.copy_(torch.cat([wr, -wu, wh]))
        ref.bias_ih.copy_(torch.cat([br, -bu, bh]))
        ref.weight_hh.copy_(torch.cat([ur, -uu, uh]))
        ref.bias_hh.zero_()
    x, h = torch.randn(5, 3), torch.randn(5, 4)
    assert torch.allclose(cell(x, h), ref(x, h), atol=1e-6)


def test_attention_gated_cells_need_scores_and_reject_unknown_modes():
    with pytest.raises(ValueError, match="attention"):
        one_dim_cell("augru")(torch.tensor([[X]]), torch.tensor([[H]]))
    with pytest.raises(ValueError, match="mode"):
        InterestCell(1, 1, "lstm")


def test_padded_steps_leave_the_state_unchanged():
    torch.manual_seed(0)
    cell = InterestCell(3, 3, "augru")
    x, att = torch.randn(2, 5, 3), torch.rand(2, 5)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    outputs, last = run_cell(cell, x, mask, att)
    _, short = run_cell(cell, x[:1, :3], mask[:1, :3], att[:1, :3])
    assert torch.allclose(last[0], short[0], atol=1e-6)
    assert torch.allclose(outputs[0, 2], last[0]) and (outputs[0, 3:] == 0).all()


def test_masked_softmax_ignores_padding_and_never_gives_nan():
    scores = torch.tensor([[1.0, 2.0, 50.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = masked_softmax(scores, mask)
    assert out[0, 2] == 0 and out[0, :2].sum().item() == pytest.approx(1.0)
    assert torch.allclose(out[0, :2], torch.softmax(scores[0, :2], 0))
    assert (out[1] == 0).all()


def tiny_model(evolution: str, aux: bool = True) -> DIEN:
    torch.manual_seed(0)
    config = DIENConfig(embedding_dim=4, attention_hidden=8, mlp=[8], evolution=evolution, aux_loss=aux)
    return DIEN(config, n_items=12, n_categories=4).eval()


@pytest.mark.parametrize("evolution", ["gru", "aigru", "agru", "augru"])
def test_click_logits_ignore_padding(evolution):
    model = tiny_model(evolution)
    hist, cats = torch.tensor([[3, 5, 7, PAD], [2, 4, PAD, PAD]]), torch.tensor([[1, 2, 1, PAD], [3, 1, PAD, PAD]])
    wide = F.pad(hist, (0, 3)), F.pad(cats, (0, 3))
    target, tcat = torch.tensor([9, 6]), torch.tensor([2, 1])
    a = model(hist, cats, target, tcat)["logits"]
    b = model(*wide, target, tcat)["logits"]
    alone = model(hist[1:, :2], cats[1:, :2], target[1:], tcat[1:])["logits"]
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a[1:], alone, atol=1e-6)
    # score_candidates runs the extractor once per history and gives the same logits
    cands = model.score_candidates(hist, cats, target[:, None], tcat[:, None])[:, 0]
    assert torch.allclose(cands, a, atol=1e-6)


def test_auxiliary_loss_is_bce_of_next_click_against_the_sampled_one():
    model = tiny_model("augru")
    hist_items, cats = torch.tensor([[3, 5, 7, PAD]]), torch.tensor([[1, 2, 1, PAD]])
    neg_items, neg_cats = torch.tensor([[8, 9, 10, 11]]), torch.tensor([[1, 1, 2, 3]])
    mask = hist_items != PAD
    hist = model.embed(hist_items, cats)
    states = model.extract(hist, mask)
    negatives = model.embed(neg_items, neg_cats)
    got = model.auxiliary_loss(states, hist, negatives, mask)
    # by hand: steps 0 and 1 have a next click (steps 1 and 2); step 2's next is padding
    g = model.aux_net
    pos = torch.stack([g(torch.cat([states[0, t], hist[0, t + 1]])) for t in (0, 1)]).squeeze(-1)
    neg = torch.stack([g(torch.cat([states[0, t], negatives[0, t + 1]])) for t in (0, 1)]).squeeze(-1)
    expected = -(F.logsigmoid(pos).mean() + F.logsigmoid(-neg).mean())
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)
    # the negative at a padded step plays no part
    changed = model.auxiliary_loss(states, hist, model.embed(torch.tensor([[8, 9, 10, 2]]), neg_cats), mask)
    assert changed.item() == pytest.approx(got.item(), abs=1e-7)


@pytest.mark.parametrize("aux", [True, False])
def test_total_loss_adds_the_weighted_auxiliary_loss_only_when_on(aux):
    model = tiny_model("augru", aux=aux).train()
    batch = dict(hist_items=torch.tensor([[3, 5, 7]]), hist_cats=torch.tensor([[1, 2, 1]]),
                 target_item=torch.tensor([9]), target_cat=torch.tensor([2]), labels=torch.tensor([1.0]),
                 neg_items=torch.tensor([[8, 9, 10]]), neg_cats=torch.tensor([[1, 1, 2]]))
    out = model(**batch)
    expected = out["ctr_loss"] + (model.config.aux_weight * out["aux_loss"] if aux else 0.0)
    assert out["loss"].item() == pytest.approx(float(expected), abs=1e-6)
    assert ("aux_loss" in out) == aux


def events_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", 5.0, 100 * u + t) for u in range(20)
            for t, i in enumerate(rng.choice(30, 8, replace=False))]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_examples_hold_only_earlier_events_and_negatives_are_never_the_label():
    events = events_frame()
    vocab = ItemVocabulary(events["item_id"].unique())
    examples = DIENExamples.from_interactions(events, vocab)
    assert len(examples) == 2 * 20 * 7  # every event after a user's first, positive and negative
    collate = DIENCollator(examples, np.arange(len(vocab)) % 3 + 1, max_len=4, seed=0)
    batch = collate([examples[k] for k in range(len(examples))])
    for k in range(len(examples)):
        user, t = examples.targets[k // 2]
        seq = examples.sequences[user]
        real = batch["hist_items"][k][batch["hist_items"][k] != PAD].numpy()
        assert list(real) == list(seq[max(0, t - 4):t])  # the most recent earlier events, in order
        if k % 2:  # the negative: not the clicked item, not in the history
            assert batch["target_item"][k] != seq[t] and batch["target_item"][k] not in real
            assert batch["labels"][k] == 0
        else:
            assert batch["target_item"][k] == seq[t] and batch["labels"][k] == 1
        assert not np.isin(batch["neg_items"][k][: len(real)].numpy(), real).any()


def test_negatives_include_catalogue_items_without_events_as_padding_with_their_category():
    events = events_frame()
    vocab = ItemVocabulary(events["item_id"].unique())
    examples = DIENExamples.from_interactions(events, vocab)
    cold = np.full(200, 3)  # far more cold catalogue items than known ones: most negatives are cold
    collate = DIENCollator(examples, np.ones(len(vocab), dtype=np.int64), max_len=4, seed=0, cold_categories=cold)
    batch = collate([examples[k] for k in range(len(examples))])
    is_cold = batch["target_item"] == PAD
    assert is_cold.any() and (batch["labels"][is_cold] == 0).all()  # a click always has its ID row
    assert (batch["target_cat"][is_cold] == 3).all() and (batch["target_cat"][~is_cold] == 1).all()


def test_item_categories_take_the_first_genre():
    items = pd.DataFrame({"genres": ["Comedy, Drama", "Drama", None]}, index=["a", "b", "c"])
    cats = item_categories(items, "genres")
    assert cats["b"] != cats["a"] and cats["c"] not in (cats["a"], cats["b"]) and min(cats.values()) >= 1
    assert set(item_categories(items, "missing").values()) == {1}
    assert list(category_rows(cats, ItemVocabulary(["b", "a"]))) == [PAD, cats["a"], cats["b"]]


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="evolution"):
        DIENConfig(evolution="lstm")
    with pytest.raises(ValueError, match="mlp"):
        DIENConfig(mlp=[0])


@pytest.mark.slow
def test_dien_trains_and_evaluates_on_real_movielens_clicks(require_data, tmp_path):
    from llmrec.data.ctr import clicks_dataset
    from llmrec.data.registry import load_dataset
    from llmrec.data.schema import subsample_users
    from llmrec.data.splits import leave_one_out_split
    from llmrec.eval.ctr import ctr_evaluator
    from llmrec.registry import BuildContext, build_scorer

    require_data("ml-100k", "u.data")
    data = clicks_dataset(subsample_users(load_dataset("ml-100k", require_data()), 120, seed=0))
    assert (data.interactions["rating"] >= 4).all()
    split = leave_one_out_split(data)
    evaluator = ctr_evaluator(split, show_progress=False)
    labels = evaluator.values
    assert labels.sum() == len(labels) / 2  # one sampled non-click per held-out click
    # pairs come as (click, sampled non-click) with one history: the negative is never the click or in the history
    for k in range(0, len(labels), 2):
        assert labels[k] == 1 and labels[k + 1] == 0 and evaluator.histories[k] == evaluator.histories[k + 1]
        assert evaluator.items[k + 1] != evaluator.items[k] and evaluator.items[k + 1] not in evaluator.histories[k]
    scorer = build_scorer("dien", BuildContext(split, show_progress=False), max_steps=40, batch_size=64,
                          save_steps=0, progress=False, logging_steps=10**6, output_dir=str(tmp_path / "d"))
    assert isinstance(scorer, DIENScorer)
    result = evaluator(scorer)
    assert 0.0 <= result["auc"] <= 1.0 and result["logloss"] is not None
    model, items, categories = DIEN.from_pretrained(tmp_path / "d")
    pairs = evaluator.histories[:4], [[i] for i in evaluator.items[:4]]
    again = DIENScorer(model, ItemVocabulary(items), categories).score(*pairs)
    assert np.allclose(again[:, 0], scorer.score(*pairs)[:, 0])


def test_click_pairs_are_seeded_and_never_sample_the_click_or_the_history():
    from llmrec.data.ctr import clicks_dataset
    from llmrec.data.schema import Dataset
    from llmrec.data.splits import leave_one_out_split
    from llmrec.eval.ctr import ctr_evaluator

    events = events_frame()
    events["rating"] = np.where(np.arange(len(events)) % 3 == 0, 2.0, 5.0)
    items = pd.DataFrame({"title": [f"i{i}" for i in range(30)]}, index=[f"i{i}" for i in range(30)])
    items.index.name = "item_id"
    clicks = clicks_dataset(Dataset("toy", events, items))
    assert (clicks.interactions["rating"] > 3).all() and len(clicks.interactions) < len(events)
    split = leave_one_out_split(clicks)
    a, b = ctr_evaluator(split, negatives=2, seed=7), ctr_evaluator(split, negatives=2, seed=7)
    assert a.items == b.items and list(a.values) == [1, 0, 0] * (len(a.items) // 3)
    for k in range(0, len(a.items), 3):
        history, click = a.histories[k], a.items[k]
        assert click == split.test.set_index("user_id").loc[split.test.user_id.iloc[k // 3], "item_id"]
        assert all(n != click and n not in history for n in a.items[k + 1:k + 3])
    with pytest.raises(ValueError, match="negatives"):
        ctr_evaluator(split, negatives=0)


@pytest.mark.slow
def test_cli_trains_and_evaluates_on_real_data(require_data, tmp_path):
    import json

    from llmrec.cli import main

    require_data("ml-100k", "u.data")
    out = tmp_path / "model"
    code = main(["dien", "--dataset", "ml-100k", "--data-dir", str(require_data()), "--max-users", "60",
                 "--split", "leave_one_out", "--task", "pointwise", "--max-steps", "5", "--batch-size", "64",
                 "--save-steps", "0", "--no-progress", "--no-show-progress", "--output-dir", str(out)])
    assert code == 0
    assert "auc" in json.dumps(json.loads((out / "metrics.json").read_text()))
