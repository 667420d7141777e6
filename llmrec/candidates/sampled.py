"""Sampled candidates: each case's targets plus N uniform negatives outside its history.

The protocol puts the targets in the list by design; what must not depend on them is everything
else. The random stream is seeded on the case (user, history) and the global seed, and the list
is ordered by a per-(case, item) key, so a target's position depends on its own id, not on being
the target. Targets enter only as "not a negative" (a negative equal to a target is skipped).

What seeding cannot hide: anyone who knows the seed and reruns this sampler on the same history
can list the negatives it draws and find the target as the one item the draw does not explain.
Scorers are never given the seed; for adversarial settings use a secret ``seed`` or given lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmrec.candidates.base import CandidateLists, case_seed, shuffle_label_blind


def sample_candidates(users: Sequence[str], histories: Sequence[Sequence[str]],
                      history_items: Sequence[np.ndarray], target_items: Sequence[np.ndarray],
                      n_items: int, num_negatives: int, seed: int) -> CandidateLists:
    """One list per case: its targets (catalogue indices) plus ``num_negatives`` negatives drawn
    without replacement from the catalogue minus the case's history and targets.

    ``histories`` are the item ids the seed is computed from (the whole known history, however much
    of it a scorer is later shown); ``history_items`` / ``target_items`` are catalogue indices.
    """
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
    lists: list[np.ndarray] = []
    short = 0
    for user, history, hist_idx, tgt_idx in zip(users, histories, history_items, target_items, strict=True):
        seed_value = case_seed(seed, user, history)
        rng = np.random.default_rng(seed_value)
        hist_idx = np.unique(hist_idx)
        # The draw's size depends on the history and the number of targets (which the list's
        # length shows anyway), never on which items the targets are.
        size = min(n_items, num_negatives + len(hist_idx) + len(tgt_idx))
        draw = rng.choice(n_items, size=size, replace=False)
        negatives = draw[~np.isin(draw, hist_idx) & ~np.isin(draw, tgt_idx)][:num_negatives]
        short += len(negatives) < num_negatives
        lists.append(shuffle_label_blind(seed_value, np.concatenate([np.asarray(tgt_idx, np.int64), negatives])))
    return CandidateLists("sampled", f"sampled-{num_negatives}", lists,
                          info={"num_negatives": num_negatives, "seed": seed, "cases_with_fewer_negatives": short})
