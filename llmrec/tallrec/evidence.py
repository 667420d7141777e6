"""Collaborative evidence for TALLRec prompts: what the known ratings say about the target item
(its mean rating, share of likes, number of ratings and popularity rank, in words) and about the
user (mean rating, share liked), rendered by ``prompts/tallrec/evidence.j2`` into the input.

Leak-free by construction, in the same sense for training and for scoring:

* **scoring** (:class:`ItemEvidence`): item statistics come from the events known before the
  evaluated part (``context.known``, the events TALLRec trains on), user statistics from the
  history the scorer is given (events before the target). The pair's own rating is in neither.
* **training examples** (:func:`items_before`): an example's item statistics come only from events
  strictly earlier in global time than the example's own target (ties excluded), and its user
  statistics from the user's events before the target (the same prefix its history is cut from).
  Excluding only the example's own rating would still let an early example read later ratings of
  its item, i.e. its own future; "strictly before the target" is what the model will have at
  prediction time, so the prompts it learns from look like the prompts it is scored on.

A cold item (no earlier rating) or user (no rated history) gets a sentence that says so, never a
made-up number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM, LIKE_THRESHOLD, RATING, TIME, USER, is_liked

EVIDENCE = ("none", "item", "user", "both")
#: Popularity words by the item's rank among the items rated so far: (share from the top, level).
#: Fixed in advance (deciles / thirds), never fitted: level 0 = "among the most watched".
POPULARITY_LEVELS = ((0.1, 0), (0.3, 1), (0.6, 2), (1.0, 3))


def check_evidence(mode: str) -> str:
    if mode not in EVIDENCE:
        raise ValueError(f"TALLRec evidence must be one of {list(EVIDENCE)}, got {mode!r}")
    return mode


@dataclass(frozen=True)
class Stats:
    """Ratings summarised: how many, their mean, the share liked; ``top``: for an item, the share of
    rated items with more ratings than it (0.0: the most rated), None for a user."""

    count: int
    mean: float
    liked: float
    top: float | None = None
    residual: float = 0.0
    """(users) the sum, over the rated items whose mean was known, of rating minus that mean: how much
    more generous than others the user is (a bias model's user term); 0.0 for items."""
    residual_count: int = 0

    @property
    def popularity(self) -> int:
        top = 1.0 if self.top is None else self.top
        return next(level for bound, level in POPULARITY_LEVELS if top < bound or bound == 1.0)


def summarize(ratings: Sequence[float] | np.ndarray | None, like_threshold: float = LIKE_THRESHOLD,
              residuals: Sequence[float | None] | None = None) -> Stats | None:
    """A user's rating habits from the ratings of their history; None when there is none.
    ``residuals``: each rating minus its item's mean (None where unknown), for the residual fields."""
    if ratings is None or len(ratings) == 0:
        return None
    values = np.asarray(ratings, dtype=float)
    known = [r for r in residuals or () if r is not None and np.isfinite(r)]
    return Stats(len(values), float(values.mean()), float(is_liked(values, like_threshold).mean()),
                 residual=float(sum(known)), residual_count=len(known))


def _item_stats(count: float, total: float, likes: float, counts: np.ndarray, rated: int) -> Stats | None:
    if count <= 0:
        return None
    return Stats(int(count), total / count, likes / count, float((counts > count).sum()) / max(rated, 1))


class ItemEvidence:
    """Per-item statistics of ``events`` (the known events, for scoring): a lookup by item id."""

    def __init__(self, events: pd.DataFrame, like_threshold: float = LIKE_THRESHOLD) -> None:
        ratings = events[RATING].to_numpy(dtype=float)
        grouped = pd.DataFrame({ITEM: events[ITEM].astype(str).to_numpy(), "r": ratings,
                                "l": is_liked(ratings, like_threshold).astype(float)}).groupby(ITEM, sort=True)
        counts = grouped["r"].count()
        sums, likes = grouped["r"].sum(), grouped["l"].sum()
        values = counts.to_numpy(dtype=float)
        self.stats: dict[str, Stats] = {}
        for item, c, s, k in zip(counts.index, values, sums.to_numpy(), likes.to_numpy(), strict=True):
            stats = _item_stats(c, s, k, values, len(values))
            if stats is not None:
                self.stats[str(item)] = stats

    def get(self, item: str) -> Stats | None:
        return self.stats.get(str(item))


def items_before(events: pd.DataFrame, like_threshold: float = LIKE_THRESHOLD) -> list[Stats | None]:
    """For each row of ``events`` (positional order), its item's statistics over the events strictly
    earlier in time. Events are swept in time order, one timestamp at a time, so ties never see
    each other (two ratings in the same second are not "before" one another)."""
    codes, uniques = pd.factorize(events[ITEM].astype(str))
    times = events[TIME].to_numpy()
    ratings = events[RATING].to_numpy(dtype=float)
    liked = is_liked(ratings, like_threshold).astype(float)
    counts = np.zeros(len(uniques))
    sums = np.zeros(len(uniques))
    likes = np.zeros(len(uniques))
    out: list[Stats | None] = [None] * len(events)
    order = np.argsort(times, kind="stable")
    # Boundaries of runs of equal timestamps in time order.
    sorted_times = times[order]
    starts = np.flatnonzero(np.r_[True, sorted_times[1:] != sorted_times[:-1]])
    ends = np.r_[starts[1:], len(order)]
    rated = 0
    for lo, hi in zip(starts, ends, strict=True):
        rows = order[lo:hi]
        for row in rows:
            code = codes[row]
            out[row] = _item_stats(counts[code], sums[code], likes[code], counts, rated)
        for row in rows:
            code = codes[row]
            rated += counts[code] == 0
            counts[code] += 1
            sums[code] += ratings[row]
            likes[code] += liked[row]
    return out


def user_before(ratings: np.ndarray, like_threshold: float = LIKE_THRESHOLD,
                residuals: np.ndarray | None = None) -> list[Stats | None]:
    """For one user's ratings in history order, the habits over the ratings before each one.
    ``residuals`` (aligned, NaN where the item's mean was unknown): see :func:`residuals_before`."""
    values = np.asarray(ratings, dtype=float)
    cum = np.r_[0.0, np.cumsum(values)]
    cum_liked = np.r_[0.0, np.cumsum(is_liked(values, like_threshold).astype(float))]
    res = np.full(len(values), np.nan) if residuals is None else np.asarray(residuals, dtype=float)
    cum_res = np.r_[0.0, np.cumsum(np.nan_to_num(res))]
    cum_res_n = np.r_[0, np.cumsum(np.isfinite(res))]
    return [None if i == 0 else Stats(i, cum[i] / i, cum_liked[i] / i, residual=float(cum_res[i]),
                                      residual_count=int(cum_res_n[i])) for i in range(len(values))]


def residuals_before(events: pd.DataFrame, item_stats: Sequence[Stats | None] | None = None) -> np.ndarray:
    """For each row of ``events``: its rating minus its item's mean rating over the events strictly
    earlier in time (NaN for an item not rated before). ``item_stats``: :func:`items_before` of the
    same events, when already computed."""
    stats = items_before(events) if item_stats is None else item_stats
    ratings = events[RATING].to_numpy(dtype=float)
    return np.array([r - s.mean if s is not None else np.nan for r, s in zip(ratings, stats, strict=True)])


class KnownResiduals:
    """A scored history's residuals (rating minus the item's mean), from the known events: a known
    (user, item) event keeps the residual it had when it happened (:func:`residuals_before`, as a
    training example sees it); any other history event is compared with the item's known mean."""

    def __init__(self, events: pd.DataFrame, items: ItemEvidence) -> None:
        residuals = residuals_before(events.reset_index(drop=True))
        keys = zip(events[USER].astype(str), events[ITEM].astype(str), strict=True)
        # None: the item had no earlier rating then; the training examples skip such events too.
        self.at_event = {key: float(r) if np.isfinite(r) else None
                         for key, r in zip(keys, residuals, strict=True)}
        self.items = items

    def of(self, user: str | None, items: Sequence[str], ratings: Sequence[float]) -> list[float | None]:
        out: list[float | None] = []
        for item, rating in zip(items, ratings, strict=True):
            key = (str(user), str(item))
            if user is not None and key in self.at_event:
                out.append(self.at_event[key])
                continue
            stats = self.items.get(str(item))
            out.append(None if stats is None else float(rating) - stats.mean)
        return out


def evidence_text(mode: str, item: Stats | None, user: Stats | None, target: str, domain: str,
                  scale: float) -> str:
    """The evidence lines of one prompt (``""`` for mode "none"), from ``prompts/tallrec/evidence.j2``."""
    if check_evidence(mode) == "none":
        return ""
    from llmrec.tallrec.model import template_environment

    def view(stats: Stats | None) -> dict | None:
        if stats is None:
            return None
        return {"count": stats.count, "mean": f"{stats.mean:.1f}", "liked": int(round(100 * stats.liked)),
                "popularity": stats.popularity}

    return template_environment().get_template("evidence.j2").render(
        show_item=mode in ("item", "both"), show_user=mode in ("user", "both"), item=view(item), user=view(user),
        target=target, domain=domain, scale=f"{scale:g}").strip()
