"""The one contract every method meets: a scorer rates candidate items for users given histories.

Popularity, item-CF, BM25, the embedding ranker, SASRec, LEARN, an LLM reranker, TALLRec's P(Yes):
all are scorers. The evaluator calls ``score`` and nothing else; a scorer never sees a label.

Histories are time-ordered item ids, oldest first. The evaluator passes :class:`History` objects:
plain lists of ids that also carry the ratings the user gave those items where the data has them
(TALLRec splits a history into liked and disliked items). Ratings of the *history* are known
before the target; the target's own rating never reaches a scorer. A history may also carry the
id of its ``user`` (None where the caller has none), so a scorer built with user features (a
profile from the data set's user table) can look them up; a user id is not a label.

Candidates come in two shapes:
* one flat list shared by every user (full ranking over the catalogue): ``list[str]``;
* one list per user (sampled, recalled or given candidates): ``list[list[str]]`` of equal length.
Either way ``score`` returns a float array of shape ``(n_users, n_candidates)``; higher is better.
Items a scorer knows nothing about get a finite score it chooses (e.g. 0), never NaN.

A scorer may also offer ``diagnostics() -> dict`` (e.g. an LLM's parse-failure rate); the evaluator
attaches it to the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

Histories = Sequence[Sequence[str]]
Candidates = Sequence[str] | Sequence[Sequence[str]]


class History(list):
    """A user's history: item ids oldest first (a ``list[str]``), with the aligned ``ratings``
    (None when the data has no ratings) and the ``user`` it belongs to (None when unknown)."""

    def __init__(self, items: Iterable[str] = (), ratings: Sequence[float] | None = None,
                 user: str | None = None) -> None:
        super().__init__(str(i) for i in items)
        if ratings is not None and len(ratings) != len(self):
            raise ValueError(f"history has {len(self)} items but {len(ratings)} ratings")
        self.ratings: list[float] | None = None if ratings is None else [float(r) for r in ratings]
        self.user: str | None = None if user is None else str(user)

    def last(self, n: int | None) -> History:
        """The most recent ``n`` events (all when ``n`` is None), ratings kept aligned, user kept."""
        if n is None or n >= len(self):
            return History(self, self.ratings, self.user)
        start = len(self) - max(0, n)
        return History(self[start:], None if self.ratings is None else self.ratings[start:], self.user)


def history_ratings(history: Sequence[str]) -> list[float] | None:
    """The ratings a history carries, or None (a plain list, or data without ratings)."""
    return getattr(history, "ratings", None)


def history_user(history: Sequence[str]) -> str | None:
    """The user id a history carries, or None (a plain list, or a caller that did not set it)."""
    return getattr(history, "user", None)


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
    return list(candidates)


def check_scores(scores: np.ndarray, n_users: int, n_candidates: int, scorer: str) -> np.ndarray:
    """Validate a scorer's output so a bug shows as a message, not as a silently wrong metric."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n_users, n_candidates):
        raise ValueError(f"scorer {scorer!r} returned shape {scores.shape}, expected {(n_users, n_candidates)}")
    if np.isnan(scores).any():
        raise ValueError(f"scorer {scorer!r} returned NaN scores")
    return scores


def scorer_diagnostics(scorer: Scorer) -> dict:
    """What a scorer reports about its own run (LLM parse rates, cache hits), or {}."""
    report = getattr(scorer, "diagnostics", None)
    return dict(report()) if callable(report) else {}


def rank_unknown_last(scores: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Candidates a scorer has nothing for (``known`` False: outside an ID model's vocabulary, outside
    a beam) get their row's lowest known score minus one: finite and ranked last (0 - 1 when the row
    knows no candidate). ``known`` broadcasts against ``scores``."""
    scores = np.asarray(scores, dtype=np.float64)
    known = np.broadcast_to(known, scores.shape)
    if known.all() or not scores.size:
        return scores
    floor = np.where(known, scores, np.inf).min(axis=1, keepdims=True)
    floor = np.where(np.isfinite(floor), floor, 0.0)
    return np.where(known, scores, floor - 1.0)
