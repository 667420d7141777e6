"""Position bias: bootstrapped candidate orders, and a report of NDCG by the target's position.

LLMs favour candidates by where they stand in the prompt (LLMRank, section 4.3). Bootstrapping
asks about B orders of the same candidates and sums the scores, so no single position decides.
The orders depend only on the seed and the candidate ids, never on which candidate is the target.

The position-bias report keeps each case's negatives in their order and puts the target at a
fixed position (0, 5, 10, 15, 19 of 20); each position's lists go through the one evaluator as
given candidates. A scorer free of position bias has the same NDCG at every position.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from llmrec.candidates import CandidateLists
from llmrec.eval import RankingEvaluator
from llmrec.scoring import Scorer

DEFAULT_POSITIONS = (0, 5, 10, 15, 19)


def bootstrap_orders(candidates: Sequence[str], copies: int, seed: int = 0) -> list[np.ndarray]:
    """``copies`` orders of ``range(len(candidates))``: the given order first, then seeded shuffles.

    The seed mixes in the candidate ids, so a list gets the same shuffles in every batch and run.
    """
    if copies < 1:
        raise ValueError(f"bootstrap copies must be >= 1, got {copies}")
    n = len(candidates)
    key = zlib.crc32("\x1f".join(str(c) for c in candidates).encode("utf-8"))
    rng = np.random.default_rng([int(seed), key])
    return [np.arange(n)] + [rng.permutation(n) for _ in range(copies - 1)]


def borda_scores(order: Sequence[int], n: int) -> np.ndarray:
    """Rank-based scores of a complete order: the first gets ``n``, the last 1 (summable over copies)."""
    scores = np.zeros(n, dtype=np.float64)
    for rank, index in enumerate(order):
        scores[index] = n - rank
    return scores


def place_target(negatives: Sequence[int], target: int, position: int) -> np.ndarray:
    """The list with ``target`` inserted at ``position`` of ``negatives``."""
    if not 0 <= position <= len(negatives):
        raise ValueError(f"position {position} outside 0..{len(negatives)}")
    out = list(negatives)
    out.insert(position, target)
    return np.asarray(out, dtype=np.int64)


def position_bias_report(scorer: Scorer, evaluator: RankingEvaluator,
                         positions: Sequence[int] = DEFAULT_POSITIONS) -> dict:
    """NDCG/HR/MRR with the target moved to each fixed position of ``evaluator``'s sampled lists.

    Needs single-target cases (leave-one-out, predefined); others are an error, not skipped silently.
    """
    lists = evaluator.candidates.lists
    if evaluator.candidates.mode != "sampled" or lists is None:
        raise ValueError("the position-bias report needs a sampled-candidates evaluator (the LLMRank protocol)")
    targets = evaluator.eval_cases.target_items_of()
    if any(len(t) != 1 for t in targets):
        raise ValueError("the position-bias report needs one target per case (leave-one-out or predefined splits)")
    negatives = [[int(i) for i in cand if i != t[0]] for cand, t in zip(lists, targets)]
    by_position: dict[int, dict] = {}
    for position in positions:
        if not 0 <= position <= len(negatives[0]):
            raise ValueError(f"position {position} outside 0..{len(negatives[0])}")
        placed = CandidateLists("given", f"target-at-{position}",
                                [place_target(neg, int(t[0]), position) for neg, t in zip(negatives, targets)])
        at = RankingEvaluator(evaluator.split, evaluator.config, candidates=placed)
        result = at(scorer)
        by_position[int(position)] = {k: result[k] for k in result if k.split("@")[0] in ("hr", "ndcg", "mrr")}
    return {"positions": by_position, "cases": len(negatives)}
