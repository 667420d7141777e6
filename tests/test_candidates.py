"""The candidates stage: registered scorers as recall channels, multi-channel merging, the sampled
protocol (LLMRank's 1 + N) and candidate files."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest

from llmrec.candidates import CandidateLists, MultiChannelRecall, read_candidate_file, write_candidate_file
from llmrec.data.schema import Dataset
from llmrec.data.splits import make_split
from llmrec.errors import DataFormatError
from llmrec.eval import EvalConfig, RankingEvaluator
from llmrec.llmrank.bootstrap import place_target
from llmrec.registry import BuildContext, build_scorer, register_scorer
from llmrec.run import RunConfig, make_evaluator

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
def context(split) -> BuildContext:
    return BuildContext(split, part="test", show_progress=False)


@pytest.fixture(scope="module")
def catalog(dataset) -> list[str]:
    return [str(i) for i in dataset.items.index]


def recall(scorer, histories: list[list[str]], k: int, catalog: list[str]) -> list[list[str]]:
    """What ``scorer`` recalls as a channel: its top ``k`` catalogue items per history, history excluded."""
    position = {item: i for i, item in enumerate(catalog)}
    history_items = [np.array([position[i] for i in h if i in position], dtype=np.int64) for h in histories]
    rows = MultiChannelRecall([scorer], k).channel_recall(scorer, histories, history_items, catalog)
    return [[catalog[j] for j in row] for row in rows]


def _options(**overrides) -> EvalConfig:
    return EvalConfig(show_progress=False, **overrides)


# --- registered scorers as recall channels -------------------------------------------------------

def test_popularity_recalls_the_most_popular_unseen_items(context, split, catalog):
    pop = build_scorer("popularity", context)
    top = recall(pop, [["10"], []], 3, catalog)
    counts = split.known("test")["item_id"].value_counts()
    assert "10" not in top[0]  # the history is never recalled
    assert top[1][0] == counts.index[0] == "10"
    assert [counts.get(i, 0) for i in top[1]] == sorted(counts.tolist(), reverse=True)[:3]
    # Unknown items (never interacted with, or not in the catalogue) score 0.
    np.testing.assert_allclose(pop.score([[]], [["10", "16", "nope"]])[0],
                               [counts["10"], counts.get("16", 0), 0.0])


def test_itemcf_recalls_co_occurring_items(context, catalog):
    cf = build_scorer("itemcf", context)
    mario = recall(cf, [["1", "2"]], 2, catalog)[0]
    assert mario[0] == "3" and not {"1", "2"} & set(mario)  # always seen with 1 and 2
    halo = recall(cf, [["6", "7"]], 2, catalog)[0]
    assert set(halo) <= {"8", "9", "10"} and halo[0] == "8"
    # An unknown history item is ignored, an unknown candidate scores 0.
    assert cf.score([["zzz"]], [["1", "2"]]).tolist() == [[0.0, 0.0]]
    assert cf.score([["1"]], [["nope", "3"]])[0, 0] == 0.0 < cf.score([["1"]], [["nope", "3"]])[0, 1]


def test_bm25_recalls_by_text_and_leaves_the_history_out(context, catalog):
    bm = build_scorer("bm25", context)
    got = recall(bm, [["4"]], 2, catalog)[0]  # "Zelda Breath of the Wild"
    assert got[0] == "5" and "4" not in got  # the other Zelda
    assert recall(bm, [["6"]], 1, catalog)[0] == ["7"]  # Halo -> the other Halo
    # No query words (empty history) -> no preference, still k items.
    assert len(recall(bm, [[]], 3, catalog)[0]) == 3
    assert bm.score([[]], [["1", "2"]]).tolist() == [[0.0, 0.0]]
    assert bm.score([["4"]], [["nope", "5"]])[0].tolist()[0] == 0.0


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


def test_embedding_scorer_recalls_similar_text(dataset, catalog):
    from llmrec.generation.config import EmbeddingRankerConfig
    from llmrec.generation.model import EmbeddingRanker

    ranker = EmbeddingRanker(dataset.items, EmbeddingRankerConfig(cache_dir=None, show_progress=False),
                             encoder=BagOfWordsEncoder())
    assert recall(ranker, [["1", "2"]], 1, catalog)[0] == ["3"]  # "Super Mario Party" shares the most words
    assert not {"1", "2"} & set(recall(ranker, [["1", "2"]], 5, catalog)[0])
    # An item outside the catalogue gets the fixed score below every cosine.
    scores = ranker.score([["1"]], [["3", "14", "nope"]])[0]
    assert scores[2] == ranker.UNKNOWN_SCORE < scores[:2].min()


def test_the_registered_embedding_scorer_is_a_channel(context, catalog, tiny_sentence_model):
    ranker = build_scorer("embedding", context, model=str(tiny_sentence_model), cache_dir=None, show_progress=False)
    got = recall(ranker, [["1", "2"], ["6"]], 4, catalog)
    assert [len(g) for g in got] == [4, 4] and not {"1", "2"} & set(got[0]) and "6" not in got[1]
    full = ranker.score([["1", "2"]], catalog)[0]
    best = [catalog[j] for j in np.argsort(-full, kind="stable") if catalog[j] not in ("1", "2")][:4]
    assert got[0] == best  # recall is the scorer's own order over the catalogue


def test_any_registered_scorer_is_a_channel_by_name(context, split, catalog):
    from llmrec.popularity import PopularityScorer

    class Wrapped(PopularityScorer):
        name = "pop-wrapped"

    register_scorer("pop-wrapped", lambda c, _config: Wrapped(c.known), description="popularity again (test)")
    try:
        wrapped = context.build("pop-wrapped")
        assert wrapped.name == "pop-wrapped"
        hist = [["10", "1"], ["6"]]
        got, want = recall(wrapped, hist, 4, catalog), recall(build_scorer("popularity", context), hist, 4, catalog)
        assert got == want
        # The run module builds recall channels by name from the registry.
        config = RunConfig(mode="recalled", n_candidates=4, channels=["pop-wrapped", "itemcf"], show_progress=False)
        evaluator = make_evaluator(split, config, context)
        assert evaluator.candidates.info["channels"] == ["pop-wrapped", "itemcf"]
        assert evaluator.candidates.label == "recalled-4"
    finally:
        from llmrec import registry

        registry._REGISTRY.pop("pop-wrapped")
    with pytest.raises(ValueError, match="unknown scorer 'sasrec-not-yet'"):
        context.build("sasrec-not-yet")


# --- multi-channel merging ------------------------------------------------------------------------

MERGE_CATALOG = ["h", "x1", "x2", "x3", "x4", "x5", "x6", "y2", "y4", "y5", "y6"]


class FixedScorer:
    """Recalls exactly ``ranking`` (best first): items outside it score -inf, so they are never recalled."""

    def __init__(self, name: str, ranking: list[str]) -> None:
        self.name = name
        self.ranking = ranking

    def score(self, histories, candidates):
        row = np.full(len(candidates), -np.inf)
        for rank, item in enumerate(self.ranking):
            row[candidates.index(item)] = len(self.ranking) - rank
        return np.tile(row, (len(histories), 1))


def merge(channels, n: int):
    history_items = [np.array([MERGE_CATALOG.index("h")])]
    return MultiChannelRecall(channels, n_candidates=n).recall([["h"]], history_items, MERGE_CATALOG)


def test_merge_interleaves_by_rank_counts_duplicates_and_refills():
    a = FixedScorer("a", ["h", "x1", "x2", "x3", "x4", "x5", "x6"])  # its top item is the history: excluded
    b = FixedScorer("b", ["x1", "y2", "x2", "y4", "y5", "y6"])
    merged = merge([a, b], 4)
    # quotas 2 + 2: a gives x1, x2; b gives x1 (duplicate), y2 -> 3 unique, 1 slot removed
    assert merged.quotas == [2, 2]
    assert merged.dedup_removed == [1]
    # refilled round-robin from rank 2: a's x3 comes first (b's x2 there is a duplicate)
    assert [[MERGE_CATALOG[j] for j in c] for c in merged.candidates] == [["x1", "x2", "y2", "x3"]]
    assert merged.backfilled == [1]
    assert {k: [[MERGE_CATALOG[j] for j in c] for c in v] for k, v in merged.per_channel.items()} == {
        "a": [["x1", "x2", "x3", "x4"]], "b": [["x1", "y2", "x2", "y4"]]}
    assert merged.summary() == {"channels": ["a", "b"], "quotas": [2, 2], "n_candidates": 4,
                                "dedup_removed_total": 1, "dedup_removed_per_case": 1.0, "backfilled_per_case": 1.0}
    lists, _ = MultiChannelRecall([a, b], 4).candidates([["h"]], [np.array([0])], MERGE_CATALOG)
    assert lists.mode == "recalled" and lists.label == "recalled-4" and lists.info["dedup_removed_total"] == 1


def test_merge_raises_when_channels_cannot_fill_the_list():
    with pytest.raises(ValueError, match="only 2 distinct items"):
        merge([FixedScorer("a", ["x1", "x2"])], 3)
    with pytest.raises(ValueError, match="distinct names"):
        MultiChannelRecall([FixedScorer("a", ["x1"]), FixedScorer("a", ["x2"])], 2)
    with pytest.raises(ValueError, match="at least one channel"):
        MultiChannelRecall([], 2)


def test_real_channels_merge_without_forcing_the_target_in(split, context):
    channels = [context.build(name) for name in ("popularity", "itemcf", "bm25")]
    evaluator = RankingEvaluator(split, _options(mode="recalled", n_candidates=5), channels=channels)
    cases = evaluator.cases()
    assert len(cases) == 10
    for case in cases:
        cands = case["candidates"]
        assert len(cands) == 5 and len(set(cands)) == 5
        assert not set(cands) & set(case["history"])
    hits = sum(case["targets"][0] in case["candidates"] for case in cases)
    assert 0 < hits < len(cases)  # some targets recalled, not all: nothing forces them in
    result = evaluator(channels[1])  # item-CF ranks the merged lists
    assert result["mode"] == "recalled-5"
    assert result["candidates"]["channels"] == ["popularity", "itemcf", "bm25"]
    assert result["candidates"]["quotas"] == [2, 2, 1]
    everything = result["slices"]["all"]
    assert everything["targets"] == len(cases) and everything["targets_listed"] == hits
    # A target that was not recalled is a miss: HR@5 over 5 candidates is the share recalled.
    assert result["hr@5"] == pytest.approx(hits / len(cases))


def test_a_target_missing_from_the_candidates_is_a_miss(split, catalog):
    """Given lists: half of them hold the target first, the others leave it out."""
    evaluator = RankingEvaluator(split, _options(mode="sampled", num_negatives=3))
    lists = []
    for i, case in enumerate(evaluator.cases()):
        negatives = [c for c in case["candidates"] if c not in case["targets"]]
        items = [case["targets"][0], *negatives[:2]] if i % 2 == 0 else negatives
        lists.append(np.array([catalog.index(c) for c in items]))

    class FirstListed:
        name = "first-listed"

        def score(self, histories, candidates):
            return np.tile(-np.arange(len(candidates[0]), dtype=float), (len(histories), 1))

    given = RankingEvaluator(split, _options(mode="sampled", num_negatives=3),
                             candidates=CandidateLists("given", "given-3", lists))
    result = given(FirstListed())
    assert result["mode"] == "given-3"
    assert result["hr@1"] == result["ndcg@1"] == pytest.approx(0.5)
    assert result["hr@20"] == pytest.approx(0.5) and result["slices"]["all"]["targets_listed"] == 5


# --- the sampled protocol (LLMRank: the ground truth + 19 random items) ----------------------------

def test_sampled_lists_hold_the_target_once_among_random_items_outside_the_history(split, context):
    evaluator = RankingEvaluator(split, _options(mode="sampled", num_negatives=5, seed=3))
    cases = evaluator.cases()
    assert len(cases) == 10
    positions = []
    for case in cases:
        cands = case["candidates"]
        assert len(cands) == 6 and len(set(cands)) == 6
        assert sum(c in case["targets"] for c in cands) == 1
        assert not set(cands) & set(case["history"])
        positions.append(cands.index(case["targets"][0]))
    assert len(set(positions)) > 1  # shuffled, not always in one place
    assert evaluator(context.build("popularity"))["mode"] == "sampled-5"
    again = RankingEvaluator(split, _options(mode="sampled", num_negatives=5, seed=3)).cases()
    assert [c["candidates"] for c in again] == [c["candidates"] for c in cases]  # seeded
    other = RankingEvaluator(split, _options(mode="sampled", num_negatives=5, seed=4)).cases()
    assert [c["candidates"] for c in other] != [c["candidates"] for c in cases]


def test_sampled_cases_are_subsampled_by_seed_and_each_keeps_its_list(split, context):
    """max_cases takes a seeded subset of cases; a case's list is seeded on the case alone, so any
    subset of cases (a max_cases sample, or a split holding fewer users' test events) ranks the same
    lists as the whole set: what lets a benchmark compare rows measured on nested subsets."""
    config = _options(mode="sampled", num_negatives=3, seed=0)
    whole = {c["user"]: c["candidates"] for c in RankingEvaluator(split, config).cases()}
    small = RankingEvaluator(split, dataclasses.replace(config, max_cases=3))
    cases = small.cases()
    assert len(cases) == 3 and small.counts["subsampled"] and small.population()["subsampled_cases"]
    assert [c["user"] for c in RankingEvaluator(split, dataclasses.replace(config, max_cases=3)).cases()] == \
        [c["user"] for c in cases]  # seeded
    assert all(c["candidates"] == whole[c["user"]] for c in cases)
    # A split whose test part holds only some users' events: the same cases, the same lists, the
    # same known events (so the same trained baselines).
    keep = ["u2", "u5", "u9"]
    fewer = dataclasses.replace(split, test=split.test[split.test["user_id"].isin(keep)].reset_index(drop=True))
    sub = RankingEvaluator(fewer, config)
    assert sorted(c["user"] for c in sub.cases()) == keep
    assert all(c["candidates"] == whole[c["user"]] for c in sub.cases())
    assert fewer.known("test").equals(split.known("test"))
    with pytest.raises(ValueError, match="num_negatives"):
        RankingEvaluator(split, _options(mode="sampled", num_negatives=0))
    with pytest.raises(ValueError, match="max_cases"):
        _options(mode="sampled", max_cases=0)


def test_place_target():
    assert place_target([1, 2, 3], 9, 0).tolist() == [9, 1, 2, 3]
    assert place_target([1, 2, 3], 9, 3).tolist() == [1, 2, 3, 9]
    with pytest.raises(ValueError):
        place_target([1], 9, 5)


# --- given candidates: a JSON-lines file ----------------------------------------------------------

def test_given_candidates_round_trip_through_a_file(split, context, catalog, tmp_path):
    sampled = RankingEvaluator(split, _options(mode="sampled", num_negatives=4))
    users = [c["user"] for c in sampled.cases()]
    lists = [c["candidates"] for c in sampled.cases()]
    path = write_candidate_file(tmp_path / "cands.jsonl", users, lists)
    assert json.loads(path.read_text().splitlines()[0]) == {"user": users[0], "candidates": lists[0]}
    read = read_candidate_file(path, users, catalog)
    assert read.mode == "given" and read.label == "given-5"
    assert [[catalog[j] for j in row] for row in read.lists] == lists
    given = RankingEvaluator(split, _options(mode="given", candidates_file=str(path)))
    pop = context.build("popularity")
    from_file, from_sampler = given(pop), sampled(pop)
    assert from_file["mode"] == "given-5" and from_file["candidates"]["file"] == str(path)
    for key in ("ndcg@10", "hr@1", "mrr@20"):
        assert from_file[key] == pytest.approx(from_sampler[key])


@pytest.mark.parametrize(("lines", "match"), [
    (['{"user": "u1", "candidates": ["1", "2"]}', "not json"], "line 2: expected a JSON object per line"),
    (['{"user": "u1"}'], "line 1: expected {\"user\""),
    (['', '{"user": "u1", "candidates": ["1", "nope"]}'], "line 2, field 'candidates': expected candidate ids "
                                                          "from the catalogue, got 'nope'"),
    (['{"user": "u1", "candidates": ["1", "1"]}'], "line 1, field 'candidates': expected a non-empty list of "
                                                   "distinct ids"),
    (['{"user": "u1", "candidates": []}'], "line 1, field 'candidates'"),
    (['{"user": "u1", "candidates": ["1", "2"]}'], "field 'user': expected a candidate list for every evaluated "
                                                   "user, got \"1 users without one, e.g. 'u2'\""),
])
def test_bad_candidate_files_name_the_line(tmp_path, catalog, lines, match):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=re.escape(match)):
        read_candidate_file(path, ["u1", "u2"], catalog)


def test_a_missing_candidate_file_is_an_error(tmp_path, catalog):
    with pytest.raises(FileNotFoundError, match="candidate file not found"):
        read_candidate_file(tmp_path / "absent.jsonl", ["u1"], catalog)
