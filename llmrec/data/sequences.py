"""Views of the known events that several methods read: each user's items in time order, and each
item's popularity as a coarse bucket for prompts. Callers pass only the events known before the
evaluated part (``split.known(part)``), so nothing here can see an evaluation target."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM, USER

SEQ = "event_seq"  # a user's events in time order (the split's own column; ties keep source order)


def user_sequences(known: pd.DataFrame) -> dict[str, list[str]]:
    """Each user's known items in time order."""
    order = [USER, SEQ] if SEQ in known.columns else [USER]
    ordered = known.sort_values(order, kind="stable")
    return {str(u): [str(i) for i in g] for u, g in ordered.groupby(USER, sort=False)[ITEM]}


def popularity_buckets(known: pd.DataFrame) -> dict[str, int]:
    """Item -> floor(log2(1 + known events)), capped at 9 (items with no known event: absent, i.e. 0)."""
    counts = known[ITEM].astype(str).value_counts()
    return {str(i): min(9, int(math.log2(1 + int(c)))) for i, c in counts.items()}


def sample_users(users: Sequence[str], n_train: int, n_valid: int, seed: int) -> tuple[list[str], list[str]]:
    """Disjoint seeded samples of training and validation users (``n_train`` 0: all the rest train)."""
    pool = sorted(users)
    rng = np.random.default_rng([int(seed), 0x11A4A])
    order = [pool[i] for i in rng.permutation(len(pool))]
    valid = order[:n_valid]
    rest = order[n_valid:]
    return (rest if n_train == 0 else rest[:n_train]), valid
