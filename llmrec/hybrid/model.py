"""The cold-aware hybrid: recent popularity with a content bridge, collaborative and text signals,
blended with weights fitted on a validation part carved from the known period.

Why this shape (ablated in benchmarks/bench_coldstart.py):

* **Recent popularity** (the known events of the latest ``recent_share`` of the known period)
  rather than all-time counts: catalogues drift, and on MovieLens 100K's temporal split the last
  month's counts rank test items far better than all-time popularity.
* **A content-to-popularity bridge for cold items** (DropoutNet's idea at its simplest): an item
  without events has no count, so a ridge regression from its content fields (release age at the
  cut, categories) predicts the count it reaches in the next window, learnt from the items that
  were cold at the start of each recent window of the known period (new releases that took off,
  and old titles nobody touched). Its output is on the same log-count scale as the warm items'
  counts, so cold and warm items compete in one ranking.
* **A collaborative scorer** (item-CF by default) for personalisation where items have events, and
  **a text scorer** (the embedding ranker) as the personal bridge every item has, cold ones too.
* Each signal is z-normalised over a user's candidates; the blend's weights (popularity, CF, text,
  and an offset for cold items) are chosen by grid search on validation (the latest ``valid_share``
  of known events), never on the test part. The default objective is constrained: among the blends
  whose all-target NDCG@10 is within ``all_slack`` (5%) of the best blend's, the one with the best
  cold-start NDCG@10. Maximising the mean of the two instead trades any amount of accuracy on the
  many warm targets for the few cold ones, which validation's small cold slice makes noisy; the
  constraint keeps the blend as good as the best one where most targets are and spends only the
  slack on cold-start exposure.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from llmrec.data.schema import ITEM, TIME, epoch_seconds, release_dates
from llmrec.hybrid.config import HybridConfig
from llmrec.scoring import Candidates, Histories, Scorer, is_shared, per_user_candidates

log = logging.getLogger(__name__)
COMPONENTS = ("popularity", "cf", "text", "cold")
AGE_BINS = (0.0, 60.0, 180.0, 365.0)  # days between release and the cut: unreleased, new, recent, ...
YEAR_GAPS = 4  # release years before the cut's year told apart: 0 (this year), 1, ..., 4 or more; -1: later


def content_features(items: pd.DataFrame, cut: float, config: HybridConfig, span: float) -> np.ndarray:
    """Per catalogue item: release-age bins and scaled age at ``cut`` (when a date column exists)
    and multi-hot categories. ``span`` converts time units to days (1 for order-only timestamps)."""
    parts: list[np.ndarray] = [np.ones((len(items), 1))]
    column = ("release_date" if "release_date" in items.columns else None) if config.date_column == "auto" \
        else config.date_column
    if column and column in items.columns:
        dates = release_dates(items, column)
        age = (cut - epoch_seconds(dates)) / span
        known = ~np.isnan(age)
        age = np.where(known, age, np.nanmedian(age) if known.any() else 0.0)
        bins = np.digitize(age, AGE_BINS)
        # Catalogues often date a film by its year alone (MovieLens: "01-Jan-1997"), so the calendar
        # year relative to the cut's year is the sharper signal for "a new release".
        cut_year = pd.Timestamp(cut, unit="s").year if span > 1 else None  # order-only timestamps: no calendar
        if cut_year is not None:
            year_gap = np.clip(cut_year - dates.dt.year.fillna(cut_year - YEAR_GAPS).to_numpy(float), -1, YEAR_GAPS)
            parts.append(np.eye(YEAR_GAPS + 2)[(year_gap + 1).astype(int)])
        parts += [np.eye(len(AGE_BINS) + 1)[bins], np.clip(age, -365, 3650)[:, None] / 365.0, (~known)[:, None]]
    for name in config.category_columns:
        if name in items.columns:
            parts.append(items[name].fillna("").astype(str).str.get_dummies(sep=", ").to_numpy(float))
    return np.concatenate(parts, axis=1).astype(np.float64)


class PopularityBridge:
    """log1p of each item's recent count; for items without known events, the bridge's prediction."""

    def __init__(self, known: pd.DataFrame, items: pd.DataFrame, config: HybridConfig, seconds_per_day: float):
        self.catalog = pd.Index([str(i) for i in items.index])
        times = known[TIME].to_numpy()
        end, start = float(times.max()) + 1, float(times.min())
        window = max(1.0, config.recent_share * (end - start))
        counts = known[known[TIME] >= end - window][ITEM].astype(str).value_counts()
        self.recent = np.log1p(counts.reindex(self.catalog).fillna(0).to_numpy(float))
        self.cold = ~self.catalog.isin(known[ITEM].astype(str).unique())
        first = known.groupby(ITEM)[TIME].min()
        first.index = first.index.astype(str)
        first_seen = first.reindex(self.catalog).fillna(np.inf).to_numpy()
        rows, targets = [], []
        for j in range(config.bridge_windows):  # the items cold at each recent window's start, as cold items then
            hi, lo = end - j * window, end - (j + 1) * window
            cold_then = first_seen >= lo
            if not cold_then.any():
                continue
            in_window = known[(known[TIME] >= lo) & (known[TIME] < hi)][ITEM].astype(str).value_counts()
            rows.append(content_features(items, lo, config, seconds_per_day)[cold_then])
            targets.append(np.log1p(in_window.reindex(self.catalog[cold_then]).fillna(0).to_numpy(float)))
        self.bridge_items = int(sum(len(t) for t in targets))
        if self.bridge_items >= 3:
            model = Ridge(alpha=1.0).fit(np.concatenate(rows), np.concatenate(targets))
            predicted = model.predict(content_features(items, end, config, seconds_per_day))
        else:  # too few new items to learn from: cold items get the mean count of new items (or 0)
            predicted = np.full(len(self.catalog), float(np.concatenate(targets).mean()) if targets else 0.0)
        self.predicted = np.maximum(predicted, 0.0)
        self.values = np.where(self.cold, self.predicted, self.recent)


def _zscore(matrix: np.ndarray) -> np.ndarray:
    std = matrix.std(axis=1, keepdims=True)
    return (matrix - matrix.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


class HybridScorer:
    """Scorer: ``w_pop * z(popularity) + w_cf * z(cf) + w_text * z(text) + offset * [item is cold]``."""

    def __init__(self, bridge: PopularityBridge, cf: Scorer | None, text: Scorer | None,
                 weights: Sequence[float] = (1.0, 0.5, 0.25, 0.0), name: str = "hybrid") -> None:
        self.bridge = bridge
        self.cf = cf
        self.text = text
        self.weights = np.asarray(weights, dtype=np.float64)
        self.name = name
        self.fit_report: dict = {}

    def components(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        """(4, users, candidates): the z-normalised signals and the cold indicator."""
        n = len(histories)
        rows = per_user_candidates(candidates, n)
        width = len(rows[0]) if rows else 0
        if is_shared(candidates):
            pos = np.broadcast_to(self.bridge.catalog.get_indexer([str(c) for c in candidates]), (n, width))
        else:
            pos = self.bridge.catalog.get_indexer([str(c) for r in rows for c in r]).reshape(n, width)
        known_pos = pos >= 0
        pos = np.maximum(pos, 0)
        popularity = np.where(known_pos, self.bridge.values[pos], 0.0)
        cold = (self.bridge.cold[pos] & known_pos).astype(np.float64)
        out = [_zscore(popularity)]
        for scorer in (self.cf, self.text):
            out.append(_zscore(np.asarray(scorer.score(histories, candidates), dtype=np.float64))
                       if scorer is not None else np.zeros((n, width)))
        return np.stack(out + [cold])

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        return np.tensordot(self.weights, self.components(histories, candidates), axes=1)

    def diagnostics(self) -> dict:
        return {"weights": dict(zip(COMPONENTS, self.weights.round(4).tolist())),
                "bridge_items": self.bridge.bridge_items, **self.fit_report}


class _Precomputed:
    """A hybrid with fixed weights over components computed once per validation history."""

    def __init__(self, table: dict[tuple[str, ...], np.ndarray], weights: np.ndarray) -> None:
        self.name = "hybrid-candidate"
        self.table = table
        self.weights = weights

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        return np.stack([np.tensordot(self.weights, self.table[tuple(h)], axes=1) for h in histories])


GRID = {"popularity": (0.0, 0.5, 1.0), "cf": (0.0, 0.25, 0.5, 1.0), "text": (0.0, 0.1, 0.25, 0.5, 1.0),
        "cold": (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)}  # the cold offset is in standard deviations


def _pick(results: list[tuple[float, float | None, tuple]], objective: str, all_slack: float) -> tuple:
    """The chosen (all, cold, weights) of the grid's validation results."""
    has_cold = any(cold is not None for _, cold, _ in results)
    if objective == "all" or not has_cold:
        return max(results, key=lambda r: r[0])
    if objective == "all+cold":
        return max(results, key=lambda r: (r[0] + (r[1] or 0.0)) / 2)
    floor = (1 - all_slack) * max(r[0] for r in results)  # "constrained": cold exposure bought with the slack
    return max((r for r in results if r[0] >= floor), key=lambda r: (r[1] or 0.0, r[0]))


def fit_weights(scorer: HybridScorer, evaluator, objective: str, all_slack: float = 0.05) -> dict:
    """Grid search of the weights on a full-ranking validation evaluator; sets ``scorer.weights``."""
    cases = evaluator.eval_cases
    histories = cases.scorer_histories(evaluator.config.max_history)
    catalog = evaluator.catalog
    table: dict[tuple[str, ...], np.ndarray] = {}
    for start in range(0, len(histories), 128):
        chunk = histories[start:start + 128]
        comps = scorer.components(chunk, catalog)
        for i, h in enumerate(chunk):
            table[tuple(h)] = comps[:, i]
    results: list[tuple[float, float | None, tuple]] = []
    cold_cases = cases_total = 0
    for weights in itertools.product(*GRID.values()):
        if not any(weights[:3]):
            continue
        result = evaluator(_Precomputed(table, np.asarray(weights)))
        cold = result["slices"]["cold"]
        cold_cases, cases_total = cold["cases"], result["counts"]["cases"]
        results.append((result["ndcg@10"] or 0.0, cold["ndcg@10"] if cold["cases"] else None, weights))
    best = _pick(results, objective, all_slack)
    scorer.weights = np.asarray(best[2], dtype=np.float64)
    scorer.fit_report = {"objective": objective, "valid_ndcg@10": round(best[0], 4),
                         "valid_cold_ndcg@10": None if best[1] is None else round(best[1], 4),
                         "valid_best_ndcg@10": round(max(r[0] for r in results), 4),
                         "valid_cold_cases": cold_cases, "valid_cases": cases_total}
    log.info("hybrid: weights %s fitted on validation (%s)", scorer.weights.tolist(), scorer.fit_report)
    return scorer.fit_report
