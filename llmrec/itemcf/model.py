"""Item-based collaborative filtering from co-occurrence in users' known histories.

The similarity of items i and j is cosine-normalised co-occurrence, ``|U_i ∩ U_j| / sqrt(|U_i| |U_j|)``
over the users who interacted with each (each (user, item) pair counted once). A user's score for
a candidate is the sum of its similarities to the history items, weighted ``0.5 ** (age / half-life)``
so recent items count more. Items nobody interacted with before the evaluated part (cold start)
have no co-occurrence and score 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from llmrec.data.schema import ITEM, USER
from llmrec.scoring import Candidates, Histories, is_shared


class ItemCFScorer:
    name = "itemcf"

    def __init__(self, known: pd.DataFrame, recency_decay: float | None = 5.0) -> None:
        users = pd.Categorical(known[USER].astype(str))
        items = pd.Categorical(known[ITEM].astype(str))
        self.items = pd.Index(items.categories)
        x = sparse.csr_matrix((np.ones(len(known)), (users.codes, items.codes)),
                              shape=(len(users.categories), len(items.categories)))
        x.data[:] = 1.0  # the constructor sums repeated (user, item) pairs; each counts once
        co = (x.T @ x).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        norm = sparse.diags(1.0 / np.sqrt(np.maximum(np.asarray(x.sum(axis=0)).ravel(), 1.0)))
        self.similarity = (norm @ co @ norm).tocsr()
        self.recency_decay = recency_decay

    def _history_matrix(self, histories: Histories) -> sparse.csr_matrix:
        rows, cols, weights = [], [], []
        for u, history in enumerate(histories):
            pos = self.items.get_indexer([str(i) for i in history])
            age = np.arange(len(pos))[::-1]
            w = np.ones(len(pos)) if self.recency_decay is None else 0.5 ** (age / self.recency_decay)
            known = pos >= 0
            rows.append(np.full(int(known.sum()), u))
            cols.append(pos[known])
            weights.append(w[known])
        if not rows:
            return sparse.csr_matrix((0, len(self.items)))
        return sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                                 shape=(len(histories), len(self.items)))

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        totals = (self._history_matrix(histories) @ self.similarity).tocsr()  # (users, known items)
        n = len(histories)
        if is_shared(candidates):
            pos = self.items.get_indexer([str(c) for c in candidates])
            dense = totals[:, np.maximum(pos, 0)].toarray() if len(pos) else np.zeros((n, 0))
            dense[:, pos < 0] = 0.0
            return dense.astype(np.float64)
        if len(candidates) != n:
            raise ValueError(f"got {len(candidates)} candidate lists for {n} users")
        width = len(candidates[0]) if n else 0
        pos = self.items.get_indexer([str(c) for row in candidates for c in row]).reshape(n, width)
        rows = np.repeat(np.arange(n), width).reshape(n, width)
        out = np.asarray(totals[rows.ravel(), np.maximum(pos, 0).ravel()]).reshape(n, width)
        return np.where(pos >= 0, out, 0.0).astype(np.float64)
