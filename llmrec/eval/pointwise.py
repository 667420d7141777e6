"""Pointwise evaluators: labelled (history, item) pairs scored one candidate at a time.

* :class:`PointwiseEvaluator`: liked or not (CTR, TALLRec's Yes/No): AUC, and log loss / accuracy
  when the scores are probabilities;
* :class:`RatingEvaluator`: predicted ratings: RMSE and MAE.

Pairs come from a split's held-out events (``from_split``): the history is every known event before
the target, with its ratings (TALLRec shows liked and disliked items), at most ``max_history`` of the
most recent; the label is the event's ``label`` column, or :func:`llmrec.data.schema.is_liked` of its
rating. A scorer sees the history and the one candidate, never the label.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llmrec.data.schema import ITEM, LABEL, LIKE_THRESHOLD, RATING, USER, is_liked
from llmrec.data.splits import Split
from llmrec.errors import DataFormatError
from llmrec.eval.metrics import binary_metrics, rating_metrics
from llmrec.eval.ranking import clean_number
from llmrec.scoring import History, Scorer, check_scores, scorer_diagnostics


class _PairEvaluator:
    """Scores given (history, item) pairs; a scorer sees histories and one candidate per pair."""

    greater_is_better = True
    primary_metric = ""
    mode = "pairs"

    def __init__(self, histories: Sequence[Sequence[str]], items: Sequence[str], values: Sequence[float],
                 name: str = "", batch_size: int = 64, show_progress: bool = True, counts: dict | None = None,
                 population: dict | None = None, split_name: str | None = None, part: str | None = None,
                 keep_predictions: bool = False) -> None:
        if not len(histories) == len(items) == len(values):
            raise ValueError(f"histories, items and values differ in length: "
                             f"{len(histories)}, {len(items)}, {len(values)}")
        if len(items) == 0:
            raise ValueError("nothing to evaluate: no (history, item) pairs")
        self.histories = [h if isinstance(h, History) else History(h) for h in histories]
        self.items = [str(i) for i in items]
        self.values = np.asarray(values, dtype=np.float64)
        self.name = name
        self.split_name = split_name
        self.part = part
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._counts = dict(counts or {})
        self._population = dict(population or {})
        #: Also return every pair's prediction (``result["per_pair"]``, pair order), e.g. for a paired
        #: bootstrap of a difference between two scorers (``metrics.paired_auc_difference``).
        self.keep_predictions = keep_predictions
        self.results: dict[str, dict] = {}

    def _predict(self, scorer: Scorer) -> tuple[np.ndarray, float]:
        if not isinstance(scorer, Scorer):
            raise TypeError(f"expected a Scorer, got {type(scorer).__name__}")
        preds = np.empty(len(self.items))
        t0 = time.perf_counter()
        for i in tqdm(range(0, len(self.items), self.batch_size), desc=f"scoring {scorer.name}",
                      disable=not self.show_progress):
            j = min(i + self.batch_size, len(self.items))
            histories = [h.last(None) for h in self.histories[i:j]]
            scores = scorer.score(histories, [[item] for item in self.items[i:j]])
            preds[i:j] = check_scores(scores, j - i, 1, scorer.name)[:, 0]
        return preds, time.perf_counter() - t0

    def _finish(self, scorer: Scorer, predictions: np.ndarray, metrics: dict, seconds: float, **counts) -> dict:
        result = {"primary_metric": self.primary_metric, **metrics, "mode": self.mode, "dataset": self.name,
                  "split": self.split_name, "part": self.part,
                  "population": {"pairs": len(self.items), **self._population},
                  "counts": {"pairs": len(self.items), **counts, **self._counts}, "scorer": scorer.name,
                  "seconds": round(seconds, 4)}
        diagnostics = scorer_diagnostics(scorer)
        if diagnostics:
            result["diagnostics"] = diagnostics
        if self.keep_predictions:
            result["per_pair"] = [float(v) for v in predictions]
        self.results[scorer.name] = result
        return result

    @staticmethod
    def _pairs_from_split(split: Split, part: str, min_history: int, max_history: int | None,
                          max_pairs: int | None, seed: int) -> tuple[list[History], list[str], list[str], pd.DataFrame,
                                                                     dict, dict]:
        """(history, item) pairs for every target of ``part``, histories with their ratings."""
        split.check_part(part)
        es = split.eval_set(part, min_history=min_history)
        histories: list[History] = []
        users: list[str] = []
        items: list[str] = []
        for i, (user, hist, targets) in enumerate(zip(es.users, es.histories, es.targets, strict=True)):
            ratings = es.history_ratings[i] if es.history_ratings is not None else None
            shown = History(hist, ratings).last(max_history)
            for t in targets:
                histories.append(shown)
                users.append(user)
                items.append(t)
        if not items:
            raise ValueError(f"nothing to evaluate: every {part} case of the {split.name} split was dropped "
                             f"({es.dropped})")
        total = len(items)
        if max_pairs is not None and max_pairs < total:
            pick = np.sort(np.random.default_rng(seed).choice(total, size=max_pairs, replace=False))
            histories = [histories[i] for i in pick]
            users = [users[i] for i in pick]
            items = [items[i] for i in pick]
        # One row per (user, item): its first held-out event carries the value.
        first = split.held(part).drop_duplicates([USER, ITEM], keep="first").set_index([USER, ITEM])
        pop = split.dataset.population()
        population = {"pairs_total": total, "users_evaluated": len(set(users)), "users_in_dataset": pop["users"],
                      "users_in_source": pop["users_total"], "subsampled_dataset": pop["subsampled"],
                      "subsampled_pairs": len(items) < total}
        return histories, users, items, first, {"dropped_cases": dict(es.dropped)}, population


class PointwiseEvaluator(_PairEvaluator):
    """Labelled pairs (CTR, TALLRec's yes/no): AUC, and log loss / accuracy for probability scores."""

    primary_metric = "auc"
    mode = "pointwise"

    @classmethod
    def from_split(cls, split: Split, part: str = "test", like_threshold: float | None = None,
                   min_history: int = 1, max_history: int | None = None, max_pairs: int | None = None,
                   seed: int = 42, **kwargs) -> PointwiseEvaluator:
        """Pairs from the held-out events of ``part``. Labels: the ``label`` column when the data has
        one (and ``like_threshold`` is not given), else ``is_liked(rating, like_threshold)``."""
        histories, users, items, first, counts, population = cls._pairs_from_split(
            split, part, min_history, max_history, max_pairs, seed)
        source = split.dataset.source or split.dataset.name
        if LABEL in first.columns and like_threshold is None:
            column = first[LABEL]
            counts["label"] = "label column"
        elif RATING in first.columns:
            threshold = LIKE_THRESHOLD if like_threshold is None else like_threshold
            column = is_liked(first[RATING], threshold).astype(np.int64)
            counts["label"] = f"rating > {threshold:g}"
        else:
            raise DataFormatError(source, f"a '{LABEL}' column, or a '{RATING}' column", field=LABEL,
                                  got=list(first.columns))
        labels = column.loc[list(zip(users, items, strict=True))].to_numpy()
        return cls(histories, items, labels, name=split.dataset.name, counts=counts, population=population,
                   split_name=split.name, part=part, **kwargs)

    def __call__(self, scorer: Scorer) -> dict:
        preds, seconds = self._predict(scorer)
        labels = self.values.astype(np.int64)
        metrics = binary_metrics(labels, preds)
        return self._finish(scorer, preds, {k: clean_number(v) for k, v in metrics.items()}, seconds,
                            positives=int(labels.sum()), negatives=int(len(labels) - labels.sum()))


class RatingEvaluator(_PairEvaluator):
    """Rating prediction: the scorer's score for a pair is its predicted rating; RMSE and MAE."""

    primary_metric = "rmse"
    greater_is_better = False
    mode = "rating"

    @classmethod
    def from_split(cls, split: Split, part: str = "test", min_history: int = 1, max_history: int | None = None,
                   max_pairs: int | None = None, seed: int = 42, **kwargs) -> RatingEvaluator:
        histories, users, items, first, counts, population = cls._pairs_from_split(
            split, part, min_history, max_history, max_pairs, seed)
        if RATING not in first.columns:
            raise DataFormatError(split.dataset.source or split.dataset.name, f"a '{RATING}' column",
                                  field=RATING, got=list(first.columns))
        ratings = first[RATING].loc[list(zip(users, items, strict=True))].to_numpy()
        return cls(histories, items, ratings, name=split.dataset.name, counts=counts, population=population,
                   split_name=split.name, part=part, **kwargs)

    def __call__(self, scorer: Scorer) -> dict:
        preds, seconds = self._predict(scorer)
        return self._finish(scorer, preds, rating_metrics(self.values, preds), seconds)
