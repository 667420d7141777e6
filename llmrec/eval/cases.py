"""Evaluation cases: who is evaluated, what they did before, and (evaluation side only) their targets.

Built from a split by the evaluators, before any scorer runs. Two histories per case on purpose:

* ``histories``: every known event before the targets. The evaluator excludes these items from
  the ranking and removes targets the user had already consumed (repeat consumption), so
  ``max_history`` can never bring history items back as candidates;
* ``scorer_histories(max_history)``: what a scorer is shown, the most recent ``max_history`` events.

Each history carries its case's user id (``History.user``): scorers built with user features look
them up by it; the targets stay here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM
from llmrec.data.splits import Split
from llmrec.scoring import History


@dataclass
class EvalCases:
    """Cases in the arrays batches are cut from. Targets and history items are catalogue column
    indices, flattened with the case they belong to (sorted by case)."""

    part: str
    users: list[str]
    histories: list[History]
    targets: list[list[str]]
    target_case: np.ndarray
    target_item: np.ndarray
    target_warm: np.ndarray
    target_head: np.ndarray
    history_case: np.ndarray
    history_item: np.ndarray
    counts: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.users)

    def scorer_histories(self, max_history: int | None) -> list[History]:
        return [h.last(max_history) for h in self.histories]

    def history_items_of(self) -> list[np.ndarray]:
        """Each case's history as catalogue indices (items outside the catalogue left out)."""
        bounds = np.searchsorted(self.history_case, np.arange(len(self.users) + 1))
        return [self.history_item[bounds[i]:bounds[i + 1]] for i in range(len(self.users))]

    def target_items_of(self) -> list[np.ndarray]:
        bounds = np.searchsorted(self.target_case, np.arange(len(self.users) + 1))
        return [self.target_item[bounds[i]:bounds[i + 1]] for i in range(len(self.users))]


def head_items(popularity: pd.Series, head_fraction: float) -> tuple[set[str], int | None]:
    """The ``head_fraction`` most popular known items and the fewest interactions a head item has.
    Items tying with the last one are head too, so the cut never depends on how ids sort."""
    n_head = math.ceil(head_fraction * len(popularity))
    if n_head == 0:
        return set(), None
    counts = popularity.sort_values(ascending=False, kind="stable")
    threshold = int(counts.iloc[n_head - 1])
    return set(counts.index[counts >= threshold].astype(str)), threshold


def build_cases(split: Split, catalog: pd.Index, part: str = "test", exclude_history: bool = True,
                min_history: int = 1, max_cases: int | None = None, seed: int = 42,
                head_fraction: float = 0.2) -> EvalCases:
    """The evaluation cases of ``part``: dropped cases counted, a seeded ``max_cases`` subsample."""
    split.check_part(part)
    es = split.eval_set(part, min_history=min_history)
    dropped = {k: int(v) for k, v in es.dropped.items()}
    catalog_set = set(catalog)
    known_items = set(split.known(part)[ITEM].unique())
    head, head_min_count = head_items(split.item_popularity(part), head_fraction)

    users: list[str] = []
    histories: list[History] = []
    kept_targets: list[list[str]] = []
    repeat_removed = not_in_catalog = 0
    dropped["all_targets_in_history"] = dropped["no_target_in_catalog"] = 0
    ratings = es.history_ratings
    for i, (user, hist, targets) in enumerate(zip(es.users, es.histories, es.targets, strict=True)):
        in_history = set(hist) if exclude_history else set()
        keep = []
        for t in targets:
            if t in in_history:
                repeat_removed += 1
            elif t not in catalog_set:
                not_in_catalog += 1
            else:
                keep.append(t)
        if not keep:
            dropped["all_targets_in_history" if any(t in in_history for t in targets) else "no_target_in_catalog"] += 1
            continue
        users.append(user)
        histories.append(History(hist, ratings[i] if ratings is not None else None, user=user))
        kept_targets.append(keep)
    n_eligible = len(users)
    if n_eligible == 0:
        raise ValueError(f"nothing to evaluate: all {len(es) + dropped['short_history']} {part} cases of the "
                         f"{split.name} split were dropped ({dropped})")
    if max_cases is not None and max_cases < n_eligible:
        # Subsample after dropping, so a quick run evaluates exactly max_cases cases. The first
        # max_cases of one seeded order: a smaller subsample is a subset of a larger one.
        pick = np.sort(np.random.default_rng(seed).permutation(n_eligible)[:max_cases])
        users = [users[i] for i in pick]
        histories = [histories[i] for i in pick]
        kept_targets = [kept_targets[i] for i in pick]

    flat_targets = [t for ts in kept_targets for t in ts]
    target_case = np.repeat(np.arange(len(users)), [len(t) for t in kept_targets])
    target_item = catalog.get_indexer(flat_targets).astype(np.int64)
    target_warm = np.array([t in known_items for t in flat_targets], dtype=bool)
    target_head = np.array([t in head for t in flat_targets], dtype=bool) & target_warm
    history_case = np.repeat(np.arange(len(users)), [len(h) for h in histories])
    history_item = catalog.get_indexer([i for h in histories for i in h]).astype(np.int64)
    in_cat = history_item >= 0  # history items outside the catalogue are never candidates anyway
    counts = {
        "cases": len(users),
        "cases_built": len(es),
        "cases_eligible": n_eligible,
        "subsampled": len(users) < n_eligible,
        "users": len(set(users)),
        "targets": len(flat_targets),
        "dropped_cases": dropped,
        "targets_removed_in_history": repeat_removed,
        "targets_not_in_catalog": not_in_catalog,
        "history_excluded": exclude_history,
        "head_items": len(head),
        "head_min_interactions": head_min_count,
        "known_items": len(known_items),
    }
    return EvalCases(part, users, histories, kept_targets, target_case, target_item, target_warm, target_head,
                     history_case[in_cat], history_item[in_cat], counts)
