"""The embedding ranker: cosine between a user's mean history embedding and each candidate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from llmrec.embed import load_sentence_encoder, render_item_texts
from llmrec.generation import EmbeddingRanker, EmbeddingRankerConfig
from llmrec.scoring import Scorer, check_scores

CATALOGUE = pd.DataFrame(
    {
        "title": [
            "Star Wars: A New Hope",
            "Sleepless in Seattle",
            "Digital Caliper Stainless Steel 6 Inch",
            "Nitrile Examination Gloves Box of 100",
            "Star Wars: A New Hope (Special Edition)",  # cold: nobody has interacted with it
            "Pride and Prejudice",
        ],
        "genres": ["space opera, science fiction", "romance, comedy", None, None,
                   "space opera, science fiction", "romance, drama"],
    },
    index=pd.Index(["sw", "sleepless", "caliper", "gloves", "sw-se", "pride"], name="item_id"),
)


# Tiny models spend their time in thread hand-offs: one torch thread (conftest) is far faster.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CountingEncoder:
    def __init__(self, inner):
        self.inner, self.model_id, self.dim, self.calls = inner, inner.model_id, inner.dim, 0

    def encode(self, texts, batch_size=64, show_progress=True):
        self.calls += 1
        return self.inner.encode(texts, batch_size=batch_size, show_progress=show_progress)


@pytest.fixture(scope="module")
def tiny(tiny_sentence_model):
    return load_sentence_encoder(str(tiny_sentence_model), device="cpu")


@pytest.fixture
def config(tmp_path):
    return EmbeddingRankerConfig(cache_dir=str(tmp_path / "cache"), show_progress=False, batch_size=4)


@pytest.fixture
def ranker(tiny, config):
    return EmbeddingRanker(CATALOGUE, config, encoder=tiny)


def cosine_reference(encoder, history_texts, candidate_texts, weights=None):
    """Scores computed independently of the ranker: encode, (weighted) mean, normalise, dot."""
    h = encoder.encode(history_texts, show_progress=False)
    user = np.average(h, axis=0, weights=weights)
    user /= np.linalg.norm(user)
    return encoder.encode(candidate_texts, show_progress=False) @ user


def test_config_has_help_text_and_validates():
    for f in dataclasses.fields(EmbeddingRankerConfig):
        assert f.metadata.get("help"), f"{f.name} has no help text"
    # The default cache lives under the one llmrec cache root ($LLMREC_CACHE_DIR or ~/.cache/llmrec).
    from llmrec.utils.paths import cache_root

    assert EmbeddingRankerConfig().cache_dir == str(cache_root() / "embeddings")
    with pytest.raises(ValueError, match="batch_size"):
        EmbeddingRankerConfig(batch_size=0)
    with pytest.raises(ValueError, match="half-life"):
        EmbeddingRankerConfig(recency_decay=0)


def test_cold_item_with_near_identical_text_ranks_first(ranker):
    assert isinstance(ranker, Scorer)
    candidates = ["sleepless", "caliper", "gloves", "sw-se", "pride"]
    scores = check_scores(ranker.score([["sw"]], candidates), 1, 5, ranker.name)
    assert candidates[int(np.argmax(scores[0]))] == "sw-se"


def test_scores_are_cosines_of_the_mean_history(ranker, tiny):
    texts = ranker.item_texts
    history = ["sw", "caliper"]
    candidates = ["sleepless", "gloves", "sw-se"]
    expected = cosine_reference(tiny, [texts[h] for h in history], [texts[c] for c in candidates])
    np.testing.assert_allclose(ranker.score([history], candidates)[0], expected, atol=1e-5)
    assert texts["caliper"] == "Digital Caliper Stainless Steel 6 Inch"  # a missing genre adds nothing


def test_shared_and_per_user_candidates_agree(ranker):
    histories = [["sw"], ["sleepless", "pride"], ["gloves", "caliper", "sw"]]
    shared = ["sw-se", "pride", "caliper", "gloves"]
    full = ranker.score(histories, shared)
    per_user = [["pride", "sw-se"], ["caliper", "pride"], ["gloves", "sw-se"]]
    scores = ranker.score(histories, per_user)
    column = {item: j for j, item in enumerate(shared)}
    for u, items in enumerate(per_user):
        np.testing.assert_allclose(scores[u], [full[u, column[i]] for i in items], atol=1e-6)
    with pytest.raises(ValueError, match="equal length"):
        ranker.score(histories[:2], [["pride"], ["caliper", "pride"]])


def test_recency_decay_weights_recent_events_more(tiny, config):
    config.recency_decay = 1.0
    ranker = EmbeddingRanker(CATALOGUE, config, encoder=tiny)
    texts = ranker.item_texts
    history = ["caliper", "sleepless", "sw"]  # oldest first
    weights = 0.5 ** (np.array([2, 1, 0]) / 1.0)
    candidates = ["sw-se", "pride", "gloves"]
    expected = cosine_reference(tiny, [texts[h] for h in history], [texts[c] for c in candidates], weights)
    np.testing.assert_allclose(ranker.score([history], candidates)[0], expected, atol=1e-5)
    # The same events in the other order change the scores: order matters only with decay.
    assert not np.allclose(ranker.score([history[::-1]], candidates), ranker.score([history], candidates))


def test_empty_history_and_unknown_items_are_handled(ranker):
    scores = ranker.score([[], ["not-in-catalogue"], ["sw", "not-in-catalogue"]], ["sw-se", "ghost", "pride"])
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores[0], [0.0, EmbeddingRanker.UNKNOWN_SCORE, 0.0])
    np.testing.assert_array_equal(scores[1], scores[0])  # only unknown history: no direction either
    # A batch of one and a batch of three may round float32 differently (~1e-7).
    np.testing.assert_allclose(scores[2], ranker.score([["sw"]], ["sw-se", "ghost", "pride"])[0], rtol=1e-6)
    assert ranker.score([], ["sw"]).shape == (0, 1)
    assert ranker.score([["sw"]], []).shape == (1, 0)


def test_rebuilding_over_the_same_catalogue_encodes_nothing(tiny, config):
    first = CountingEncoder(tiny)
    EmbeddingRanker(CATALOGUE, config, encoder=first)
    assert first.calls == 1
    second = CountingEncoder(tiny)
    again = EmbeddingRanker(CATALOGUE, config, encoder=second)
    assert second.calls == 0 and again.cache_stats["hits"] == len(CATALOGUE)


def test_cold_start_items_need_only_text(ranker):
    new = pd.DataFrame({"title": ["Star Wars: A New Hope (4K remaster)"], "genres": ["space opera, science fiction"]},
                       index=pd.Index(["sw-4k"], name="item_id"))
    vector = ranker.embed_items([render_item_texts(new)["sw-4k"]])
    assert vector.shape == (1, ranker.encoder.dim)
    ranker.add_items(new)
    np.testing.assert_allclose(ranker.item_vectors[-1], vector[0], atol=1e-6)
    scores = ranker.score([["sw"]], ["pride", "gloves", "sw-4k", "caliper"])
    assert int(np.argmax(scores[0])) == 2
    with pytest.raises(ValueError, match="already in the catalogue"):
        ranker.add_items(new)


def test_without_a_disk_cache(tiny, tmp_path):
    config = EmbeddingRankerConfig(cache_dir=None, show_progress=False)
    ranker = EmbeddingRanker(CATALOGUE, config, encoder=tiny)
    assert ranker.item_vectors.shape == (len(CATALOGUE), tiny.dim)
    assert ranker.cache_stats["misses"] == len(CATALOGUE)


def test_real_movielens_catalogue_full_ranking(require_data, tiny, config):
    """All 1,682 real ML-100K movies; full ranking for real users' histories."""
    from llmrec.data.loaders.movielens_100k import load_ml_100k

    dataset = load_ml_100k(require_data("ml-100k"))
    ranker = EmbeddingRanker(dataset, config, encoder=tiny)  # a Dataset renders with its own template
    assert ranker.item_vectors.shape == (1682, tiny.dim)
    assert ranker.item_texts["1"] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    histories = [group.tolist()[:20] for _, group in dataset.interactions.groupby("user_id")["item_id"]][:50]
    catalogue = list(dataset.items.index)
    scores = check_scores(ranker.score(histories, catalogue), 50, 1682, ranker.name)
    # A history item is (nearly) its own best match: its column tops the mean for 1-item users.
    single = ranker.score([[h[0]] for h in histories], catalogue)
    assert (np.asarray(catalogue)[single.argmax(axis=1)] == [h[0] for h in histories]).mean() >= 0.9
    assert scores.std() > 0


@pytest.mark.slow
def test_minilm_ranks_sci_fi_above_romance_for_a_sci_fi_fan(require_data, tmp_path):
    from llmrec.data.loaders.movielens_100k import load_ml_100k

    items = load_ml_100k(require_data("ml-100k")).items
    ranker = EmbeddingRanker(items, EmbeddingRankerConfig(cache_dir=str(tmp_path), show_progress=False))
    by_title = {title: item for item, title in items["title"].items()}
    history = [by_title[t] for t in ["Star Wars (1977)", "Empire Strikes Back, The (1980)", "Alien (1979)",
                                     "Terminator 2: Judgment Day (1991)", "Blade Runner (1982)"]]
    sci_fi = [by_title[t] for t in ["Star Trek: First Contact (1996)", "Contact (1997)",
                                    "Independence Day (ID4) (1996)"]]
    romance = [by_title[t] for t in ["Sleepless in Seattle (1993)", "While You Were Sleeping (1995)",
                                     "Sense and Sensibility (1995)"]]
    scores = ranker.score([history], sci_fi + romance)[0]
    assert scores[:3].min() > scores[3:].max(), dict(zip(sci_fi + romance, scores.round(3)))
