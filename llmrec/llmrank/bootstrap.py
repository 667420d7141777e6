"""Position bias: bootstrapped candidate orders, and a report of NDCG by the target's position.

LLMs favour candidates by where they stand in the prompt (LLMRank, section 4.3). Bootstrapping
asks about B orders of the same candidates and sums the scores, so no single position decides.
The orders depend only on the seed and the candidate ids, never on which candidate is the target.

The position-bias report keeps each evaluation user's random negatives and puts the target at a
fixed position (0, 5, 10, 15, 19 of 20); a scorer free of position bias has the same NDCG at every
position.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from llmrec.eval.metrics import RankedScores, aggregate
from llmrec.llmrank.candidates import ProtocolCases, place_target
from llmrec.scoring import Scorer

DEFAULT_POSITIONS = (0, 5, 10, 15, 19)
DEFAULT_KS = (1, 5, 10, 20)


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


def ranking_metrics(scores: np.ndarray, candidates: Sequence[Sequence[str]],
                    targets: Sequence[Sequence[str]], ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean HR/NDCG/MRR@K over cases for per-case candidate lists and each case's target(s).

    Unlike the evaluator's sampled mode, a case whose targets are all missing from its candidates
    counts as a miss (metrics 0): what a recall-then-rank pipeline (multi-channel) must report.
    Ties are broken against the scorer, as in ``llmrec.eval.metrics``.
    """
    relevant = np.array([[str(c) in {str(t) for t in ts} for c in cands]
                         for cands, ts in zip(candidates, targets)], dtype=bool)
    per_case = RankedScores(np.asarray(scores, dtype=np.float64)).case_metrics(relevant, ks)
    metrics = aggregate(per_case, ks)
    return {k: v for k, v in metrics.items() if k.split("@")[0] in ("hr", "ndcg", "mrr")}


def position_bias_report(
    scorer: Scorer,
    cases: ProtocolCases,
    positions: Sequence[int] = DEFAULT_POSITIONS,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict:
    """HR/NDCG/MRR@K with the target moved to each fixed position of the protocol's lists.

    Every case keeps its own negatives in their (shuffled) order; only the target's place changes
    between rows. Cases with more than one target are left out (counted).
    """
    single = [i for i, ts in enumerate(cases.targets) if len(ts) == 1]
    histories = [cases.histories[i] for i in single]
    targets = [cases.targets[i] for i in single]
    negatives = [[c for c in cases.candidates[i] if c != cases.targets[i][0]] for i in single]
    n = len(negatives[0]) + 1 if negatives else 0
    by_position: dict[int, dict[str, float]] = {}
    for position in positions:
        if not 0 <= position < n:
            raise ValueError(f"position {position} outside 0..{n - 1}")
        candidates = [place_target(neg, ts[0], position) for neg, ts in zip(negatives, targets)]
        scores = scorer.score(histories, candidates)
        by_position[int(position)] = ranking_metrics(scores, candidates, targets, ks)
    return {"positions": by_position, "cases": len(single), "skipped_multi_target": len(cases) - len(single)}
