"""Two-tower data: per-user event arrays from the known events, one training example per event,
and the collator that builds each example's user history.

A user is their history. For a training event the history is the user's *other* known events (never
the event itself, so the rating to predict never reaches the user tower), each kept with probability
``history_keep`` and at most ``max_history`` of them, in time order. At scoring time the history is
what the evaluator shows (the events before the target, or all known events of the user).

:func:`carve_validation` holds a seeded share of the training events out as a validation part, so
settings (the epoch count first) are chosen without looking at the test part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from llmrec.data.schema import RATING, USER
from llmrec.data.splits import Split
from llmrec.data.vocabulary import PAD, ItemVocabulary, user_segments


def carve_validation(split: Split, ratio: float = 0.1, seed: int = 0) -> Split:
    """``split`` with a seeded ``ratio`` of its training events moved to the valid part.

    Tune with ``part="valid"`` (trains on the rest of train, scores the carved events), then train
    for ``part="test"``: that knows train + valid, i.e. exactly the original training events, and
    the test part is the original one, untouched. The carve draws from train only, so no test event
    can ever be a validation event.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"carve_validation: ratio must be in (0, 1), got {ratio}")
    if len(split.valid):
        raise ValueError(f"carve_validation: the {split.name} split already has a valid part ({len(split.valid)} "
                         "events)")
    held = np.random.default_rng(seed).random(len(split.train)) < ratio
    return dataclasses.replace(split, train=split.train[~held].reset_index(drop=True),
                               valid=split.train[held].reset_index(drop=True))


def history_tensors(rows: Sequence[np.ndarray], ratings: Sequence[np.ndarray | None], fill: float
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, L) item rows (PAD after the end) and ratings (``fill`` where unknown)."""
    length = max([len(r) for r in rows] + [1])
    items = torch.full((len(rows), length), PAD, dtype=torch.long)
    values = torch.full((len(rows), length), fill, dtype=torch.float32)
    for i, (r, v) in enumerate(zip(rows, ratings, strict=True)):
        items[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        if v is not None:
            values[i, : len(r)] = torch.as_tensor(v, dtype=torch.float32)
    return items, values


class TwoTowerEvents(torch.utils.data.Dataset):
    """Every known event (user, item, rating) as one training example; per-user time-ordered arrays.
    ``users[k]`` is user k's id (user-ID row k + 1; row 0 is the unknown user)."""

    def __init__(self, user_rows: list[np.ndarray], user_ratings: list[np.ndarray] | None,
                 event_user: np.ndarray, event_pos: np.ndarray, users: list[str] | None = None):
        self.user_rows = user_rows
        self.user_ratings = user_ratings
        self.event_user = event_user
        self.event_pos = event_pos
        self.users = users if users is not None else [str(k) for k in range(len(user_rows))]

    @classmethod
    def from_interactions(cls, known: pd.DataFrame, vocabulary: ItemVocabulary) -> TwoTowerEvents:
        events, rows, bounds = user_segments(known, vocabulary)
        ratings = events[RATING].to_numpy(dtype=np.float32) if RATING in events.columns else None
        user_rows, user_ratings, event_user, event_pos = [], [], [], []
        ids = events[USER].astype(str).to_numpy()
        users = [str(ids[start]) for start in bounds[:-1]]
        for u, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
            user_rows.append(rows[start:end])
            if ratings is not None:
                user_ratings.append(ratings[start:end])
            event_user.append(np.full(end - start, u))
            event_pos.append(np.arange(end - start))
        return cls(user_rows, user_ratings if ratings is not None else None,
                   np.concatenate(event_user) if event_user else np.zeros(0, np.int64),
                   np.concatenate(event_pos) if event_pos else np.zeros(0, np.int64), users)

    @property
    def has_ratings(self) -> bool:
        return self.user_ratings is not None

    def mean_rating(self) -> float:
        if self.user_ratings is None or not self.user_ratings:
            return 0.0
        return float(np.concatenate(self.user_ratings).mean())

    def item_counts(self, n_items: int) -> np.ndarray:
        """Training events per vocabulary row (row 0, padding, gets 0)."""
        counts = np.zeros(n_items, dtype=np.float64)
        for r in self.user_rows:
            np.add.at(counts, r, 1)
        counts[PAD] = 0
        return counts

    def __len__(self) -> int:
        return len(self.event_user)

    def __getitem__(self, i: int) -> dict:
        return {"event": int(i)}


@dataclass
class TwoTowerCollator:
    """Histories (the user's other events, subsampled), target items and their ratings, user-ID rows."""

    events: TwoTowerEvents
    max_history: int
    history_keep: float = 1.0
    mean_rating: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        ev = self.events
        hist_rows, hist_ratings, items, ratings = [], [], [], []
        for b in batch:
            u, pos = ev.event_user[b["event"]], ev.event_pos[b["event"]]
            rows = ev.user_rows[u]
            keep = self._rng.random(len(rows)) < self.history_keep
            keep[pos] = False  # the target never sits in its own history
            picked = np.flatnonzero(keep)
            if len(picked) > self.max_history:
                picked = np.sort(self._rng.choice(picked, self.max_history, replace=False))
            hist_rows.append(rows[picked])
            items.append(rows[pos])
            if ev.user_ratings is not None:
                hist_ratings.append(ev.user_ratings[u][picked])
                ratings.append(ev.user_ratings[u][pos])
            else:
                hist_ratings.append(None)
                ratings.append(self.mean_rating)
        hist_items, hist_values = history_tensors(hist_rows, hist_ratings, self.mean_rating)
        return {"hist_items": hist_items, "hist_ratings": hist_values,
                "items": torch.as_tensor(np.asarray(items), dtype=torch.long),
                "ratings": torch.as_tensor(np.asarray(ratings), dtype=torch.float32),
                "rated": torch.full((len(batch),), ev.has_ratings, dtype=torch.bool),
                "users": torch.as_tensor([int(ev.event_user[b["event"]]) + 1 for b in batch], dtype=torch.long)}
