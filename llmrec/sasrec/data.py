"""SASRec data: the item vocabulary (training events only), training windows, the collator.

The vocabulary is built from the training events alone (those known before the evaluated part),
so a cold item that only the evaluated part holds has no row and can never leak into the model;
the scorer gives such items a finite lowest score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from llmrec.data.schema import ITEM, TIME, USER
from llmrec.data.vocabulary import PAD, ItemVocabulary


def sequence_windows(sequence: np.ndarray, window: int) -> list[np.ndarray]:
    """Cut a sequence into windows of at most ``window`` events from the end; consecutive windows
    share one event, so every event after the first is a target exactly once."""
    if len(sequence) <= window:
        return [sequence]
    out, end = [], len(sequence)
    while end > 1:
        start = max(0, end - window)
        out.append(sequence[start:end])
        end = start + 1
    return out[::-1]


class SASRecSequences(torch.utils.data.Dataset):
    """Training windows of vocabulary rows, ``max_len`` inputs plus the next item each."""

    def __init__(self, windows: list[np.ndarray]):
        self.windows = windows

    @classmethod
    def from_interactions(cls, train: pd.DataFrame, vocabulary: ItemVocabulary, max_len: int) -> SASRecSequences:
        events = train.sort_values([USER, TIME], kind="stable")
        rows = vocabulary.rows(events[ITEM].tolist())
        users = events[USER].to_numpy()
        bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
        windows = []
        for start, end in zip(bounds[:-1], bounds[1:]):
            seq = rows[start:end]
            seq = seq[seq != PAD]
            if len(seq) >= 2:
                windows.extend(sequence_windows(seq, max_len + 1))
        return cls(windows)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        return {"items": self.windows[i]}


@dataclass
class SASRecCollator:
    """Right-padded inputs, next-item labels (-100 at padding) and, for the 'bce' objective, one
    uniformly sampled negative per position that is not in the user's window."""

    n_items: int
    sample_negatives: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(b["items"]) for b in batch) - 1
        inputs = torch.full((len(batch), length), PAD, dtype=torch.long)
        labels = torch.full((len(batch), length), -100, dtype=torch.long)
        for i, b in enumerate(batch):
            seq = torch.as_tensor(b["items"], dtype=torch.long)
            inputs[i, : len(seq) - 1] = seq[:-1]
            labels[i, : len(seq) - 1] = seq[1:]
        out = {"input_ids": inputs, "labels": labels}
        if self.sample_negatives:
            negatives = self._rng.integers(1, self.n_items, size=labels.shape)
            for i, b in enumerate(batch):
                seen = np.asarray(b["items"])
                if len(np.unique(seen)) >= self.n_items - 1:
                    continue  # the window holds every item: no negative exists
                hit = np.isin(negatives[i], seen)
                while hit.any():  # resample only the collisions
                    negatives[i, hit] = self._rng.integers(1, self.n_items, size=int(hit.sum()))
                    hit = np.isin(negatives[i], seen)
            out["negatives"] = torch.from_numpy(negatives)
        return out
