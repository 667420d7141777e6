"""Most-popular baseline: score an item by its interaction count in the training data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM
from llmrec.scoring import Candidates, Histories, is_shared, per_user_candidates


class PopularityScorer:
    """Scores every candidate by how often it occurs in ``train`` (the same for every user).

    Built from training interactions only, so test events cannot reach it; items unseen in
    training (cold-start items) score 0, tied with each other.
    """

    name = "popularity"

    def __init__(self, train: pd.DataFrame) -> None:
        self.counts: dict[str, float] = train[ITEM].value_counts().astype(float).to_dict()

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        n = len(histories)
        if is_shared(candidates):
            row = np.array([self.counts.get(i, 0.0) for i in candidates], dtype=np.float64)
            return np.broadcast_to(row, (n, len(row))).copy()
        rows = per_user_candidates(candidates, n)
        return np.array([[self.counts.get(i, 0.0) for i in c] for c in rows], dtype=np.float64)
