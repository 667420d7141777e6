"""Item id <-> embedding row for the ID-based models (SASRec, PTUM), built from known events only.

Row 0 is padding (``PAD``), so item ``vocabulary.items[i]`` has row ``i + 1``. Built from the
events a model may know before the evaluated part, an item that only the evaluated part holds never
gets a row and can never leak into a model; scorers rank such items last (:func:`candidate_rows`
and ``llmrec.scoring.rank_unknown_last``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM
from llmrec.data.splits import Split

PAD = 0


class ItemVocabulary:
    """Item id <-> row; row 0 is padding, so item ``vocabulary.items[i]`` has row ``i + 1``."""

    def __init__(self, item_ids: Iterable[str]):
        self.items = sorted(dict.fromkeys(str(i) for i in item_ids))
        self._row = {item: i + 1 for i, item in enumerate(self.items)}

    @classmethod
    def from_split(cls, split: Split, part: str = "test") -> ItemVocabulary:
        """Items of the events a model may know before ``part`` (``split.known(part)``: the train part
        for 'valid'; train + valid for 'test')."""
        return cls(split.known(part)[ITEM].unique())

    def __len__(self) -> int:
        """Rows including padding."""
        return len(self.items) + 1

    def __contains__(self, item: object) -> bool:
        return str(item) in self._row

    def row(self, item: str) -> int:
        """The row of ``item``, or PAD (0) for an item outside the vocabulary."""
        return self._row.get(str(item), PAD)

    def rows(self, items: Sequence[str]) -> np.ndarray:
        return np.fromiter((self._row.get(str(i), PAD) for i in items), dtype=np.int64, count=len(items))

    def candidate_rows(self, candidates: Sequence, n_users: int) -> np.ndarray:
        """Rows of the candidates: shape (C,) for one list shared by every user (full ranking), else
        (n_users, C) for one equal-length list per user. PAD marks candidates outside the vocabulary."""
        from llmrec.scoring import is_shared

        if is_shared(candidates):
            return self.rows([str(c) for c in candidates])
        if len(candidates) != n_users:
            raise ValueError(f"got {len(candidates)} candidate lists for {n_users} users")
        width = len(candidates[0]) if n_users else 0
        if not n_users:
            return np.zeros((0, 0), np.int64)
        return np.stack([self.rows(list(c)) for c in candidates]).reshape(n_users, width)


def user_segments(events: pd.DataFrame, vocabulary: ItemVocabulary) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``events`` sorted by (user, time), their vocabulary rows, and the bounds of each user's run in
    them (user k's events are ``rows[bounds[k]:bounds[k + 1]]``, oldest first)."""
    from llmrec.data.schema import TIME, USER

    ordered = events.sort_values([USER, TIME], kind="stable")
    rows = vocabulary.rows(ordered[ITEM].tolist())
    users = ordered[USER].to_numpy()
    return ordered, rows, np.flatnonzero(np.r_[True, users[1:] != users[:-1], True]) if len(users) else np.zeros(1, int)
