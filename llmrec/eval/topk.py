"""TensorFlow Recommenders' evaluation protocol (``FactorizedTopK``) and its rating counterpart.

Every held-out (user, item) event of ``part`` is one pair. A user is shown *all* their events known
before ``part`` (with ratings): the same information a user-ID tower is trained from, since TFRS's
random 80/20 split trains on every one of them. Nothing held out is ever in a history.

* top-K accuracy: share of pairs whose item is among the user's top K over the whole catalogue.
  TFRS ranks *all* items, the user's known ones included (``exclude_known=False``); with
  ``exclude_known=True`` the user's known items leave the ranking first (the held-out item itself
  never does). Ties are broken against the scorer.
* rating: RMSE / MAE of the predicted rating of each pair (:class:`RatingEvaluator`).

The histories name their user (``History.user``), so a model with a user-ID embedding (TFRS's
user tower) can find it. A user ID is no label: it names whose known events the history holds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from llmrec.data.schema import ITEM, RATING, TIME, USER
from llmrec.data.splits import Split
from llmrec.eval.metrics import top_k_accuracy
from llmrec.eval.pointwise import RatingEvaluator
from llmrec.scoring import History, Scorer, check_scores

TFRS_KS = (1, 5, 10, 50, 100)


def known_histories(split: Split, part: str = "test") -> dict[str, History]:
    """User -> every event known before ``part``, time-ordered, with ratings where the data has them."""
    known = split.known(part).sort_values([USER, TIME], kind="stable")
    has_rating = RATING in known.columns
    return {str(u): History(g[ITEM].astype(str), g[RATING].tolist() if has_rating else None, str(u))
            for u, g in known.groupby(USER, sort=False)}


class TopKAccuracyEvaluator:
    """Top-K accuracy over the whole catalogue, one score matrix per batch of users."""

    def __init__(self, split: Split, part: str = "test", ks: Sequence[int] = TFRS_KS, exclude_known: bool = False,
                 batch_size: int = 256):
        split.check_part(part)
        self.split, self.part, self.ks = split, part, tuple(int(k) for k in ks)
        self.exclude_known, self.batch_size = exclude_known, batch_size
        self.catalogue = [str(i) for i in split.dataset.items.index]
        self.histories = known_histories(split, part)
        held = split.held(part)
        column = {item: k for k, item in enumerate(self.catalogue)}
        self.pairs: dict[str, list[int]] = {}
        missing = 0
        for user, item in zip(held[USER].astype(str), held[ITEM].astype(str), strict=True):
            if item in column:
                self.pairs.setdefault(user, []).append(column[item])
            else:
                missing += 1
        self.counts = {"pairs": sum(len(v) for v in self.pairs.values()), "users": len(self.pairs),
                       "users_without_history": sum(u not in self.histories for u in self.pairs),
                       "targets_outside_catalogue": missing, "candidates": len(self.catalogue)}

    def __call__(self, scorer: Scorer) -> dict:
        users = sorted(self.pairs)
        column = {item: k for k, item in enumerate(self.catalogue)}
        ranks: list[np.ndarray] = []
        t0 = time.perf_counter()
        for start in range(0, len(users), self.batch_size):
            batch = users[start:start + self.batch_size]
            histories = [self.histories.get(u, History(user=u)) for u in batch]
            scores = check_scores(scorer.score(histories, self.catalogue), len(batch), len(self.catalogue),
                                  scorer.name)
            for row, user, history in zip(scores, batch, histories, strict=True):
                targets = np.asarray(self.pairs[user])
                if self.exclude_known:
                    row = row.copy()
                    seen = np.asarray([column[i] for i in set(history) if i in column], dtype=np.int64)
                    seen = seen[~np.isin(seen, targets)]
                    row[seen] = -np.inf
                # pessimistic rank: items scoring higher, plus every other item that ties
                ranks.append(np.asarray([(row > row[t]).sum() + (row == row[t]).sum() - 1 for t in targets]))
        out = {f"top{k}": top_k_accuracy(ranks, k) for k in self.ks}
        return {**out, "exclude_known": self.exclude_known, "counts": dict(self.counts), "scorer": scorer.name,
                "seconds": round(time.perf_counter() - t0, 3)}


def rating_evaluator(split: Split, part: str = "test", **kwargs) -> RatingEvaluator:
    """RMSE / MAE of every held-out rating, each user shown all their known events (TFRS's protocol)."""
    split.check_part(part)
    histories = known_histories(split, part)
    held = split.held(part)
    users = held[USER].astype(str).tolist()
    return RatingEvaluator([histories.get(u, History(user=u)) for u in users], held[ITEM].astype(str).tolist(),
                           held[RATING].to_numpy(dtype=float), name=split.dataset.name, split_name=split.name,
                           part=part, population={"users_evaluated": len(set(users))}, **kwargs)
