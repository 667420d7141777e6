"""Training examples and training-side check lists for the next-title LM, from known events only.

A training example is (history, next item): for a seeded sample of users, each of their last
``targets_per_user`` known events with the known events before it as the history. A check list
(for the held-out training users) is the user's last known item plus sampled items from outside
everything the user touched, the evaluator's sampled protocol. Only ``known`` events are read: no
evaluation target can reach a training prompt, a check list or a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmrec.candidates.base import case_seed
from llmrec.data.sequences import user_sequences


@dataclass(frozen=True)
class TitleExample:
    """One training example: a user's history (oldest first) and the item that came next."""

    user: str
    history: list[str]
    target: str


@dataclass(frozen=True)
class CheckList:
    """A held-out training user's last known item among sampled ones (``candidates[0]`` is the target)."""

    user: str
    history: list[str]
    candidates: list[str]


def training_examples(known: pd.DataFrame, users: Sequence[str], targets_per_user: int,
                      history_len: int) -> list[TitleExample]:
    """Up to ``targets_per_user`` examples per user in ``users`` (each needs at least one earlier event)."""
    sequences = user_sequences(known)
    out: list[TitleExample] = []
    for user in users:
        seq = sequences.get(str(user), [])
        for position in range(max(1, len(seq) - targets_per_user), len(seq)):
            out.append(TitleExample(str(user), seq[:position][-history_len:], seq[position]))
    return out


def check_lists(known: pd.DataFrame, catalogue: Sequence[str], users: Sequence[str], num_negatives: int,
                history_len: int, seed: int) -> list[CheckList]:
    """One list per user with at least two known events: the last one first, then seeded negatives."""
    sequences = user_sequences(known)
    items = np.asarray([str(i) for i in catalogue], dtype=object)
    out: list[CheckList] = []
    for user in users:
        seq = sequences.get(str(user), [])
        if len(seq) < 2:
            continue
        history, target = seq[:-1], seq[-1]
        rng = np.random.default_rng(case_seed(seed, str(user), history))
        touched = set(seq)
        negatives: list[str] = []
        for k in rng.permutation(len(items)):
            if len(negatives) == num_negatives:
                break
            if items[k] not in touched:
                negatives.append(str(items[k]))
        if len(negatives) < num_negatives:
            raise ValueError(f"nexttitle: the catalogue ({len(items)} items) is too small for {num_negatives} "
                             f"negatives outside user {user!r}'s {len(touched)} items")
        out.append(CheckList(str(user), history[-history_len:], [target, *negatives]))
    return out
