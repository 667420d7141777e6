"""CTR evaluation pairs with sampled negatives (DIEN's protocol): for every held-out click, the
positive (history, clicked item) and ``negatives`` (history, sampled item) pairs labelled 0.

Histories hold only events before the target (``split.eval_set``). Negatives are drawn uniformly
from the catalogue minus the case's history and targets, seeded on the case (user, history) as the
sampled candidates are, so they are never the label and every scorer gets the same pairs.
"""

from __future__ import annotations

import numpy as np

from llmrec.candidates.base import case_seed
from llmrec.data.splits import Split
from llmrec.eval.pointwise import PointwiseEvaluator
from llmrec.scoring import History


def ctr_evaluator(split: Split, part: str = "test", negatives: int = 1, min_history: int = 1,
                  max_history: int | None = None, seed: int = 42, **kwargs) -> PointwiseEvaluator:
    """A :class:`PointwiseEvaluator` (AUC, log loss) over held-out clicks and sampled non-clicks."""
    if negatives < 1:
        raise ValueError(f"negatives must be >= 1, got {negatives}")
    split.check_part(part)
    es = split.eval_set(part, min_history=min_history)
    catalogue = np.asarray([str(i) for i in split.dataset.items.index], dtype=object)
    histories: list[History] = []
    items: list[str] = []
    labels: list[int] = []
    short = 0
    for i, (user, history, targets) in enumerate(zip(es.users, es.histories, es.targets, strict=True)):
        ratings = es.history_ratings[i] if es.history_ratings is not None else None
        shown = History(history, ratings).last(max_history)
        rng = np.random.default_rng(case_seed(seed, user, history))
        taken = set(history) | set(targets)
        for target in targets:
            draw = catalogue[rng.choice(len(catalogue), size=min(len(catalogue), negatives + len(taken)),
                                        replace=False)]
            picked = [str(x) for x in draw if x not in taken][:negatives]
            short += len(picked) < negatives
            for item, label in [(target, 1)] + [(x, 0) for x in picked]:
                histories.append(shown)
                items.append(str(item))
                labels.append(label)
    if not items:
        raise ValueError(f"nothing to evaluate: every {part} case of the {split.name} split was dropped ({es.dropped})")
    pop = split.dataset.population()
    counts = {"label": f"held-out click 1, {negatives} sampled non-click(s) 0", "dropped_cases": dict(es.dropped),
              "cases_with_fewer_negatives": short}
    population = {"users_evaluated": len(set(es.users)), "users_in_dataset": pop["users"],
                  "users_in_source": pop["users_total"], "subsampled_dataset": pop["subsampled"]}
    return PointwiseEvaluator(histories, items, labels, name=split.dataset.name, counts=counts,
                              population=population, split_name=split.name, part=part, **kwargs)
