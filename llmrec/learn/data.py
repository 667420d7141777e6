"""Training sequences for LEARN: users' time-ordered training events cut into windows, and the
collator that turns a batch of windows into CEG tensors for the dense all-action loss.

Only the events known before the evaluated part are read (``split.known(part)``: sequences and
CVR labels), so no held-out event reaches training. Items without a CEG row (no text) are dropped
from sequences and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from llmrec.data.schema import ITEM, LABEL, RATING, TIME, USER
from llmrec.learn.ceg import ContentEmbeddings
from llmrec.learn.config import LearnConfig

log = logging.getLogger(__name__)


def resolve_cvr_label(config: LearnConfig, train: pd.DataFrame) -> str:
    """The CVR label actually used: 'auto' becomes label, rating or off by what the data has."""
    mode = config.cvr_label
    if config.cvr_weight <= 0:
        return "off"
    if mode == "auto":
        mode = "label" if LABEL in train.columns else "rating" if RATING in train.columns else "off"
    if mode == "label" and LABEL not in train.columns:
        raise ValueError("cvr_label='label' but the training interactions have no 'label' column")
    if mode == "rating" and RATING not in train.columns:
        raise ValueError("cvr_label='rating' but the training interactions have no 'rating' column; "
                         "use cvr_label='interaction' or 'off'")
    return mode


def sequence_windows(sequence: np.ndarray, window: int) -> list[np.ndarray]:
    """Cut a sequence into windows of at most ``window`` events, from the end, so every event after
    the first is a target exactly once (windows share one event: the last input of one window is
    the first of the next, so no transition is lost)."""
    if len(sequence) <= window:
        return [sequence]
    out = []
    end = len(sequence)
    while end > 1:
        start = max(0, end - window)
        out.append(sequence[start:end])
        end = start + 1
    return out[::-1]


class LearnSequences(torch.utils.data.Dataset):
    """Windows of CEG row indices (and per-event CVR labels) from the training interactions."""

    def __init__(self, windows: list[np.ndarray], labels: list[np.ndarray] | None):
        self.windows = windows
        self.labels = labels

    @classmethod
    def from_interactions(cls, train: pd.DataFrame, item_rows: Mapping[str, int], config: LearnConfig,
                          cvr_mode: str | None = None) -> LearnSequences:
        cvr_mode = cvr_mode or resolve_cvr_label(config, train)
        known = train[ITEM].isin(item_rows.keys())
        if (~known).any():
            log.warning("LEARN: %d training events on %d items without text were dropped",
                        int((~known).sum()), train.loc[~known, ITEM].nunique())
        events = train[known].sort_values([USER, TIME], kind="stable")
        rows = events[ITEM].map(item_rows).to_numpy(np.int64)
        if cvr_mode == "rating":
            label_values = (events[RATING].to_numpy(float) >= config.cvr_threshold).astype(np.float32)
        elif cvr_mode == "label":
            label_values = events[LABEL].to_numpy(np.float32)
        else:
            label_values = None
        windows: list[np.ndarray] = []
        labels: list[np.ndarray] | None = [] if label_values is not None else None
        bounds = np.flatnonzero(np.r_[True, events[USER].to_numpy()[1:] != events[USER].to_numpy()[:-1], True])
        for start, end in zip(bounds[:-1], bounds[1:]):
            if end - start < 2:  # one event: nothing to predict
                continue
            # max_len inputs plus the target that follows the last of them
            for w in sequence_windows(np.arange(start, end), config.max_len + 1):
                windows.append(rows[w])
                if labels is not None:
                    labels.append(label_values[w])
        return cls(windows, labels)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        out = {"items": self.windows[i]}
        if self.labels is not None:
            out["labels"] = self.labels[i]
        return out


@dataclass
class LearnCollator:
    """Batch of windows -> the tensors ``LearnModel.forward`` takes.

    Targets are deduplicated (``torch.unique``), so each distinct item is one key and the batch's
    other targets are its in-batch negatives; ``user_items`` marks keys from the same window, which
    the loss masks as accidental hits.
    """

    content: ContentEmbeddings
    cvr_mode: str = "off"
    seed: int = 0

    def __post_init__(self) -> None:
        self.pooled = torch.from_numpy(self.content.pooled())
        self.segments = torch.from_numpy(self.content.segments)
        self.counts = torch.from_numpy(self.content.counts)
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(b["items"]) for b in batch) - 1
        n = len(batch)
        inputs = torch.zeros(n, length, dtype=torch.long)
        targets = torch.full((n, length), -1, dtype=torch.long)
        real = torch.zeros(n, length, dtype=torch.bool)
        for i, b in enumerate(batch):
            seq = torch.as_tensor(b["items"], dtype=torch.long)
            inputs[i, : len(seq) - 1] = seq[:-1]
            targets[i, : len(seq) - 1] = seq[1:]
            real[i, : len(seq) - 1] = True
        keys, target_index = torch.unique(targets[real], return_inverse=True)
        index = torch.full((n, length), -1, dtype=torch.long)
        index[real] = target_index
        history = self.pooled[inputs] * real[..., None]
        user_items = torch.zeros(n, len(keys), dtype=torch.bool)
        for i, b in enumerate(batch):
            user_items[i] = torch.isin(keys, torch.as_tensor(b["items"], dtype=torch.long))
        out = {"history": history, "target_segments": self.segments[keys], "target_counts": self.counts[keys],
               "target_index": index, "user_items": user_items}
        out.update(self._cvr(batch, index, user_items, length))
        return out

    def _cvr(self, batch: list[dict], index: torch.Tensor, user_items: torch.Tensor, length: int) -> dict:
        if self.cvr_mode in ("rating", "label"):
            # Conversion given an interaction: the label of the event at each target position.
            label = torch.zeros(len(batch), length, 1)
            for i, b in enumerate(batch):
                label[i, : len(b["labels"]) - 1, 0] = torch.as_tensor(b["labels"][1:], dtype=torch.float32)
            return {"cvr_key": index[..., None].clone(), "cvr_label": label}
        if self.cvr_mode == "interaction":
            # No conversion signal in the data: the true next item is 1, one random key that is not
            # in the user's window is 0.
            negative = torch.full_like(index, -1)
            for i in range(len(batch)):
                pool = torch.nonzero(~user_items[i]).flatten()
                if len(pool) == 0:
                    continue
                picks = pool[torch.from_numpy(self._rng.integers(0, len(pool), size=length))]
                negative[i] = torch.where(index[i] >= 0, picks, -1)
            key = torch.stack([index, negative], dim=-1)
            label = torch.stack([torch.ones_like(index), torch.zeros_like(index)], dim=-1).float()
            return {"cvr_key": key, "cvr_label": label}
        return {}
