"""SASRec: causal masking, a vocabulary of training items only, cold items scored last, tiny
training beats the untrained model (both objectives), save / load round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec.data.schema import Dataset
from llmrec.data.splits import leave_one_out_split, temporal_split
from llmrec.eval import EvalConfig, RankingEvaluator
from llmrec.sasrec import ItemVocabulary, SASRec, SASRecCollator, SASRecConfig, SASRecScorer, train_sasrec
from llmrec.sasrec.model import PAD


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CPU extra threads spin
    against other processes (measured 10-20x slower here); restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)



def chain_dataset(n_users: int = 200, n_items: int = 40, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Users walk item k, k + 1, k + 2, ... from a random start, with random jumps: the next item
    is predictable from the last one, which only a sequence model can learn."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        k = int(rng.integers(n_items))
        for step in range(int(rng.integers(5, 12))):
            item = k if rng.random() >= noise else int(rng.integers(n_items))
            rows.append({"user_id": f"u{u}", "item_id": f"i{item}", "timestamp": step})
            k = (k + 1) % n_items
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(n_items)], "title": [f"item {k}" for k in range(n_items)]})
    return Dataset("synthetic-chain", pd.DataFrame(rows), items)


def small_config(tmp_path, **overrides) -> SASRecConfig:
    values = dict(d_model=32, n_heads=2, n_layers=1, dropout=0.0, max_len=20, epochs=10, batch_size=32,
                  learning_rate=3e-3, output_dir=str(tmp_path / "run"), save_steps=0, progress=False,
                  logging_steps=10_000)
    values.update(overrides)
    return SASRecConfig(**values)


def test_hidden_state_at_t_ignores_later_items(tmp_path):
    torch.manual_seed(0)
    model = SASRec(small_config(tmp_path, n_layers=2), n_items=30).eval()
    ids = torch.randint(1, 30, (3, 8))
    changed = ids.clone()
    changed[:, 5:] = torch.randint(1, 30, (3, 3))
    changed[:, 5:] = torch.where(changed[:, 5:] == ids[:, 5:], changed[:, 5:] % 29 + 1, changed[:, 5:])
    h, h_changed = model.hidden(ids), model.hidden(changed)
    torch.testing.assert_close(h[:, :5], h_changed[:, :5])
    assert not torch.allclose(h[:, 5:], h_changed[:, 5:])


def test_vocabulary_holds_only_training_items_and_cold_items_score_last(tmp_path):
    data = chain_dataset(n_users=60)
    extra = pd.DataFrame({"user_id": ["u0", "u1"], "item_id": ["brand-new", "brand-new"], "timestamp": [999, 999]})
    data = Dataset(data.name, pd.concat([data.interactions, extra]),
                   pd.concat([data.items, pd.DataFrame({"title": ["a new item"]}, index=["brand-new"])]))
    split = temporal_split(data, test_ratio=0.2)
    vocabulary = ItemVocabulary.from_split(split, part="test")
    assert set(vocabulary.items) == set(split.train["item_id"])
    assert "brand-new" in split.cold_items("test") and "brand-new" not in vocabulary
    assert vocabulary.row("brand-new") == PAD

    model, vocabulary = train_sasrec(split, small_config(tmp_path, max_steps=3))
    assert model.n_items == len(vocabulary) == len(set(split.train["item_id"])) + 1
    scorer = SASRecScorer(model, vocabulary)
    cands = ["i1", "brand-new", "i2", "not-even-in-catalogue"]
    scores = scorer.score([["i0", "brand-new"], []], cands)
    assert np.isfinite(scores).all()
    assert scores[0, 1] < scores[0, [0, 2]].min() and scores[0, 3] < scores[0, [0, 2]].min()
    # The unknown history item is skipped: the same user embedding as without it.
    np.testing.assert_allclose(scorer.score([["i0"]], cands), scores[:1], rtol=1e-6)
    per_user = scorer.score([["i0", "brand-new"], ["i3"]], [cands, cands[::-1]])
    np.testing.assert_allclose(per_user[0], scores[0], rtol=1e-6)


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_training_beats_the_untrained_model(loss, tmp_path):
    split = leave_one_out_split(chain_dataset())
    config = small_config(tmp_path, loss=loss)
    evaluator = RankingEvaluator(split, EvalConfig(show_progress=False))
    vocabulary = ItemVocabulary.from_split(split)
    torch.manual_seed(1)
    before = evaluator(SASRecScorer(SASRec(config, len(vocabulary)), vocabulary))["ndcg@10"]
    model, vocabulary = train_sasrec(split, config)
    after = evaluator(SASRecScorer(model, vocabulary))["ndcg@10"]
    assert after > before + 0.2, (before, after)


def test_bce_negatives_avoid_the_window(tmp_path):
    collate = SASRecCollator(n_items=12, sample_negatives=True, seed=0)
    batch = collate([{"items": np.array([1, 2, 3, 4, 5])}, {"items": np.array([6, 7])}])
    assert batch["input_ids"].tolist()[1] == [6, 0, 0, 0] and batch["labels"].tolist()[1] == [7, -100, -100, -100]
    negatives = batch["negatives"]
    assert not np.isin(negatives[0].numpy(), [1, 2, 3, 4, 5]).any()
    assert not np.isin(negatives[1, :1].numpy(), [6, 7]).any()
    assert ((negatives >= 1) & (negatives < 12)).all()


def test_save_and_load_restore_weights_and_vocabulary(tmp_path):
    split = leave_one_out_split(chain_dataset(n_users=50))
    model, vocabulary = train_sasrec(split, small_config(tmp_path, max_steps=4))
    loaded, items = SASRec.from_pretrained(tmp_path / "run")
    assert items == vocabulary.items
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    histories = [["i1", "i2"], ["i7"]]
    np.testing.assert_allclose(SASRecScorer(loaded, ItemVocabulary(items)).score(histories, vocabulary.items),
                               SASRecScorer(model, vocabulary).score(histories, vocabulary.items), rtol=1e-5)
