"""Most-popular baseline and the item prior: what every recommender must beat.

* :class:`PopularityScorer`: an item's interaction count in the known events (the same for every
  user). LLMRank's paper finds popularity level with ChatGPT on its protocol.
* :class:`ItemPriorScorer`: an item's mean known rating, shrunk towards the global mean (a
  Bayesian average with ``prior_weight`` pseudo-ratings). On TALLRec's MovieLens task this no-LLM
  prior beats LLaMA-7B tuned on 16 shots.

Both learn from known events only, so test events cannot reach them; items unseen before the
evaluated part (cold-start items) get the neutral value (count 0; the global mean rating).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM, RATING, epoch_seconds, release_dates
from llmrec.errors import DataFormatError
from llmrec.scoring import Candidates, Histories, is_shared, per_user_candidates


class _ItemValueScorer:
    """A scorer whose score is one value per item, the same for every user."""

    name = "item-value"
    default: float = 0.0

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        n = len(histories)
        if is_shared(candidates):
            row = np.array([self.values.get(str(i), self.default) for i in candidates], dtype=np.float64)
            return np.broadcast_to(row, (n, len(row))).copy()
        rows = per_user_candidates(candidates, n)
        return np.array([[self.values.get(str(i), self.default) for i in c] for c in rows], dtype=np.float64)


class PopularityScorer(_ItemValueScorer):
    """Scores every candidate by how often it occurs in ``known`` (ties among cold items at 0)."""

    name = "popularity"

    def __init__(self, known: pd.DataFrame) -> None:
        super().__init__(known[ITEM].astype(str).value_counts().astype(float).to_dict())

    @property
    def counts(self) -> dict[str, float]:
        return self.values


class ItemPriorScorer(_ItemValueScorer):
    """Mean known rating of the item, shrunk to the global mean: (sum + w * mean) / (count + w)."""

    name = "item-prior"

    def __init__(self, known: pd.DataFrame, prior_weight: float = 5.0, source: str = "interactions") -> None:
        if RATING not in known.columns:
            raise DataFormatError(source, f"a '{RATING}' column for the item prior", field=RATING,
                                  got=list(known.columns))
        if prior_weight < 0:
            raise ValueError(f"prior_weight must be >= 0, got {prior_weight}")
        ratings = known[RATING].astype(float)
        self.global_mean = float(ratings.mean())
        stats = ratings.groupby(known[ITEM].astype(str)).agg(["sum", "count"])
        values = (stats["sum"] + prior_weight * self.global_mean) / (stats["count"] + prior_weight)
        super().__init__(values.to_dict())
        self.default = self.global_mean


class NewestFirstScorer(_ItemValueScorer):
    """The most recently released items first (a content field every film catalogue has): the
    no-interaction baseline for new arrivals. Items without a parseable date score lowest."""

    name = "newest"

    def __init__(self, items: pd.DataFrame, column: str = "release_date") -> None:
        days = pd.Series(epoch_seconds(release_dates(items, column)) / 86400.0, index=items.index)
        self.default = float(days.min() - 1) if days.notna().any() else 0.0
        super().__init__({str(i): float(d) for i, d in days.dropna().items()})
