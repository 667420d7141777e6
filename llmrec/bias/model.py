"""User + item bias model: r(u, i) = mu + b_i + b_u, fitted by regularised alternating least squares.

Item biases are learnt from the known events. A user is their history: b_u is computed at scoring
time from the ratings the history carries, in closed form given the item biases,
b_u = sum_h (r_h - mu - b_h) / (n + user_reg), so the model needs no user ID and never sees a target.
As a ranker every user gets the same order (by b_i): a rating baseline, not a recommender.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.bias.config import BiasConfig
from llmrec.data.schema import ITEM, RATING, USER
from llmrec.errors import DataFormatError
from llmrec.scoring import Candidates, Histories, check_scores, history_ratings, is_shared, per_user_candidates


class BiasModel:
    def __init__(self, mean: float, item_bias: dict[str, float], config: BiasConfig):
        self.mean = mean
        self.item_bias = item_bias
        self.config = config

    @classmethod
    def fit(cls, known: pd.DataFrame, config: BiasConfig | None = None, source: str = "interactions") -> BiasModel:
        config = config or BiasConfig()
        if RATING not in known.columns:
            raise DataFormatError(source, f"a '{RATING}' column for the bias model", field=RATING,
                                  got=list(known.columns))
        users = known[USER].astype(str).to_numpy()
        items = known[ITEM].astype(str).to_numpy()
        r = known[RATING].to_numpy(dtype=np.float64)
        u_codes, u_index = np.unique(users, return_inverse=True)
        i_codes, i_index = np.unique(items, return_inverse=True)
        mean = float(r.mean()) if len(r) else 0.0
        bu, bi = np.zeros(len(u_codes)), np.zeros(len(i_codes))
        nu = np.bincount(u_index, minlength=len(u_codes))
        ni = np.bincount(i_index, minlength=len(i_codes))
        for _ in range(config.iterations):
            bi = np.bincount(i_index, r - mean - bu[u_index], len(i_codes)) / (ni + config.item_reg)
            bu = np.bincount(u_index, r - mean - bi[i_index], len(u_codes)) / (nu + config.user_reg)
        return cls(mean, dict(zip(i_codes.tolist(), bi.tolist())), config)

    def user_bias(self, history: list[str], ratings: list[float] | None) -> float:
        if not ratings:
            return 0.0
        dev = sum(r - self.mean - self.item_bias.get(str(i), 0.0) for i, r in zip(history, ratings, strict=True))
        return dev / (len(ratings) + self.config.user_reg)


class BiasScorer:
    """Predicted rating mu + b_i + b_u for each candidate (unknown items: b_i = 0)."""

    def __init__(self, model: BiasModel, name: str = "bias"):
        self.model = model
        self.name = name

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        n = len(histories)
        rows = per_user_candidates(candidates, n)
        width = len(candidates) if is_shared(candidates) else (len(rows[0]) if n else 0)
        out = np.empty((n, width))
        bias = self.model.item_bias
        shared = np.array([bias.get(str(i), 0.0) for i in candidates]) if is_shared(candidates) else None
        for k, (h, cands) in enumerate(zip(histories, rows, strict=True)):
            b_u = self.model.user_bias(list(h), history_ratings(h))
            items = shared if shared is not None else np.array([bias.get(str(i), 0.0) for i in cands])
            out[k] = self.model.mean + b_u + items
        return check_scores(out, n, width, self.name)
