"""Grounding: map each generated text to real items by embedding retrieval, measured through the
evaluator.

The held-out users of GIRL's user split are the cases (:func:`heldout_split`): each case's target is
the user's latest match (the job they viewed last, the movie they liked last), its history the user's
events before it (left out of the ranking by the evaluator), and the known events are every other
user's plus those histories. ``llmrec.eval.RankingEvaluator`` fixes the cases and the candidates
(``llmrec.candidates``: ``sampled``, the target plus N seeded negatives; ``full``, the whole
catalogue) once, and every method is a scorer ranking the same lists:

* ``girl-sft`` / ``girl-rl`` / ``retrieval-only``: a :class:`UserTextScorer`, whose query for a case
  is a text about the case's user, looked up by ``History.user``: the generator's text written from
  the user's profile (a user feature: job-views profiles come from experience rows, which histories
  do not hold), or for retrieval-only the profile itself. The text is embedded with the sentence
  encoder (``llmrec.embed``; item vectors through the embedding cache) and candidates are scored by
  inner product from a FAISS flat index over the catalogue. An empty generation scores every
  candidate 0 (all tie: a miss under the metrics' pessimistic ties) and is counted;
* ``popularity``: the registered scorer, built through the registry on the same split.

No metric is computed here: the numbers are the evaluator's (HR@K, NDCG@K, ..., slices, counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM, TIME, USER, Dataset
from llmrec.data.splits import _SEQ, Split
from llmrec.girl.data import GirlData
from llmrec.scoring import Candidates, Histories, check_scores, history_user, is_shared, per_user_candidates

KS = (1, 5, 10, 20)
SPLIT_NAME = "girl-by-user"


def heldout_split(dataset: Dataset, data: GirlData, users: Sequence[str]) -> Split:
    """A split whose test cases are ``users`` (held-out side of GIRL's user split), one each: the
    first event of the user's target item. Known: every other user's events and each held-out user's
    events before that one (never after it, so a held-out user's later events cannot reach a scorer
    or popularity). Like leave-one-out it keeps other users' later events (trains on the future)."""
    df = dataset.interactions.copy()
    df[USER], df[ITEM] = df[USER].astype(str), df[ITEM].astype(str)
    df = df.sort_values([USER, TIME], kind="stable").reset_index(drop=True)
    df[_SEQ] = df.groupby(USER).cumcount()
    users = [str(u) for u in users]
    if set(users) & set(data.train_users):
        raise ValueError("heldout_split: a training user among the held-out cases")
    targets = {u: data.target(u) for u in users}
    is_held = df[USER].isin(set(users))
    first = df[is_held & (df[ITEM] == df[USER].map(targets))].groupby(USER, sort=False).head(1).set_index(USER)
    missing = [u for u in users if u not in first.index]
    if missing:
        raise ValueError(f"heldout_split: no event of the target item for {len(missing)} held-out users "
                         f"(e.g. {missing[0]!r})")
    cut = df[USER].map(first[_SEQ])
    known = df[~is_held | (df[_SEQ] < cut)].reset_index(drop=True)
    test = first.loc[users].reset_index()[df.columns]
    return Split(SPLIT_NAME, dataset, known, df.iloc[:0].copy(), test, group_targets=False)


def heldout_evaluator(split: Split, mode: str, num_negatives: int = 99, seed: int = 42, ks: Sequence[int] = KS,
                      **overrides: Any) -> Any:
    """The one ``RankingEvaluator`` every GIRL method is scored with: no case is dropped for a short
    history (a held-out applicant with a single view is a case with an empty history)."""
    from llmrec.eval.ranking import EvalConfig, RankingEvaluator

    config = EvalConfig(mode=mode, num_negatives=num_negatives, seed=seed, ks=tuple(ks), min_history=0,
                        show_progress=False, **overrides)
    return RankingEvaluator(split, config)


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

    def columns(self, items: Sequence[str]) -> np.ndarray:
        """Catalogue columns of ``items`` (an item outside the catalogue is an error)."""
        try:
            return np.fromiter((self._column[i] for i in items), dtype=np.int64, count=len(items))
        except KeyError as err:
            raise ValueError(f"grounding: candidate {err.args[0]!r} is not in the grounding catalogue") from None


class UserTextScorer:
    """A ``Scorer`` whose query for a case is a text about the case's user (``History.user``): a
    generation, or the user's profile. Candidates are ranked by the inner product of that text's
    embedding with theirs. It sees what every scorer sees (histories, candidates) plus its own
    per-user texts; a user it has no text for is an error, never a silent zero."""

    def __init__(self, name: str, grounder: TextGrounder, texts: Mapping[str, str]) -> None:
        self.name = name
        self.grounder = grounder
        self.texts = {str(u): str(t or "") for u, t in texts.items()}
        self.users_seen: list[str] = []

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        users = [history_user(h) for h in histories]
        unknown = [u for u in users if u is None or u not in self.texts]
        if unknown:
            raise ValueError(f"{self.name}: needs histories carrying a user id it has a text for; got "
                             f"{unknown[0]!r} ({len(unknown)} of {len(users)})")
        known_users = [str(u) for u in users]
        self.users_seen += known_users
        full = self.grounder.catalogue_scores([self.texts[u] for u in known_users])
        if is_shared(candidates):
            cols = self.grounder.columns([str(c) for c in candidates])
            scores = full[:, cols]
        else:
            rows = per_user_candidates(candidates, len(histories))
            scores = np.stack([full[r, self.grounder.columns([str(c) for c in row])] for r, row in enumerate(rows)])
        return check_scores(scores, len(histories), scores.shape[1], self.name)

    def diagnostics(self) -> dict:
        return {"empty_texts": sum(1 for t in self.texts.values() if not t.strip()), "users": len(self.texts)}


def grounding_table(evaluator: Any, scorers: Sequence[Any], ks: Sequence[int] = KS) -> list[dict]:
    """One row per scorer, every one on ``evaluator``'s cases and candidates: the evaluator's metrics
    (all cases) plus its population and the scorer's diagnostics."""
    rows = []
    for scorer in scorers:
        result = evaluator(scorer)
        metrics = {k: result[k] for k in result if "@" in k or k == "auc"}
        rows.append({"method": scorer.name, **metrics, "candidates": result["mode"],
                     "cases": result["population"]["cases"],
                     "empty_texts": result.get("diagnostics", {}).get("empty_texts", 0),
                     "slices": {name: {"cases": sl["cases"], "hr@10": sl.get("hr@10"), "ndcg@10": sl.get("ndcg@10")}
                                for name, sl in result["slices"].items()},
                     "population": result["population"]})
    return rows


def population(data: GirlData, dataset: Dataset) -> dict:
    """How many users the table covers, out of all in the data set."""
    return {"held_out_users": len(data.test_users), "users_in_dataset": int(pd.unique(dataset.interactions[USER]).size),
            **{k: v for k, v in data.counts.items() if k.startswith(("users_", "cold_"))}}
