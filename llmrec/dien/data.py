"""DIEN data: item categories, CTR training examples from time-ordered click sequences, the collator.

Every known event of a user after their first is a target: its history is the user's events before
it (the most recent ``max_len``), never anything later. Each target gives a positive example and a
negative one, the same history with an item sampled uniformly from the catalogue minus that history
and the target (catalogue items without a known event enter as the padding row with their category,
as the scorer sees them). The auxiliary loss gets, for every history step, a sampled item outside the history
(the "non-clicked" behaviour). All sampling is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from llmrec.data.vocabulary import PAD, ItemVocabulary, user_segments


def item_categories(items: pd.DataFrame, column: str) -> dict[str, int]:
    """Catalogue item id -> category index (1-based; 0 is padding / unknown): the first comma-separated
    value of ``column``. Without that column every item gets category 1."""
    index = [str(i) for i in items.index]
    if column not in items.columns:
        return dict.fromkeys(index, 1)
    first = [str(v).split(",")[0].strip() if isinstance(v, str) and v.strip() else "" for v in items[column]]
    names = {name: k + 1 for k, name in enumerate(sorted(set(first)))}
    return {i: names[c] for i, c in zip(index, first, strict=True)}


def category_rows(categories: dict[str, int], vocabulary: ItemVocabulary) -> np.ndarray:
    """Category of each vocabulary row (row 0 -> 0)."""
    return np.asarray([PAD] + [categories.get(i, PAD) for i in vocabulary.items], dtype=np.int64)


class DIENExamples(torch.utils.data.Dataset):
    """Example 2k is target k's positive, 2k + 1 its negative (the negative item is drawn by the collator)."""

    def __init__(self, sequences: list[np.ndarray], targets: list[tuple[int, int]]):
        self.sequences = sequences
        self.targets = targets

    @classmethod
    def from_interactions(cls, known: pd.DataFrame, vocabulary: ItemVocabulary) -> DIENExamples:
        _, rows, bounds = user_segments(known, vocabulary)
        sequences: list[np.ndarray] = []
        targets: list[tuple[int, int]] = []
        for start, end in zip(bounds[:-1], bounds[1:]):
            seq = rows[start:end]
            seq = seq[seq != PAD]
            if len(seq) >= 2:
                targets.extend((len(sequences), t) for t in range(1, len(seq)))
                sequences.append(seq)
        return cls(sequences, targets)

    def __len__(self) -> int:
        return 2 * len(self.targets)

    def __getitem__(self, k: int) -> dict:
        user, t = self.targets[k // 2]
        return {"user": user, "position": t, "label": int(k % 2 == 0)}


def sample_outside(rng: np.random.Generator, n_items: int, excluded: np.ndarray, size: int) -> np.ndarray:
    """``size`` values drawn uniformly from 1..n_items-1 minus ``excluded`` (with replacement)."""
    out = rng.integers(1, n_items, size=size)
    if len(np.unique(excluded)) >= n_items - 1:
        return out  # nothing is left outside: keep the draw (never happens on real data)
    hit = np.isin(out, excluded)
    while hit.any():
        out[hit] = rng.integers(1, n_items, size=int(hit.sum()))
        hit = np.isin(out, excluded)
    return out


@dataclass
class DIENCollator:
    examples: DIENExamples
    categories: np.ndarray
    """Category of each vocabulary row."""
    max_len: int
    seed: int = 0
    cold_categories: np.ndarray | None = None
    """Categories of the catalogue items without a known event (no ID row). Negative targets are drawn
    from the whole catalogue, these included (as padding row + category), so the model learns what
    such items are worth instead of meeting them first at evaluation time."""

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self.n_items = len(self.categories)
        self._cold = np.zeros(0, np.int64) if self.cold_categories is None else np.asarray(self.cold_categories)

    def _negative(self, excluded: np.ndarray) -> tuple[int, int]:
        """A (row, category) drawn uniformly from the catalogue minus the ``excluded`` rows."""
        k = int(sample_outside(self._rng, self.n_items + len(self._cold), excluded, 1)[0])
        if k < self.n_items:
            return k, int(self.categories[k])
        return PAD, int(self._cold[k - self.n_items])

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        n = len(batch)
        windows = []
        targets = np.empty(n, dtype=np.int64)
        target_cats = np.empty(n, dtype=np.int64)
        for i, b in enumerate(batch):
            seq = self.examples.sequences[b["user"]]
            t = b["position"]
            window = seq[max(0, t - self.max_len):t]
            windows.append(window)
            if b["label"]:
                targets[i], target_cats[i] = seq[t], self.categories[seq[t]]
            else:
                targets[i], target_cats[i] = self._negative(np.append(window, seq[t]))
        length = max(len(w) for w in windows)
        hist = np.zeros((n, length), dtype=np.int64)
        neg = np.zeros((n, length), dtype=np.int64)
        for i, w in enumerate(windows):
            hist[i, : len(w)] = w
            neg[i, : len(w)] = sample_outside(self._rng, self.n_items, w, len(w))
        return {"hist_items": torch.from_numpy(hist), "hist_cats": torch.from_numpy(self.categories[hist]),
                "target_item": torch.from_numpy(targets), "target_cat": torch.from_numpy(target_cats),
                "labels": torch.tensor([b["label"] for b in batch], dtype=torch.float32),
                "neg_items": torch.from_numpy(neg), "neg_cats": torch.from_numpy(self.categories[neg])}
