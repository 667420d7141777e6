"""LLMRank candidates: the sampled protocol, the recall channels and multi-channel merging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data.schema import Dataset
from llmrec.data.splits import make_split
from llmrec.llmrank.bootstrap import ranking_metrics
from llmrec.llmrank.candidates import (
    MultiChannelRecall,
    llmrank_protocol,
    place_target,
    protocol_cases,
    recall_report,
)
from llmrec.llmrank.recall import (
    CHANNELS,
    BM25Channel,
    EmbeddingChannel,
    ItemCFChannel,
    PopularityChannel,
    RecallContext,
    ScorerChannel,
    build_channel,
    register_channel,
)
from llmrec.popularity import PopularityScorer

TITLES = {
    "1": "Super Mario Odyssey", "2": "Mario Kart 8 Deluxe", "3": "Super Mario Party", "4": "Zelda Breath of the Wild",
    "5": "Zelda Link's Awakening", "6": "Halo Infinite", "7": "Halo 5 Guardians", "8": "Forza Horizon 5",
    "9": "Gran Turismo 7", "10": "Tetris Effect", "11": "Celeste", "12": "Hades", "13": "Stardew Valley",
    "14": "Doom Eternal", "15": "Quake Champions", "16": "Portal 2",
}


def _interactions() -> pd.DataFrame:
    """Mario fans, Halo/racing fans and indie fans, with a popular item everyone touches (10)."""
    seqs = {
        "u1": ["1", "2", "10", "3"], "u2": ["2", "1", "3", "10"], "u3": ["1", "3", "2"],
        "u4": ["6", "7", "10", "8"], "u5": ["7", "6", "8", "9"], "u6": ["6", "8", "9", "7"],
        "u7": ["11", "12", "10", "13"], "u8": ["12", "11", "13", "16"], "u9": ["4", "5", "10", "1"],
        "u10": ["14", "15", "10", "6"],
    }
    rows = [(u, i, t) for u, items in seqs.items() for t, i in enumerate(items)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    items = pd.DataFrame({"item_id": list(TITLES), "title": list(TITLES.values())})
    return Dataset(name="toy-games", interactions=_interactions(), items=items, domain="game")


@pytest.fixture(scope="module")
def split(dataset):
    return make_split(dataset, "leave_one_out")


@pytest.fixture(scope="module")
def ctx(split, dataset) -> RecallContext:
    return RecallContext(train=split.known("test"), items=dataset.items, item_text=TITLES)


# --- the LLMRank protocol -----------------------------------------------------------------------

def test_protocol_lists_hold_the_target_once_among_random_items_outside_the_history(split):
    evaluator = llmrank_protocol(split, n_candidates=6, seed=3, show_progress=False)
    cases = protocol_cases(evaluator)
    assert len(cases) == 10
    positions = []
    for hist, targets, cands in zip(cases.histories, cases.targets, cases.candidates):
        assert len(cands) == 6 and len(set(cands)) == 6
        assert sum(c in targets for c in cands) == 1
        assert not set(cands) & (set(hist) - set(targets))
        positions.append(cands.index(targets[0]))
    assert len(set(positions)) > 1  # shuffled, not always in one place
    again = protocol_cases(llmrank_protocol(split, n_candidates=6, seed=3, show_progress=False))
    assert again.candidates == cases.candidates  # seeded
    other = protocol_cases(llmrank_protocol(split, n_candidates=6, seed=4, show_progress=False))
    assert other.candidates != cases.candidates


def test_protocol_subsamples_users_by_seed(split):
    cases = protocol_cases(llmrank_protocol(split, n_candidates=4, max_users=3, seed=0, show_progress=False))
    assert len(cases) == 3
    with pytest.raises(ValueError):
        llmrank_protocol(split, n_candidates=1)


def test_place_target():
    assert place_target(["a", "b", "c"], "t", 0) == ["t", "a", "b", "c"]
    assert place_target(["a", "b", "c"], "t", 3) == ["a", "b", "c", "t"]
    with pytest.raises(ValueError):
        place_target(["a"], "t", 5)


def test_ranking_metrics_count_a_missing_target_as_a_miss():
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    m = ranking_metrics(scores, [["a", "b", "c"], ["d", "e", "f"]], [["a"], ["zzz"]], ks=(1, 3))
    assert m["ndcg@1"] == 0.5 and m["hr@3"] == 0.5


# --- channels -----------------------------------------------------------------------------------

def test_popularity_channel_recalls_the_most_popular_unseen_items(ctx, split):
    ch = PopularityChannel(ctx.train)
    top = ch.recall([["10"], []], 3)
    counts = split.known("test")["item_id"].value_counts()
    assert "10" not in top[0]
    assert top[1][0] == counts.index[0]
    np.testing.assert_allclose(ch.score([[]], [["10", "16", "nope"]])[0],
                               [counts["10"], counts.get("16", 0), 0.0])


def test_itemcf_recalls_co_occurring_items(ctx):
    ch = ItemCFChannel(ctx.train)
    mario = ch.recall([["1", "2"]], 2)[0]
    assert mario[0] == "3"  # always seen with 1 and 2
    halo = ch.recall([["6", "7"]], 2)[0]
    assert set(halo) <= {"8", "9", "10"} and halo[0] == "8"
    # An unknown history item is ignored, an unknown candidate scores 0.
    assert ch.score([["zzz"]], [["1", "2"]]).tolist() == [[0.0, 0.0]]


def test_bm25_recalls_by_text_and_leaves_the_history_out(ctx):
    ch = BM25Channel(ctx.item_text)
    got = ch.recall([["4"]], 2)[0]  # "Zelda Breath of the Wild"
    assert got[0] == "5" and "4" not in got  # the other Zelda
    halo = ch.recall([["6"]], 1)[0]
    assert halo == ["7"]
    # No query words (empty history) -> no preference, still k items.
    assert len(ch.recall([[]], 3)[0]) == 3


def test_a_scorer_becomes_a_channel_and_channels_can_be_registered(ctx):
    wrapped = ScorerChannel("pop-wrapped", PopularityScorer(ctx.train), ctx.vocabulary)
    native = PopularityChannel(ctx.train)
    hist = [["10", "1"], ["6"]]
    got, want = wrapped.recall(hist, 4), native.recall(hist, 4)
    counts = ctx.train["item_id"].value_counts()
    for g, w in zip(got, want):
        assert [counts.get(i, 0) for i in g] == [counts.get(i, 0) for i in w]  # same up to ties
    register_channel("pop-wrapped", lambda c, **_: ScorerChannel("pop-wrapped", PopularityScorer(c.train),
                                                                  c.vocabulary))
    try:
        assert build_channel("pop-wrapped", ctx).name == "pop-wrapped"
    finally:
        CHANNELS.pop("pop-wrapped")
    with pytest.raises(ValueError, match="unknown recall channel"):
        build_channel("sasrec-not-yet", ctx)


class BagOfWordsEncoder:
    """A real (if crude) text encoder: hashed word counts, L2-normalised."""

    model_id = "bow-test"
    dim = 64

    def encode(self, texts, batch_size=64, show_progress=True):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in str(text).lower().split():
                out[row, sum(map(ord, word)) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def test_embedding_channel_recalls_similar_text(ctx):
    from llmrec.generation.config import EmbeddingRankerConfig
    from llmrec.generation.model import EmbeddingRanker

    ranker = EmbeddingRanker(ctx.items, EmbeddingRankerConfig(cache_dir=None, show_progress=False),
                             encoder=BagOfWordsEncoder())
    ch = EmbeddingChannel(ranker)
    got = ch.recall([["1", "2"]], 1)[0]
    assert got == ["3"]  # "Super Mario Party" shares the most words with the history
    np.testing.assert_allclose(ch.score([["1"]], [["3", "14"]]), ranker.score([["1"]], [["3", "14"]]))


# --- multi-channel merging ----------------------------------------------------------------------

class FixedChannel:
    def __init__(self, name, lists):
        self.name = name
        self.lists = lists

    def recall(self, histories, k):
        return [lst[:k] for lst in self.lists[: len(histories)]]

    def score(self, histories, candidates):  # pragma: no cover - not used here
        raise NotImplementedError


def test_merge_interleaves_by_rank_counts_duplicates_and_refills():
    a = FixedChannel("a", [["x1", "x2", "x3", "x4", "x5", "x6"]])
    b = FixedChannel("b", [["x1", "y2", "x2", "y4", "y5", "y6"]])
    merged = MultiChannelRecall([a, b], n_candidates=4).recall([["h"]])
    # quotas 2 + 2: a gives x1, x2; b gives x1 (duplicate), y2 -> 3 unique, 1 slot removed
    assert merged.quotas == [2, 2]
    assert merged.dedup_removed == [1]
    # refilled round-robin from rank 2: a's x3 comes first (b's x2 there is a duplicate)
    assert merged.candidates == [["x1", "x2", "y2", "x3"]]
    assert merged.backfilled == [1]
    report = recall_report(merged, [["y2"]])
    assert report["recall@n"] == 1.0
    assert report["channel_recall@quota"] == {"a": 0.0, "b": 1.0}
    assert report["dedup_removed_total"] == 1


def test_merge_raises_when_channels_cannot_fill_the_list():
    a = FixedChannel("a", [["x1", "x2"]])
    with pytest.raises(ValueError, match="only 2 distinct items"):
        MultiChannelRecall([a], n_candidates=3).recall([["h"]])


def test_real_channels_merge_without_forcing_the_target_in(split, ctx):
    cases = protocol_cases(llmrank_protocol(split, n_candidates=5, show_progress=False))
    channels = [build_channel(name, ctx) for name in ("popularity", "itemcf", "bm25")]
    merged = MultiChannelRecall(channels, n_candidates=5).recall(cases.histories)
    for hist, cands in zip(cases.histories, merged.candidates):
        assert len(cands) == 5 and len(set(cands)) == 5
        assert not set(cands) & set(hist)
    report = recall_report(merged, cases.targets)
    hits = sum(t[0] in c for t, c in zip(cases.targets, merged.candidates))
    assert report["recall@n"] == hits / len(cases)
    assert 0 < hits < len(cases)  # some targets recalled, not all: nothing forces them in


def test_metrics_on_protocol_cases_agree_with_the_evaluator(split, dataset):
    """The benchmark scores nested subsets of the protocol cases with ranking_metrics; on the same
    cases that must give exactly what the one evaluator reports."""
    from llmrec.llmrank.pipeline import RerankSetup, evaluate_protocol, score_in_batches

    evaluator = llmrank_protocol(split, n_candidates=5, seed=1, show_progress=False)
    setup = RerankSetup(dataset=dataset, split=split, part="test", evaluator=evaluator,
                        cases=protocol_cases(evaluator), item_text=TITLES, n_candidates=5, seed=1)
    scorer = build_channel("itemcf", setup.recall_context())
    via_evaluator = evaluate_protocol(setup, scorer)
    scores = score_in_batches(scorer, setup.cases.histories, setup.cases.candidates, show_progress=False)
    direct = ranking_metrics(scores, setup.cases.candidates, setup.cases.targets)
    for key, value in direct.items():
        assert via_evaluator[key] == pytest.approx(value), key
