"""PTUM data: the item vocabulary and behaviour windows (from ``split.known(part)`` only), the
pretraining collator (masking, next-K targets, seeded negatives), and the labelled users of the
demographics task.

Pretraining reads interactions and nothing else: no users table, no label, no held-out event.
The demographics task splits labelled users into train / test by a seeded order of their ids,
never by their labels, so a test user's label cannot move what the model is trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from llmrec.data.schema import ITEM, TIME, USER, Dataset
from llmrec.data.splits import Split
from llmrec.data.vocabulary import PAD, ItemVocabulary
from llmrec.ptum.config import PTUMConfig

#: MovieLens 1M's age groups (under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+), applied to ML-100K's ages.
AGE_EDGES = (18, 25, 35, 45, 50, 56)
AGE_BANDS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
TARGETS = ("gender", "age", "occupation")


def user_sequences(events: pd.DataFrame, vocabulary: ItemVocabulary) -> dict[str, np.ndarray]:
    """User -> time-ordered vocabulary rows of their events (items outside the vocabulary dropped)."""
    events = events.sort_values([USER, TIME], kind="stable")
    rows = vocabulary.rows(events[ITEM].tolist())
    users = events[USER].to_numpy()
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    out = {}
    for start, end in zip(bounds[:-1], bounds[1:]):
        seq = rows[start:end]
        out[str(users[start])] = seq[seq != PAD]
    return out


def windows(sequence: np.ndarray, max_len: int) -> list[np.ndarray]:
    """Consecutive, non-overlapping windows of at most ``max_len`` events, cut from the end (the
    most recent events always form a whole window)."""
    ends = range(len(sequence), 0, -max_len)
    return [sequence[max(0, end - max_len):end] for end in ends][::-1]


class PTUMSequences(torch.utils.data.Dataset):
    """Pretraining windows of vocabulary rows, each at least ``min_len`` events long."""

    def __init__(self, windows: list[np.ndarray]):
        self.windows = windows

    @classmethod
    def from_split(cls, split: Split, vocabulary: ItemVocabulary, config: PTUMConfig,
                   part: str = "test") -> PTUMSequences:
        """Windows of ``split.known(part)`` only; ``min_length(config)`` events or more each."""
        shortest = min_length(config)
        out = [w for seq in user_sequences(split.known(part), vocabulary).values()
               for w in windows(seq, config.max_len) if len(w) >= shortest]
        return cls(out)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        return {"items": self.windows[i]}


def min_length(config: PTUMConfig) -> int:
    """Next-K needs K targets plus one input behaviour; masking needs a context besides the hidden one."""
    return config.next_k + 1 if config.next_k_task else 2


def pad_rows(sequences: Sequence[np.ndarray]) -> torch.Tensor:
    """Right-padded (B, longest) LongTensor of rows."""
    width = max((len(s) for s in sequences), default=0)
    out = torch.full((len(sequences), width), PAD, dtype=torch.long)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = torch.as_tensor(np.asarray(seq, dtype=np.int64))
    return out


@dataclass
class PTUMCollator:
    """Builds the two tasks' tensors from windows, with one seeded ``numpy`` Generator.

    MBP: each behaviour is hidden with probability ``mask_share`` (at least one per window); the
    hidden rows become the [MASK] id ``n_items`` in ``input_ids``, and ``mask_candidates`` holds the
    true row then ``mask_negatives`` negatives at those positions. NBP (``next_k`` > 0): the last K
    rows of each window are targets (``next_candidates``: true row then negatives) and
    ``prefix_ids`` holds the window without them. Negatives are vocabulary rows (items of the known
    behaviours), drawn uniformly with replacement, outside the window, or, if the window holds every
    item, anything but the positive: never the positive itself. Mask positions are drawn before any negative, so they do
    not depend on which items the window holds.
    """

    n_items: int
    masked: bool = True
    mask_share: float = 0.15
    mask_negatives: int = 4
    next_k: int = 0
    next_negatives: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_items < 3:
            raise ValueError(f"PTUM needs at least 2 vocabulary items to sample a negative, got {self.n_items - 1}")
        if not self.masked and self.next_k < 1:
            raise ValueError("PTUMCollator: no task (masked off and next_k 0)")
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        seqs = [np.asarray(b["items"], dtype=np.int64) for b in batch]
        out: dict[str, torch.Tensor] = {}
        if self.masked:
            hidden = [self._rng.random(len(s)) < self.mask_share for s in seqs]
            for h in hidden:
                if not h.any():
                    h[self._rng.integers(len(h))] = True
            inputs = pad_rows(seqs)
            candidates = torch.zeros((*inputs.shape, 1 + self.mask_negatives), dtype=torch.long)
            for i, (s, h) in enumerate(zip(seqs, hidden)):
                where = np.flatnonzero(h)
                inputs[i, where] = self.n_items
                block = np.column_stack([s[where], self.negatives(s[where], s, self.mask_negatives)])
                candidates[i, where] = torch.from_numpy(block)
            out["input_ids"], out["mask_candidates"] = inputs, candidates
        if self.next_k:
            if min(len(s) for s in seqs) <= self.next_k:
                raise ValueError(f"next-K needs windows longer than K={self.next_k}")
            out["prefix_ids"] = pad_rows([s[: -self.next_k] for s in seqs])
            out["next_candidates"] = torch.from_numpy(np.stack([
                np.column_stack([s[-self.next_k:], self.negatives(s[-self.next_k:], s, self.next_negatives)])
                for s in seqs]))
        return out

    def negatives(self, positives: np.ndarray, window: np.ndarray, n: int) -> np.ndarray:
        """(len(positives), n) rows in [1, n_items), outside ``window`` where possible, never the positive."""
        draw = self._rng.integers(1, self.n_items, size=(len(positives), n))
        if len(np.unique(window)) < self.n_items - 1:
            def bad(x: np.ndarray) -> np.ndarray:
                return np.isin(x, window)
        else:  # the window holds every item: only the positive itself is excluded
            def bad(x: np.ndarray) -> np.ndarray:
                return x == positives[:, None]
        hit = bad(draw)
        while hit.any():  # resample only the collisions
            draw[hit] = self._rng.integers(1, self.n_items, size=int(hit.sum()))
            hit = bad(draw)
        return draw


def text_item_vectors(dataset: Dataset, vocabulary: ItemVocabulary, config: PTUMConfig) -> torch.Tensor:
    """(len(vocabulary), dim) frozen sentence-encoder vectors of the item texts, row 0 zeros.

    Through the on-disk embedding cache, so the catalogue is encoded once per model. Text is content,
    not interactions: it carries no held-out event.
    """
    from llmrec.embed.cache import embed_with_cache
    from llmrec.embed.encoder import load_sentence_encoder
    from llmrec.embed.files import render_item_texts

    encoder = load_sentence_encoder(config.text_model)
    texts = render_item_texts(dataset, config.text_template).reindex(vocabulary.items).fillna("")
    vectors, _ = embed_with_cache(encoder, vocabulary.items, list(texts), cache_dir=config.cache_dir,
                                  show_progress=config.progress)
    return torch.cat([torch.zeros(1, vectors.shape[1]), torch.from_numpy(np.asarray(vectors, dtype=np.float32))])


# --- demographics ----------------------------------------------------------------------------------
def user_labels(users: pd.DataFrame, target: str) -> tuple[pd.Series, list[str]]:
    """Class name per user (ages binned into AGE_BANDS) and the task's label set."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {list(TARGETS)}, got {target!r}")
    if target not in users.columns:
        raise ValueError(f"the users table has no {target!r} column (columns: {list(users.columns)})")
    column = users[target].dropna()
    if target == "age":
        bands = np.searchsorted(np.asarray(AGE_EDGES), column.to_numpy(dtype=float), side="right")
        labels = pd.Series([AGE_BANDS[b] for b in bands], index=column.index)
        return labels, list(AGE_BANDS)
    labels = column.astype(str)
    classes = ["F", "M"] if target == "gender" else sorted(labels.unique())
    return labels, classes


HOLDOUTS = ("test", "valid")


@dataclass
class DemographicData:
    """Labelled users split by user: behaviour rows, class indices, and the label set. ``test_*``
    are the evaluated users: the test users, or with ``holdout='valid'`` a validation slice of the
    training pool (the test users are then left out entirely)."""

    classes: list[str]
    train_users: list[str]
    train_items: list[np.ndarray]
    train_labels: list[int]
    test_users: list[str]
    test_items: list[np.ndarray]
    test_labels: list[int]
    holdout: str = "test"


def demographic_data(split: Split, vocabulary: ItemVocabulary, target: str, label_fraction: float, seed: int,
                     max_len: int, test_share: float = 0.2, part: str = "test",
                     holdout: str = "test") -> DemographicData:
    """Labelled users with known behaviour (their most recent ``max_len`` events), split into test
    (``test_share``) and a training pool by a seeded order of user ids; ``label_fraction`` of the
    pool (at least one user) keeps its label. One seed gives nested subsets: the 1% users are among
    the 10% users.

    ``holdout='valid'`` is for tuning: the test users are dropped, a ``test_share`` slice of the
    pool is evaluated instead, and the label fraction is taken from the rest of the pool. The test
    users are the same as with ``holdout='test'`` for a seed, so no setting is chosen on them."""
    if not 0.0 < label_fraction <= 1.0:
        raise ValueError(f"label_fraction must be in (0, 1], got {label_fraction}")
    if holdout not in HOLDOUTS:
        raise ValueError(f"holdout must be one of {list(HOLDOUTS)}, got {holdout!r}")
    if split.dataset.users is None:
        raise ValueError(f"{split.dataset.name} has no users table: the demographics task needs one")
    labels, classes = user_labels(split.dataset.users, target)
    labels.index = labels.index.astype(str)
    sequences = user_sequences(split.known(part), vocabulary)
    users = sorted(u for u in labels.index if len(sequences.get(u, ())))
    order = [users[i] for i in np.random.default_rng(seed).permutation(len(users))]
    n_test = max(1, int(round(test_share * len(order))))
    test, pool = order[:n_test], order[n_test:]
    if holdout == "valid":
        n_valid = max(1, int(round(test_share * len(pool))))
        test, pool = pool[:n_valid], pool[n_valid:]
    train = pool[: max(1, int(round(label_fraction * len(pool))))]
    if not train or not test:
        raise ValueError(f"too few labelled users ({len(users)}) for a train / {holdout} split")
    index = {c: i for i, c in enumerate(classes)}

    def recent(user: str) -> np.ndarray:
        return sequences[user][-max_len:]

    return DemographicData(classes, train, [recent(u) for u in train], [index[labels[u]] for u in train],
                           test, [recent(u) for u in test], [index[labels[u]] for u in test], holdout)


def user_subset(users: Sequence[str], fraction: float, seed: int) -> set[str]:
    """A seeded ``fraction`` (at least one) of ``users``, drawn from their sorted ids, so it does
    not depend on the order they come in; one seed gives nested subsets (1% within 10%)."""
    ordered = sorted(users)
    order = np.random.default_rng(seed).permutation(len(ordered))
    return {ordered[i] for i in order[: max(1, int(round(fraction * len(ordered))))]}


class LabelledUsers(torch.utils.data.Dataset):
    def __init__(self, items: list[np.ndarray], labels: list[int]):
        self.items, self.labels = items, labels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return {"items": self.items[i], "label": self.labels[i]}


def collate_labelled(batch: list[dict]) -> dict[str, torch.Tensor]:
    return {"input_ids": pad_rows([b["items"] for b in batch]),
            "labels": torch.tensor([b["label"] for b in batch], dtype=torch.long)}
