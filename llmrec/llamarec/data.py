"""Training lists for the LlamaRec reranker, built from the events known before the evaluated part.

For a seeded sample of users, the target is the user's last known event and the history is the
known events before it; the list is the target plus ``num_negatives`` negatives drawn uniformly
from the catalogue minus everything the user is known to have touched (the evaluator's sampled
protocol, so training and evaluation ask the same question). The order is the candidates stage's
label-blind one (``shuffle_label_blind``: a per-(case, item) key seeded on the user and history),
so where the target stands depends on its id, never on its being the target. Only ``known``
events are read: no evaluation target can reach a training prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmrec.candidates.base import case_seed, shuffle_label_blind
from llmrec.data.sequences import popularity_buckets, sample_users, user_sequences

__all__ = ["RerankExample", "popularity_buckets", "sample_users", "training_examples", "user_sequences"]


@dataclass(frozen=True)
class RerankExample:
    """One training list: the history (oldest first), the candidates in prompt order, the target's index."""

    user: str
    history: list[str]
    candidates: list[str]
    target: int

    @property
    def target_item(self) -> str:
        return self.candidates[self.target]


def training_examples(known: pd.DataFrame, catalogue: Sequence[str], users: Sequence[str], num_negatives: int,
                      history_len: int, seed: int) -> list[RerankExample]:
    """One list per user in ``users`` with at least two known events (a target and a history)."""
    sequences = user_sequences(known)
    items = np.asarray([str(i) for i in catalogue], dtype=object)
    index = {item: k for k, item in enumerate(items)}
    out: list[RerankExample] = []
    for user in users:
        seq = sequences.get(str(user), [])
        if len(seq) < 2:
            continue
        history, target = seq[:-1], seq[-1]
        if target not in index:
            raise ValueError(f"llamarec: known event of user {user!r} names item {target!r}, which is not in the "
                             "catalogue")
        case = case_seed(seed, str(user), history)
        rng = np.random.default_rng(case)
        touched = np.asarray(sorted({index[i] for i in seq if i in index}), dtype=np.int64)
        # The draw's size depends on how many items the user touched, never on which one is the target.
        size = min(len(items), num_negatives + len(touched))
        draw = rng.choice(len(items), size=size, replace=False)
        negatives = draw[~np.isin(draw, touched)][:num_negatives]
        if len(negatives) < num_negatives:
            raise ValueError(f"llamarec: the catalogue ({len(items)} items) is too small for {num_negatives} "
                             f"negatives outside user {user!r}'s {len(touched)} items")
        order = shuffle_label_blind(case, np.concatenate([[index[target]], negatives]).astype(np.int64))
        candidates = [str(items[k]) for k in order]
        out.append(RerankExample(str(user), history[-history_len:], candidates, candidates.index(target)))
    return out
