"""The one contract every method meets: a scorer rates candidate items for users given histories.

Popularity, the embedding ranker, SASRec, LEARN, an LLM reranker, TALLRec's P(Yes): all are
scorers. The evaluator calls ``score`` and nothing else; a scorer never sees a label.

Candidates come in two shapes:
* one flat list shared by every user (full ranking over the catalogue): ``list[str]``;
* one list per user (sampled ranking, recalled candidates): ``list[list[str]]`` of equal length.
Either way ``score`` returns a float array of shape ``(n_users, n_candidates)``; higher is better.
Items a scorer knows nothing about get a finite score it chooses (e.g. 0), never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

Histories = Sequence[Sequence[str]]
Candidates = Sequence[str] | Sequence[Sequence[str]]


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray: ...


def is_shared(candidates: Candidates) -> bool:
    """True when ``candidates`` is one flat list for all users (full ranking)."""
    return len(candidates) == 0 or isinstance(candidates[0], str)


def per_user_candidates(candidates: Candidates, n_users: int) -> list[Sequence[str]]:
    """Expand shared candidates to one list per user (for scorers that work user by user)."""
    if is_shared(candidates):
        return [candidates] * n_users  # type: ignore[list-item]
    if len(candidates) != n_users:
        raise ValueError(f"got {len(candidates)} candidate lists for {n_users} users")
    return list(candidates)  # type: ignore[arg-type]


def check_scores(scores: np.ndarray, n_users: int, n_candidates: int, scorer: str) -> np.ndarray:
    """Validate a scorer's output so a bug shows as a message, not as a silently wrong metric."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n_users, n_candidates):
        raise ValueError(f"scorer {scorer!r} returned shape {scores.shape}, expected {(n_users, n_candidates)}")
    if np.isnan(scores).any():
        raise ValueError(f"scorer {scorer!r} returned NaN scores")
    return scores
