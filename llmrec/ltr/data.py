"""Where the ranking model learns from: training users' own next items, never the evaluated part.

The events known before the evaluated part are split once more: each user's last known event (users
with at least two) is a fitting target, the events before it are what the feature scorers may learn
from. The fitting lists are drawn by the evaluator's own machinery (cases, seeded label-blind
sampled candidates) on that inner split, so they look exactly like the lists the model will rank.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from llmrec.data.schema import USER, Dataset
from llmrec.data.splits import Split
from llmrec.eval import EvalConfig, RankingEvaluator
from llmrec.scoring import History, Scorer

SEQ = "event_seq"  # the split's per-user event position (llmrec.data.splits)


def holdout_last_split(split: Split, part: str) -> Split:
    """The events known before ``part``: each user's last one held out (users with >= 2 events)."""
    known = split.known(part)
    if SEQ not in known.columns:
        raise ValueError(f"the {split.name} split's events carry no {SEQ!r} column")
    known = known.sort_values([USER, SEQ], kind="stable").reset_index(drop=True)
    position = known.groupby(USER).cumcount(ascending=False)
    events = known.groupby(USER)[SEQ].transform("size")
    is_target = (position == 0) & (events >= 2)
    data = split.dataset
    inner = Dataset(f"{data.name} (fitting)", known, data.items, users=data.users, domain=data.domain,
                    source=data.source, timestamps_are_order=data.timestamps_are_order)
    return Split("holdout_last", inner, known[~is_target].reset_index(drop=True), known.iloc[0:0].copy(),
                 known[is_target].reset_index(drop=True), group_targets=False)


@dataclass
class FittingLists:
    """The fitting cases: histories, candidate ids per list, and which candidate is the target."""

    users: list[str]
    histories: list[History]
    candidates: list[list[str]]
    labels: np.ndarray
    """(n_lists, n_candidates) 1.0 where the candidate is the held-out next item."""

    def __len__(self) -> int:
        return len(self.users)


def fitting_lists(inner: Split, n_users: int, num_negatives: int, seed: int,
                  first_stage: Scorer | None = None, rerank_top: int = 20,
                  exclude_users: Collection[str] = ()) -> FittingLists:
    """Seeded ``n_users`` cases of the inner split with the candidates the evaluator draws: sampled
    (the target + ``num_negatives``), or with ``first_stage`` its top ``rerank_top`` items (recalled
    mode), keeping the lists that hold the target (the others teach a reranker nothing).

    ``exclude_users`` (users a loaded feature model trained on) are skipped: the cases are the first
    ``n_users`` others of the same seeded order, so excluding a few users changes only a few lists."""
    exclude = {str(u) for u in exclude_users}
    n_draw = n_users + len(exclude)
    if first_stage is None:
        eval_config = EvalConfig(part="test", mode="sampled", num_negatives=num_negatives, max_cases=n_draw,
                                 seed=seed, show_progress=False)
        evaluator = RankingEvaluator(inner, eval_config)
    else:
        eval_config = EvalConfig(part="test", mode="recalled", n_candidates=rerank_top, max_cases=n_draw,
                                 seed=seed, show_progress=False)
        evaluator = RankingEvaluator(inner, eval_config, channels=[first_stage])
    cases, lists = evaluator.eval_cases, evaluator.candidates.lists
    assert lists is not None  # sampled and recalled modes always give lists
    size = num_negatives + 1 if first_stage is None else rerank_top
    catalog = evaluator.catalog
    histories = cases.scorer_histories(None)
    users, kept_histories, candidates, labels = [], [], [], []
    short = 0
    # The cases in the seeded subsample order (build_cases keeps them sorted by index; re-derive the
    # order so the first n_users non-excluded ones are taken, as a plain n_users draw would be).
    order = _seeded_order(len(cases), n_draw, seed, cases.counts)
    taken = 0
    for i in order:
        if cases.users[i] in exclude:
            continue
        if taken == n_users:
            break
        taken += 1
        targets = cases.target_items_of()[i]
        label = np.isin(lists[i], targets).astype(np.float64)
        if len(lists[i]) != size:
            short += 1
            continue
        if label.any():
            users.append(cases.users[i])
            kept_histories.append(histories[i])
            candidates.append([catalog[j] for j in lists[i]])
            labels.append(label)
    if short and first_stage is None:  # a tiny catalogue gives short sampled lists
        raise ValueError(f"{short} fitting lists have fewer than {num_negatives} negatives: the catalogue is too "
                         f"small for num_negatives={num_negatives}")
    if len(users) < 10:
        raise ValueError(f"only {len(users)} of {len(cases)} fitting lists hold their target (first stage "
                         f"{getattr(first_stage, 'name', None)}, top {size}): raise fit_users or rerank_top")
    return FittingLists(users, kept_histories, candidates, np.stack(labels))


def _seeded_order(n_cases: int, n_draw: int, seed: int, counts: dict) -> list[int]:
    """Case positions in the order the evaluator's seeded subsample drew them (all, in order, when
    nothing was subsampled): the first ``k`` of this order are exactly a ``max_cases=k`` draw."""
    if not counts.get("subsampled"):
        return list(range(n_cases))
    eligible = int(counts["cases_eligible"])
    drawn = np.random.default_rng(seed).permutation(eligible)[:n_draw]
    rank = {int(v): r for r, v in enumerate(np.sort(drawn))}  # position in the sorted subsample
    return [rank[int(v)] for v in drawn]

