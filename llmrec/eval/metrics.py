"""Ranking metrics from the 0-based ranks of relevant items, and pointwise metrics from labels.

Definitions (``ranks`` are the 0-based positions of the relevant items in the ranked candidate list,
``n_relevant`` the number of relevant items of the case):

* HR@K       1 if any relevant item is in the top K, else 0.
* NDCG@K     binary relevance: DCG@K = sum over relevant ranks r < K of 1 / log2(r + 2), divided by
             the ideal DCG, which puts min(n_relevant, K) relevant items at ranks 0, 1, ...
* Recall@K   (relevant items in the top K) / n_relevant.
* MRR@K      1 / (r + 1) for the first relevant rank r if r < K, else 0.
* top-K accuracy  per (case, target) pair: the fraction of all targets that land in their case's
             top K (a micro average over targets, where Recall@K is a mean over cases).
* AUC        per case, over its candidates: the probability that a relevant candidate outscores a
             non-relevant one (scikit-learn's ``roc_auc_score``).

Ties never flatter a scorer. In the ranks every metric uses, a relevant item that ties with
non-relevant items is placed *after* all of them (pessimistic ranking), so a constant scorer ranks
every relevant item last and gets HR = NDCG = Recall = MRR = 0. AUC follows scikit-learn's
convention of counting a tied (relevant, non-relevant) pair as one half, so a constant scorer gets
exactly 0.5: chance, never more.

:class:`RankedScores` computes all of these for a batch of cases at once with numpy (one sort per
batch, no per-item Python loop); the per-case functions below are the readable reference the tests
check it against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import log_loss, mean_absolute_error, roc_auc_score, root_mean_squared_error

# --- per-case reference functions --------------------------------------------------------------


def pessimistic_ranks(scores: Sequence[float] | np.ndarray,
                      relevant: Sequence[bool] | np.ndarray) -> np.ndarray:
    """0-based ranks (ascending) of the relevant candidates when sorting by descending score,
    with every tie broken against the scorer: non-relevant items come first among equal scores."""
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    # lexsort: the last key is the primary one. Descending score, then relevant (True) after False.
    order = np.lexsort((relevant, -scores))
    return np.flatnonzero(relevant[order])


def hit_rate_at_k(ranks: np.ndarray, k: int) -> float:
    return float(np.any(np.asarray(ranks) < k))


def recall_at_k(ranks: np.ndarray, n_relevant: int, k: int) -> float:
    if n_relevant <= 0:
        raise ValueError("recall needs at least one relevant item")
    return float(np.sum(np.asarray(ranks) < k) / n_relevant)


def ideal_dcg(n_relevant: int, k: int) -> float:
    n = min(n_relevant, k)
    return float(np.sum(1.0 / np.log2(np.arange(n) + 2.0)))


def ndcg_at_k(ranks: np.ndarray, n_relevant: int, k: int) -> float:
    if n_relevant <= 0:
        raise ValueError("NDCG needs at least one relevant item")
    ranks = np.asarray(ranks)
    top = ranks[ranks < k]
    return float(np.sum(1.0 / np.log2(top + 2.0)) / ideal_dcg(n_relevant, k))


def target_ndcg(scores: Sequence[float] | np.ndarray, target: int, k: int) -> float:
    """NDCG@k of one candidate list whose only relevant item sits at index ``target``, ties ranking it
    last: the metric of the builders' own check lists (held-out training users), so that a method's
    choices are made with the evaluator's NDCG, not a copy of it."""
    relevant = np.zeros(len(scores), dtype=bool)
    relevant[target] = True
    return ndcg_at_k(pessimistic_ranks(scores, relevant), 1, k)


def mrr_at_k(ranks: np.ndarray, k: int) -> float:
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        return 0.0
    first = int(ranks.min())
    return 1.0 / (first + 1) if first < k else 0.0


def top_k_accuracy(ranks_per_case: Sequence[np.ndarray], k: int) -> float:
    """Fraction of (case, target) pairs whose target is in its case's top K."""
    hits = sum(int(np.sum(np.asarray(r) < k)) for r in ranks_per_case)
    total = sum(len(r) for r in ranks_per_case)
    return hits / total if total else float("nan")


def case_auc(scores: Sequence[float] | np.ndarray, relevant: Sequence[bool] | np.ndarray) -> float:
    """AUC of one case over its candidates (NaN when it has no relevant or no non-relevant item)."""
    relevant = np.asarray(relevant, dtype=bool)
    if relevant.all() or not relevant.any():
        return float("nan")
    return float(roc_auc_score(relevant, np.asarray(scores, dtype=np.float64)))


# --- vectorised: a batch of cases at once ------------------------------------------------------


def ranking_metric_names(ks: Sequence[int]) -> list[str]:
    """Names of the aggregated ranking metrics, in report order."""
    names = []
    for kind in ("hr", "ndcg", "recall", "mrr", "accuracy"):
        names += [f"{kind}@{k}" for k in ks]
    return names + ["auc"]


Coordinates = tuple[np.ndarray, np.ndarray]
"""(rows, columns) of marked cells in a batch of score rows, as ``np.nonzero`` returns them."""


class RankedScores:
    """One batch of score rows ``(n_cases, n_candidates)``, ranked once.

    :meth:`case_metrics` then takes any set of relevant candidates (and of candidates to leave out of
    the ranking, e.g. history items or another slice's targets) and returns per-case metrics, so the
    evaluator ranks a batch once and reuses that for every slice.

    Cost: one row-wise sort per batch; per call, work in proportion to the number of relevant and
    left-out cells only (targets, history: few per row), so a full-catalogue evaluation costs about
    one dense numpy sort per batch.
    """

    def __init__(self, scores: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2:
            raise ValueError(f"scores must be 2-D (cases, candidates), got shape {scores.shape}")
        if np.isnan(scores).any():
            raise ValueError("scores contain NaN")
        self.scores = scores
        self.shape = scores.shape
        # Each row's scores negated and sorted ascending: searchsorted then counts, for any
        # candidate, the candidates scoring strictly higher and those tying with it.
        self._negated_sorted = np.sort(-scores, axis=1)

    def counts(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the cells (rows, cols): candidates of the row scoring strictly higher, and candidates
        tying with it (itself included)."""
        above = np.empty(len(rows), dtype=np.int64)
        tied = np.empty(len(rows), dtype=np.int64)
        if len(rows) == 0:
            return above, tied
        values = -self.scores[rows, cols]
        # One searchsorted per row that has marked cells (a loop over cases, not over items).
        order = np.argsort(rows, kind="stable")
        bounds = np.flatnonzero(np.diff(rows[order])) + 1
        for chunk in np.split(order, bounds):
            row = self._negated_sorted[rows[chunk[0]]]
            left = np.searchsorted(row, values[chunk], side="left")
            right = np.searchsorted(row, values[chunk], side="right")
            above[chunk] = left
            tied[chunk] = right - left
        return above, tied

    def case_metrics(self, relevant: np.ndarray | Coordinates, ks: Sequence[int],
                     ignore: np.ndarray | Coordinates | None = None,
                     n_targets: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-case metrics for the ``relevant`` candidates (a bool mask or (rows, cols)).

        Candidates in ``ignore`` are removed from the ranking altogether (neither hits nor misses;
        they take no position); an ignored candidate is never relevant. ``n_targets`` (per case)
        counts targets that are not among the candidates too (a recall stage missed them): they
        are misses, in Recall's denominator and in NDCG's ideal DCG. Returns arrays of length
        n_cases: ``hr@k``, ``ndcg@k``, ``recall@k``, ``mrr@k``, ``hits@k`` (for top-K accuracy),
        ``auc`` over the candidates (NaN when undefined), ``n_relevant`` (targets, listed or not),
        ``n_listed`` (targets among the candidates) and ``n_candidates`` (left after ``ignore``).
        A case with no target gets 0 everywhere (AUC NaN); callers leave it out.
        """
        n_cases, n = self.shape
        rel_cells = self._cells(relevant)
        ign_cells = self._cells(ignore) if ignore is not None else np.empty(0, dtype=np.int64)
        rel_cells = np.setdiff1d(rel_cells, ign_cells, assume_unique=True)
        cells = np.concatenate([rel_cells, ign_cells])
        is_rel = np.zeros(len(cells), dtype=bool)
        is_rel[: len(rel_cells)] = True
        rows, cols = np.divmod(cells, n)
        score = self.scores[rows, cols]
        # Rank the marked cells among themselves, row by row, highest score first, to count how many
        # relevant / ignored cells are above or tied with each one.
        order = np.lexsort((-score, rows))
        rows, cols, score, is_rel = rows[order], cols[order], score[order], is_rel[order]
        m = len(cells)
        idx = np.arange(m)
        new_row = np.ones(m, dtype=bool)
        new_row[1:] = rows[1:] != rows[:-1]
        new_group = new_row.copy()
        new_group[1:] |= score[1:] != score[:-1]
        last_of_group = np.ones(m, dtype=bool)
        last_of_group[:-1] = new_group[1:]
        row_first = np.maximum.accumulate(np.where(new_row, idx, 0)) if m else idx
        group_first = np.maximum.accumulate(np.where(new_group, idx, 0)) if m else idx
        group_last = np.minimum.accumulate(np.where(last_of_group, idx, m - 1)[::-1])[::-1] if m else idx
        rel_cum = np.cumsum(is_rel)
        ign_cum = np.cumsum(~is_rel)

        def before(cum: np.ndarray, first: np.ndarray) -> np.ndarray:
            return np.where(first > 0, cum[np.maximum(first - 1, 0)], 0) if m else first

        rel_above = before(rel_cum, group_first) - before(rel_cum, row_first)
        ign_above = before(ign_cum, group_first) - before(ign_cum, row_first)
        rel_tied = rel_cum[group_last] - before(rel_cum, group_first) if m else idx
        ign_tied = ign_cum[group_last] - before(ign_cum, group_first) if m else idx
        index_in_tie = rel_cum - 1 - before(rel_cum, group_first)

        sel = is_rel
        rows_r = rows[sel]
        n_above, n_tied = self.counts(rows_r, cols[sel])
        kept_above = n_above - ign_above[sel]
        # Tied candidates that are neither ignored nor relevant: the pessimistic rank puts them first.
        kept_nonrel_tied = n_tied - ign_tied[sel] - rel_tied[sel]
        ranks = kept_above + kept_nonrel_tied + index_in_tie[sel]
        neg_above = kept_above - rel_above[sel]

        n_listed = np.bincount(rows_r, minlength=n_cases)
        n_candidates = n - np.bincount(rows[~is_rel], minlength=n_cases)
        if n_targets is None:
            n_relevant = n_listed
        else:
            n_relevant = np.asarray(n_targets, dtype=np.int64)
            if n_relevant.shape != (n_cases,) or (n_relevant < n_listed).any():
                raise ValueError("n_targets must give, per case, at least the number of relevant candidates")
        out: dict[str, np.ndarray] = {"n_relevant": n_relevant, "n_listed": n_listed, "n_candidates": n_candidates}
        first = np.full(n_cases, np.iinfo(np.int64).max)
        np.minimum.at(first, rows_r, ranks)
        has_rel = n_relevant > 0
        safe_n = np.maximum(n_relevant, 1)
        ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(max(ks)) + 2.0))])
        gain = 1.0 / np.log2(ranks + 2.0)
        for k in ks:
            in_top = ranks < k
            hits = np.bincount(rows_r, weights=in_top, minlength=n_cases).astype(np.int64)
            dcg = np.bincount(rows_r, weights=np.where(in_top, gain, 0.0), minlength=n_cases)
            out[f"hits@{k}"] = hits
            out[f"hr@{k}"] = (hits > 0).astype(np.float64)
            out[f"recall@{k}"] = np.where(has_rel, hits / safe_n, 0.0)
            out[f"ndcg@{k}"] = np.where(has_rel, dcg / ideal[np.minimum(safe_n, k)], 0.0)
            out[f"mrr@{k}"] = np.where(first < k, 1.0 / (first + 1.0), 0.0)
        # AUC = 1 - (pairs with the non-relevant item strictly above + half the tied pairs) / pairs.
        wrong = np.bincount(rows_r, weights=neg_above + 0.5 * kept_nonrel_tied, minlength=n_cases)
        pairs = n_listed * (n_candidates - n_listed)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["auc"] = np.where(pairs > 0, 1.0 - wrong / pairs, np.nan)
        return out

    def _cells(self, marked: np.ndarray | Coordinates) -> np.ndarray:
        """Unique flat cell indices (row * n_candidates + column) of a mask or (rows, cols)."""
        if isinstance(marked, tuple):
            rows, cols = (np.asarray(a, dtype=np.int64) for a in marked)
        else:
            mask = np.asarray(marked, dtype=bool)
            if mask.shape != self.shape:
                raise ValueError(f"mask shape {mask.shape} != scores shape {self.shape}")
            rows, cols = np.nonzero(mask)
        return np.unique(rows * self.shape[1] + cols)


def aggregate(per_case: dict[str, np.ndarray], ks: Sequence[int]) -> dict[str, float]:
    """Mean over cases of each metric; top-K accuracy as a micro average over (case, target) pairs."""
    n_rel = per_case["n_relevant"]
    out: dict[str, float] = {}
    if len(n_rel) == 0:
        return {name: float("nan") for name in ranking_metric_names(ks)}
    for kind in ("hr", "ndcg", "recall", "mrr"):
        for k in ks:
            out[f"{kind}@{k}"] = float(np.mean(per_case[f"{kind}@{k}"]))
    total = int(n_rel.sum())
    for k in ks:
        out[f"accuracy@{k}"] = float(per_case[f"hits@{k}"].sum() / total) if total else float("nan")
    auc = per_case["auc"]
    defined = ~np.isnan(auc)
    out["auc"] = float(auc[defined].mean()) if defined.any() else float("nan")
    return out


# --- pointwise ---------------------------------------------------------------------------------


def binary_metrics(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> dict:
    """AUC for any scores; log loss and accuracy at 0.5 only when every score is a probability.

    Keys: ``auc`` (NaN when only one class is present), ``logloss`` and ``accuracy`` (None when the
    scores are not all in [0, 1]), ``probabilities`` (whether they were).
    """
    y = np.asarray(labels).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    both_classes = 0 < y.sum() < len(y)
    out: dict = {"auc": float(roc_auc_score(y, s)) if both_classes else float("nan")}
    probabilities = bool(len(s) and s.min() >= 0.0 and s.max() <= 1.0)
    out["probabilities"] = probabilities
    if probabilities:
        out["logloss"] = float(log_loss(y, s, labels=[0, 1]))
        out["accuracy"] = float(np.mean((s >= 0.5) == (y == 1)))
    else:
        out["logloss"] = None
        out["accuracy"] = None
    return out


def macro_auc(labels: Sequence[int] | np.ndarray, probabilities: np.ndarray) -> float:
    """One-vs-rest AUC of class probabilities ``(n, n_classes)``, averaged over the classes that
    occur in ``labels`` alongside another class (binary: the AUC of class 1). NaN when none does."""
    y = np.asarray(labels).astype(np.int64)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"probabilities must be (len(labels), n_classes), got {p.shape} for {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be class indices in [0, {p.shape[1]})")
    classes = [1] if p.shape[1] == 2 else range(p.shape[1])
    aucs = [roc_auc_score(y == c, p[:, c]) for c in classes if 0 < np.sum(y == c) < len(y)]
    return float(np.mean(aucs)) if aucs else float("nan")


def rating_metrics(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> dict:
    """RMSE and MAE of predicted ratings."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 1 or len(t) == 0:
        raise ValueError("y_true and y_pred must be 1-D, non-empty and of equal length, "
                         f"got {t.shape}, {p.shape}")
    if np.isnan(p).any():
        raise ValueError("predicted ratings contain NaN")
    return {"rmse": float(root_mean_squared_error(t, p)), "mae": float(mean_absolute_error(t, p))}


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000,
                      seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over the same cases with a bootstrap confidence interval (scipy's BCa over
    cases): whether one scorer's lift over another on the same lists is more than case noise."""
    from scipy.stats import bootstrap

    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if diff.ndim != 1 or len(diff) < 2:
        raise ValueError(f"paired_difference needs two equal-length per-case arrays of >= 2 cases, got {diff.shape}")
    if np.allclose(diff, diff[0], rtol=0, atol=1e-12):  # no spread: the interval is the point (BCa is undefined)
        mean = float(diff.mean())
        return {"mean": mean, "low": mean, "high": mean, "cases": len(diff)}
    ci = bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                   random_state=np.random.default_rng(seed)).confidence_interval
    return {"mean": float(diff.mean()), "low": float(ci.low), "high": float(ci.high), "cases": len(diff)}


def paired_auc_difference(labels: Sequence[int], a: Sequence[float], b: Sequence[float], confidence: float = 0.95,
                          n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """AUC(a) - AUC(b) of two scorers' predictions for the same labelled pairs, with a bootstrap
    confidence interval over pairs (scipy, percentile; both scorers see every resample)."""
    from scipy.stats import bootstrap

    y, first, second = (np.asarray(v, dtype=np.float64) for v in (labels, a, b))
    if not len(y) == len(first) == len(second) or len(y) < 2 or len(set(y.tolist())) < 2:
        raise ValueError(f"paired_auc_difference needs equal-length labels and predictions with both classes, got "
                         f"{len(y)}, {len(first)}, {len(second)} values")

    def statistic(index: np.ndarray) -> float:
        index = index.astype(int)
        if len(set(y[index].tolist())) < 2:  # a resample with one class has no AUC: count it as no difference
            return 0.0
        return float(roc_auc_score(y[index], first[index]) - roc_auc_score(y[index], second[index]))

    ci = bootstrap((np.arange(len(y)),), statistic, vectorized=False, confidence_level=confidence,
                   n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed))
    return {"mean": statistic(np.arange(len(y))), "low": float(ci.confidence_interval.low),
            "high": float(ci.confidence_interval.high), "pairs": len(y)}
