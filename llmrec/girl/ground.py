"""Grounding: map each generated text to real items by embedding retrieval, and measure it.

Every held-out user is one case whose target is their latest match (the job they viewed last, the
movie they liked last); their other matches leave the ranking (neither hit nor miss). Candidates
come from the candidates stage and are the same for every method:

* ``sampled``: the target plus ``num_negatives`` items drawn by ``llmrec.candidates.sample_candidates``
  (seeded per case, never the target or another match as a negative);
* ``full``: the whole catalogue.

A text method embeds its query text (a generation, or for the retrieval-only baseline the profile
itself) with the sentence encoder (``llmrec.embed``; item vectors through the embedding cache) and
scores candidates by inner product from a FAISS flat index over the catalogue. An empty generation
scores every candidate 0 (all tie: a miss under the metrics' pessimistic ties) and is counted.
Popularity is the registered ``popularity`` scorer, built through the registry on a split whose
known events are those of every user outside the held-out side. Metrics: ``llmrec.eval.metrics``
(HR@K, NDCG@K, ... with ties against the method).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data.schema import USER, Dataset
from llmrec.girl.data import GirlData

KS = (1, 5, 10, 20)


@dataclass
class GroundingCases:
    """The held-out cases and their candidate lists (catalogue indices), fixed before any method scores."""

    users: list[str]
    catalogue: list[str]
    targets: np.ndarray
    """Per case, the target's catalogue index."""
    others: list[np.ndarray]
    """Per case, catalogue indices of the user's other matches (left out of the ranking)."""
    lists: np.ndarray | None
    """(cases, candidates) catalogue indices, or None for the full catalogue."""
    label: str

    def candidate_ids(self) -> list[list[str]] | list[str]:
        if self.lists is None:
            return list(self.catalogue)
        return [[self.catalogue[j] for j in row] for row in self.lists]


def grounding_cases(data: GirlData, users: Sequence[str], mode: str = "sampled", num_negatives: int = 99,
                    seed: int = 42) -> GroundingCases:
    """Cases of ``users`` with ``mode`` candidates (``sampled`` or ``full``)."""
    from llmrec.candidates.sampled import sample_candidates

    catalogue = sorted(data.item_text)
    index = {item: j for j, item in enumerate(catalogue)}
    users = list(users)
    targets = np.array([index[data.target(u)] for u in users], dtype=np.int64)
    others = [np.array([index[i] for i in data.matches[u][:-1] if i in index], dtype=np.int64) for u in users]
    if mode == "full":
        return GroundingCases(users, catalogue, targets, others, None, "full")
    if mode != "sampled":
        raise ValueError(f"grounding mode must be 'sampled' or 'full', got {mode!r}")
    lists = sample_candidates(users, [list(data.matches[u][:-1]) for u in users], others,
                              [np.array([t]) for t in targets], len(catalogue), num_negatives, seed)
    assert lists.lists is not None
    return GroundingCases(users, catalogue, targets, others, np.stack(lists.lists), lists.label)


def rank_metrics(cases: GroundingCases, scores: np.ndarray, ks: Sequence[int] = KS) -> dict:
    """HR@K, NDCG@K, ... of the targets under ``scores`` (cases x candidates)."""
    from llmrec.eval.metrics import RankedScores, aggregate

    n = len(cases.users)
    if cases.lists is not None:
        target_cols = np.array([int(np.flatnonzero(row == t)[0]) for row, t in zip(cases.lists, cases.targets,
                                                                                   strict=True)])
        ignore = [np.flatnonzero(np.isin(row, o)) for row, o in zip(cases.lists, cases.others, strict=True)]
    else:
        target_cols = cases.targets
        ignore = cases.others
    rows = np.arange(n)
    ign_rows = np.repeat(rows, [len(i) for i in ignore])
    ign_cols = np.concatenate(ignore).astype(np.int64) if ignore else np.empty(0, np.int64)
    metrics = RankedScores(scores).case_metrics((rows, target_cols), ks, (ign_rows, ign_cols))
    out = aggregate(metrics, ks)
    return {k: float(v) for k, v in out.items() if not k.startswith("accuracy")}


class TextGrounder:
    """Item vectors of the catalogue in a FAISS flat (exact inner-product) index; query texts in, scores out."""

    def __init__(self, encoder: Any, item_text: Mapping[str, str], catalogue: Sequence[str],
                 cache_dir: str | None = None, show_progress: bool = False) -> None:
        from llmrec.embed import FaissIndex, embed_with_cache

        self.encoder = encoder
        self.catalogue = list(catalogue)
        self.show_progress = show_progress
        vectors, self.cache_counts = embed_with_cache(encoder, self.catalogue, [item_text[i] for i in self.catalogue],
                                                      cache_dir=cache_dir, show_progress=show_progress)
        self.index = FaissIndex(encoder.dim, "flat")
        self.index.add(self.catalogue, vectors)
        self._column = {item: j for j, item in enumerate(self.catalogue)}

    def catalogue_scores(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, catalogue) inner products; an empty text scores 0 everywhere."""
        texts = [str(t or "").strip() for t in texts]
        out = np.zeros((len(texts), len(self.catalogue)), dtype=np.float64)
        todo = [i for i, t in enumerate(texts) if t]
        if not todo:
            return out
        queries = self.encoder.encode([texts[i] for i in todo], show_progress=self.show_progress)
        ids, scores = self.index.search(queries, len(self.catalogue))
        for r, i in enumerate(todo):
            cols = np.fromiter((self._column[x] for x in ids[r]), dtype=np.int64, count=len(ids[r]))
            out[i, cols] = scores[r]
        return out

    def scores(self, cases: GroundingCases, texts: Sequence[str]) -> np.ndarray:
        full = self.catalogue_scores(texts)
        return full if cases.lists is None else np.take_along_axis(full, cases.lists, axis=1)


def popularity_scores(dataset: Dataset, held_out: Sequence[str], cases: GroundingCases) -> np.ndarray:
    """The registered ``popularity`` scorer on the same candidates, knowing the other users' events only."""
    from llmrec.data.splits import Split
    from llmrec.registry import BuildContext, build_scorer

    inter = dataset.interactions
    out = inter[USER].isin(set(held_out))
    empty = inter.iloc[:0]
    split = Split("girl-by-user", dataset, inter[~out].reset_index(drop=True), empty, inter[out].reset_index(drop=True),
                  group_targets=True)
    scorer = build_scorer("popularity", BuildContext(split, part="test"))
    return np.asarray(scorer.score([[] for _ in cases.users], cases.candidate_ids()), dtype=np.float64)


def grounding_table(grounder: TextGrounder, cases: GroundingCases, texts: Mapping[str, Sequence[str]],
                    popularity: np.ndarray | None = None, ks: Sequence[int] = KS) -> list[dict]:
    """One row per method: hit@K / NDCG@K on the same cases and candidates."""
    rows = []
    for name, method_texts in texts.items():
        empty = sum(1 for t in method_texts if not str(t or "").strip())
        rows.append({"method": name, **rank_metrics(cases, grounder.scores(cases, method_texts), ks),
                     "empty_texts": empty})
    if popularity is not None:
        rows.append({"method": "popularity", **rank_metrics(cases, popularity, ks), "empty_texts": 0})
    for row in rows:
        row.update(candidates=cases.label, cases=len(cases.users))
    return rows


def population(data: GirlData, dataset: Dataset) -> dict:
    """How many users the table covers, out of all in the data set."""
    return {"held_out_users": len(data.test_users), "users_in_dataset": int(pd.unique(dataset.interactions[USER]).size),
            **{k: v for k, v in data.counts.items() if k.startswith(("users_", "cold_"))}}
