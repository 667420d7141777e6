"""The one evaluator: a split and settings in, a scorer called on batches, labelled metrics out.

Usage, in the sentence-transformers evaluator style::

    evaluator = RankingEvaluator(split, EvalConfig(mode="sampled"))
    result = evaluator(scorer)          # dict: primary metric, every metric, slices, counts
    result[result["primary_metric"]]    # e.g. NDCG@10 over all cases

What keeps it honest:

* the scorer sees histories and candidate item ids only, never a target or a label;
* candidates are fixed when the evaluator is built (sampled negatives are seeded per case), so every
  scorer is ranked on exactly the same lists;
* ties are broken against the scorer (see :mod:`llmrec.eval.metrics`);
* every result says how it was measured (``mode``: "full" or "sampled-100") and what was left out
  (dropped cases and why, targets removed because the user had already consumed them).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llmrec.data.schema import ITEM, LABEL, RATING, USER
from llmrec.data.splits import EvalSet, Split
from llmrec.errors import DataFormatError
from llmrec.eval.metrics import RankedScores, aggregate, binary_metrics, ranking_metric_names, rating_metrics
from llmrec.scoring import Scorer, check_scores

SLICES = ("all", "warm", "long_tail", "cold")
MODES = ("full", "sampled")


@dataclass
class EvalConfig:
    """How a ranking evaluation is run. Every field ends up in the result, so runs stay comparable."""

    part: str = field(default="test", metadata={
        "help": "Which held-out part to evaluate: 'test' or 'valid'."})
    mode: str = field(default="full", metadata={
        "help": "'full': every catalogue item is a candidate. 'sampled': num_negatives random items plus "
                "the targets, shuffled (the protocol of many papers; results are labelled sampled-N)."})
    num_negatives: int = field(default=100, metadata={
        "help": "Sampled mode: negatives per case, drawn uniformly from catalogue items outside the "
                "user's history and targets, seeded per case."})
    exclude_history: bool = field(default=True, metadata={
        "help": "Leave the user's history items out of the ranking. Targets the user had already "
                "consumed (repeat consumption) are then removed and counted."})
    ks: tuple[int, ...] = field(default=(1, 5, 10, 20), metadata={"help": "Cut-offs K for @K metrics."})
    head_fraction: float = field(default=0.2, metadata={
        "help": "The most popular fraction of known items (by interaction count before the evaluated "
                "part) that forms the head; warm items outside it are the long tail."})
    min_history: int = field(default=1, metadata={
        "help": "Cases with fewer history events are dropped (counted)."})
    max_history: int | None = field(default=None, metadata={
        "help": "Keep only the most recent events of each history (None: all)."})
    max_cases: int | None = field(default=None, metadata={
        "help": "Evaluate a seeded random subset of this many cases (quick runs); None: all."})
    batch_size: int = field(default=256, metadata={"help": "Cases per scorer call."})
    seed: int = field(default=42, metadata={"help": "Seed for negative sampling and case subsampling."})
    show_progress: bool = field(default=True, metadata={"help": "Show a tqdm progress bar over batches."})
    primary_metric: str = field(default="ndcg@10", metadata={"help": "The metric model selection reads."})

    def __post_init__(self) -> None:
        self.ks = tuple(int(k) for k in self.ks)
        if self.part not in ("test", "valid"):
            raise ValueError(f"part must be 'test' or 'valid', got {self.part!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive integers, got {self.ks}")
        if self.num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {self.num_negatives}")
        if not 0.0 <= self.head_fraction <= 1.0:
            raise ValueError(f"head_fraction must be in [0, 1], got {self.head_fraction}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_cases is not None and self.max_cases < 1:
            raise ValueError(f"max_cases must be >= 1 or None, got {self.max_cases}")
        if self.primary_metric not in ranking_metric_names(self.ks):
            raise ValueError(f"primary_metric {self.primary_metric!r} is not computed; choose one of "
                             f"{ranking_metric_names(self.ks)}")

    @property
    def mode_label(self) -> str:
        return "full" if self.mode == "full" else f"sampled-{self.num_negatives}"


@dataclass
class _Cases:
    """Evaluation cases in the arrays batches are cut from. Targets and history items are catalogue
    column indices, flattened with the case they belong to (sorted by case)."""

    users: list[str]
    histories: list[list[str]]
    target_case: np.ndarray
    target_item: np.ndarray
    target_warm: np.ndarray
    target_head: np.ndarray
    history_case: np.ndarray
    history_item: np.ndarray
    candidates: list[np.ndarray] | None  # sampled mode: the case's candidate list (catalogue indices)
    target_pos: np.ndarray | None  # sampled mode: each target's position in its case's list


class RankingEvaluator:
    """Rank candidates for every evaluation case of ``split`` and report metrics per slice.

    Slices: ``all``; ``warm`` (target had at least one interaction before the evaluated part);
    ``long_tail`` (warm, outside the head); ``cold`` (no interaction before: ``split.cold_items``).
    For a slice, a case keeps only its targets in that slice (a case with none is skipped); its
    other targets leave the ranking, so they are neither hits nor misses there, and all remaining
    candidates are still ranked. Each call's result is kept in ``results[scorer.name]``.

    Build it with a config, keyword overrides, or both: ``RankingEvaluator(split, mode="sampled")``.
    Cases and candidate lists are fixed here, before any scorer runs. Ties in a scorer's output are
    broken against it (a target tied with non-targets ranks after them), see :mod:`llmrec.eval.metrics`.
    """

    greater_is_better = True

    def __init__(self, split: Split, config: EvalConfig | None = None, **overrides) -> None:
        if config is None:
            config = EvalConfig(**overrides)
        elif overrides:
            config = EvalConfig(**{**asdict(config), **overrides})
        self.split = split
        self.config = config
        self.primary_metric = config.primary_metric
        self.catalog: list[str] = [str(i) for i in split.dataset.items.index]
        self._catalog_index = pd.Index(self.catalog)
        self._catalog_set = set(self.catalog)
        self.results: dict[str, dict] = {}
        self.last_result: dict | None = None
        self._counts: dict = {}
        self._cases = self._prepare()

    # --- preparation: everything a scorer must not influence is fixed here --------------------
    def _prepare(self) -> _Cases:
        cfg, split = self.config, self.split
        es: EvalSet = split.eval_set(cfg.part, min_history=cfg.min_history, max_history=cfg.max_history)
        dropped = {k: int(v) for k, v in es.dropped.items()}

        known_items = set(split.known(cfg.part)[ITEM].unique())
        head, head_min_count = self._head_items(split.item_popularity(cfg.part))
        n_items = len(self.catalog)

        users: list[str] = []
        histories: list[list[str]] = []
        kept_targets: list[list[str]] = []
        repeat_removed = 0
        not_in_catalog = 0
        dropped["all_targets_in_history"] = 0
        dropped["no_target_in_catalog"] = 0
        for user, hist, targets in zip(es.users, es.histories, es.targets, strict=True):
            in_history = set(hist) if cfg.exclude_history else set()
            keep = []
            for t in targets:
                if t in in_history:
                    repeat_removed += 1
                elif t not in self._catalog_set:
                    not_in_catalog += 1
                else:
                    keep.append(t)
            if not keep:
                repeat = any(t in in_history for t in targets)
                reason = "all_targets_in_history" if repeat else "no_target_in_catalog"
                dropped[reason] += 1
                continue
            users.append(user)
            histories.append(list(hist))
            kept_targets.append(keep)
        n_eligible = len(users)
        if cfg.max_cases is not None and cfg.max_cases < n_eligible:
            # Subsample after dropping, so a quick run evaluates exactly max_cases cases.
            rng = np.random.default_rng(cfg.seed)
            pick = np.sort(rng.choice(n_eligible, size=cfg.max_cases, replace=False))
            users = [users[i] for i in pick]
            histories = [histories[i] for i in pick]
            kept_targets = [kept_targets[i] for i in pick]

        t_lens = np.array([len(t) for t in kept_targets], dtype=np.int64)
        flat_targets = [t for ts in kept_targets for t in ts]
        target_case = np.repeat(np.arange(len(users)), t_lens)
        target_item = self._catalog_index.get_indexer(flat_targets).astype(np.int64)
        target_warm = np.array([t in known_items for t in flat_targets], dtype=bool)
        target_head = np.array([t in head for t in flat_targets], dtype=bool) & target_warm

        h_lens = np.array([len(h) for h in histories], dtype=np.int64)
        history_case = np.repeat(np.arange(len(users)), h_lens)
        history_item = self._catalog_index.get_indexer([i for h in histories for i in h]).astype(np.int64)
        in_cat = history_item >= 0  # history items outside the catalogue are never candidates anyway
        history_case, history_item = history_case[in_cat], history_item[in_cat]

        candidates = target_pos = None
        short_negatives = 0
        if cfg.mode == "sampled":
            candidates, target_pos, short_negatives = self._sample(
                users, kept_targets, target_case, target_item, history_case, history_item, n_items)
            per_case = np.array([len(c) for c in candidates], dtype=np.int64)
        else:
            if cfg.exclude_history:
                unique_hist = np.unique(history_case * n_items + history_item) // max(n_items, 1)
                per_case = n_items - np.bincount(unique_hist, minlength=len(users))
            else:
                per_case = np.full(len(users), n_items)

        self._counts = {
            "cases": len(users),
            "cases_built": len(es),
            "cases_eligible": n_eligible,
            "subsampled": len(users) < n_eligible,
            "targets": int(len(flat_targets)),
            "dropped_cases": dropped,
            "targets_removed_in_history": repeat_removed,
            "targets_not_in_catalog": not_in_catalog,
            "catalog_items": n_items,
            "candidates_per_case": _summary(per_case),
            "history_excluded": cfg.exclude_history,
            "head_items": len(head),
            "head_min_interactions": head_min_count,
            "known_items": len(known_items),
        }
        if cfg.mode == "sampled":
            self._counts["cases_with_fewer_negatives"] = short_negatives
        return _Cases(users, histories, target_case, target_item, target_warm, target_head,
                      history_case, history_item, candidates, target_pos)

    def _head_items(self, popularity: pd.Series) -> tuple[set[str], int | None]:
        """The ``head_fraction`` most popular known items and the fewest interactions a head item has.
        Items tying with the last one are head too, so the cut never depends on how ids sort."""
        n_head = math.ceil(self.config.head_fraction * len(popularity))
        if n_head == 0:
            return set(), None
        counts = popularity.sort_values(ascending=False, kind="stable")
        threshold = int(counts.iloc[n_head - 1])
        return set(counts.index[counts >= threshold].astype(str)), threshold

    def _sample(self, users, targets, target_case, target_item, history_case, history_item, n_items):
        """Fixed candidate lists: targets plus uniform negatives outside history and targets, shuffled."""
        cfg = self.config
        candidates: list[np.ndarray] = []
        target_pos = np.empty(len(target_item), dtype=np.int64)
        t_bounds = np.searchsorted(target_case, np.arange(len(users) + 1))
        h_bounds = np.searchsorted(history_case, np.arange(len(users) + 1))
        short = 0
        for i, user in enumerate(users):
            t_idx = target_item[t_bounds[i]:t_bounds[i + 1]]
            excluded = np.union1d(t_idx, history_item[h_bounds[i]:h_bounds[i + 1]])
            rng = np.random.default_rng(_case_seed(cfg.seed, user, targets[i]))
            draw = rng.choice(n_items, size=min(n_items, cfg.num_negatives + len(excluded)), replace=False)
            # The first N allowed items of a random draw: a uniform N-subset of the allowed items.
            negatives = draw[~np.isin(draw, excluded)][: cfg.num_negatives]
            short += len(negatives) < cfg.num_negatives
            perm = rng.permutation(len(t_idx) + len(negatives))
            cands = np.concatenate([t_idx, negatives])[perm]
            # perm[j] < len(t_idx): position j holds target perm[j].
            pos = np.flatnonzero(perm < len(t_idx))
            target_pos[t_bounds[i] + perm[pos]] = pos
            candidates.append(cands)
        return candidates, target_pos, short

    # --- evaluation ------------------------------------------------------------------------------
    def __call__(self, scorer: Scorer, output_path: str | Path | None = None) -> dict:
        if not isinstance(scorer, Scorer):
            raise TypeError("expected a Scorer (a .name and .score(histories, candidates)), "
                            f"got {type(scorer).__name__}")
        cfg, cases = self.config, self._cases
        start = time.perf_counter()
        scoring_seconds = 0.0
        per_slice: dict[str, list[dict[str, np.ndarray]]] = {s: [] for s in SLICES}
        slice_of_target = {
            "all": np.ones(len(cases.target_item), dtype=bool),
            "warm": cases.target_warm,
            "long_tail": cases.target_warm & ~cases.target_head,
            "cold": ~cases.target_warm,
        }
        batches = self._batches()
        for batch in tqdm(batches, desc=f"evaluating {scorer.name}", disable=not cfg.show_progress):
            histories = [cases.histories[i] for i in batch]
            t0 = time.perf_counter()
            if cfg.mode == "full":
                # A fresh list per call: a scorer that edits its input cannot change later batches.
                candidates: list[str] | list[list[str]] = list(self.catalog)
                n_cand = len(self.catalog)
            else:
                candidates = [[self.catalog[j] for j in cases.candidates[i]] for i in batch]
                n_cand = len(candidates[0])
            scores = check_scores(scorer.score(histories, candidates), len(batch), n_cand, scorer.name)
            scoring_seconds += time.perf_counter() - t0
            ranked = RankedScores(scores)
            t_sel, t_rows, t_cols = self._batch_targets(batch)
            hist_cells = self._batch_history(batch)
            for name in SLICES:
                in_slice = slice_of_target[name][t_sel]
                if not in_slice.any():
                    continue
                other = ~in_slice  # this case's targets of other slices leave the ranking
                ign_rows = np.concatenate([hist_cells[0], t_rows[other]])
                ign_cols = np.concatenate([hist_cells[1], t_cols[other]])
                m = ranked.case_metrics((t_rows[in_slice], t_cols[in_slice]), cfg.ks, (ign_rows, ign_cols))
                has = m["n_relevant"] > 0
                per_slice[name].append({k: v[has] for k, v in m.items()})

        slices = {}
        for name in SLICES:
            parts = per_slice[name]
            merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else None
            if merged is None:
                values = {m: None for m in ranking_metric_names(cfg.ks)}
                slices[name] = {**values, "cases": 0, "targets": 0, "auc_cases": 0}
                continue
            values = aggregate(merged, cfg.ks)
            slices[name] = {**{k: _clean(v) for k, v in values.items()},
                            "cases": int(len(merged["n_relevant"])),
                            "targets": int(merged["n_relevant"].sum()),
                            "auc_cases": int(np.sum(~np.isnan(merged["auc"])))}
        top = {k: slices["all"][k] for k in ranking_metric_names(cfg.ks)}
        counts = dict(self._counts)
        result = {
            "primary_metric": self.primary_metric,
            **top,
            "mode": cfg.mode_label,
            "part": cfg.part,
            "dataset": self.split.dataset.name,
            "split": self.split.name,
            "slices": slices,
            "counts": counts,
            "config": _jsonable_config(cfg),
            "scorer": scorer.name,
            "seconds": round(time.perf_counter() - start, 4),
            "scoring_seconds": round(scoring_seconds, 4),
        }
        self.results[scorer.name] = result
        self.last_result = result
        if output_path is not None:
            from llmrec.eval.report import write_results

            write_results(self.results, output_path)
        return result

    def _batches(self) -> list[np.ndarray]:
        n, size = len(self._cases.users), self.config.batch_size
        if self.config.mode == "full":
            return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]
        # Sampled lists differ in length when cases differ in their number of targets; a scorer call
        # takes equal-length lists, so batch cases of equal length together.
        lengths = np.array([len(c) for c in self._cases.candidates], dtype=np.int64)
        out = []
        for length in np.unique(lengths):
            idx = np.flatnonzero(lengths == length)
            out += [idx[i:i + size] for i in range(0, len(idx), size)]
        return out

    def _batch_targets(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices (into the flat target arrays), batch rows and candidate columns of the targets."""
        cases = self._cases
        bounds = np.searchsorted(cases.target_case, np.stack([batch, batch + 1]))
        sel = np.concatenate([np.arange(a, b) for a, b in bounds.T]) if len(batch) else np.empty(0, np.int64)
        rows = np.repeat(np.arange(len(batch)), bounds[1] - bounds[0])
        cols = cases.target_item[sel] if self.config.mode == "full" else cases.target_pos[sel]
        return sel, rows, cols

    def _batch_history(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cells to leave out for history items: full mode with exclude_history only (sampled lists
        hold no history item by construction)."""
        if self.config.mode != "full" or not self.config.exclude_history:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        cases = self._cases
        bounds = np.searchsorted(cases.history_case, np.stack([batch, batch + 1]))
        sel = np.concatenate([np.arange(a, b) for a, b in bounds.T])
        rows = np.repeat(np.arange(len(batch)), bounds[1] - bounds[0])
        return rows, cases.history_item[sel]

    # --- what the evaluator fixed, for tests and reports ---------------------------------------
    @property
    def counts(self) -> dict:
        return dict(self._counts)

    def cases(self) -> list[dict]:
        """The prepared cases (user, history, targets, slice of each target, candidates in sampled
        mode), for inspection and tests; scorers never get this."""
        c = self._cases
        out = []
        bounds = np.searchsorted(c.target_case, np.arange(len(c.users) + 1))
        for i, user in enumerate(c.users):
            sl = slice(bounds[i], bounds[i + 1])
            case = {
                "user": user,
                "history": list(c.histories[i]),
                "targets": [self.catalog[j] for j in c.target_item[sl]],
                "warm": c.target_warm[sl].tolist(),
                "head": c.target_head[sl].tolist(),
            }
            if c.candidates is not None:
                case["candidates"] = [self.catalog[j] for j in c.candidates[i]]
            out.append(case)
        return out


def evaluate_ranking(split: Split, scorer: Scorer, **config) -> dict:
    """One-call form: ``evaluate_ranking(split, scorer, mode="sampled")``."""
    return RankingEvaluator(split, EvalConfig(**config))(scorer)


# --- pointwise: labelled (history, item) pairs -------------------------------------------------


class _PairEvaluator:
    """Scores given (history, item) pairs; a scorer sees histories and one candidate per pair."""

    greater_is_better = True
    primary_metric = ""

    def __init__(self, histories: Sequence[Sequence[str]], items: Sequence[str], values: Sequence[float],
                 name: str = "", batch_size: int = 256, show_progress: bool = True,
                 counts: dict | None = None) -> None:
        if not len(histories) == len(items) == len(values):
            raise ValueError(f"histories, items and values differ in length: "
                             f"{len(histories)}, {len(items)}, {len(values)}")
        if len(items) == 0:
            raise ValueError("no pairs to evaluate")
        self.histories = [list(h) for h in histories]
        self.items = [str(i) for i in items]
        self.values = np.asarray(values, dtype=np.float64)
        self.name = name
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._counts = dict(counts or {})
        self.results: dict[str, dict] = {}

    def _predict(self, scorer: Scorer) -> tuple[np.ndarray, float]:
        if not isinstance(scorer, Scorer):
            raise TypeError(f"expected a Scorer, got {type(scorer).__name__}")
        preds = np.empty(len(self.items))
        t0 = time.perf_counter()
        starts = range(0, len(self.items), self.batch_size)
        for i in tqdm(starts, desc=f"scoring {scorer.name}", disable=not self.show_progress):
            j = min(i + self.batch_size, len(self.items))
            scores = scorer.score(self.histories[i:j], [[item] for item in self.items[i:j]])
            preds[i:j] = check_scores(scores, j - i, 1, scorer.name)[:, 0]
        return preds, time.perf_counter() - t0

    def _finish(self, scorer: Scorer, metrics: dict, mode: str, seconds: float, **counts) -> dict:
        result = {"primary_metric": self.primary_metric, **metrics, "mode": mode, "dataset": self.name,
                  "counts": {"pairs": len(self.items), **counts, **self._counts}, "scorer": scorer.name,
                  "seconds": round(seconds, 4)}
        self.results[scorer.name] = result
        return result

    @staticmethod
    def _pairs_from_split(split: Split, part: str, min_history: int, max_history: int | None
                          ) -> tuple[list[list[str]], list[str], list[str], pd.DataFrame, dict]:
        """(history, item) pairs for every target of ``part``; histories as the split builds them."""
        es = split.eval_set(part, min_history=min_history, max_history=max_history)
        held = split.test if part == "test" else split.valid
        histories, users, items = [], [], []
        for user, hist, targets in zip(es.users, es.histories, es.targets, strict=True):
            for t in targets:
                histories.append(hist)
                users.append(user)
                items.append(t)
        # One row per (user, item): its first held-out event carries the value.
        first = held.drop_duplicates([USER, ITEM], keep="first").set_index([USER, ITEM])
        return histories, users, items, first, {"dropped_cases": dict(es.dropped)}


class PointwiseEvaluator(_PairEvaluator):
    """Labelled pairs (CTR, TALLRec's yes/no): AUC, and log loss / accuracy for probability scores."""

    primary_metric = "auc"

    @classmethod
    def from_split(cls, split: Split, part: str = "test", like_threshold: float | None = None,
                   min_history: int = 1, max_history: int | None = None, **kwargs) -> PointwiseEvaluator:
        """Pairs from the held-out events of ``part``. Labels come from the ``label`` column, or,
        with ``like_threshold``, from ``rating >= like_threshold`` (TALLRec: ratings above 3 liked)."""
        histories, users, items, first, counts = cls._pairs_from_split(split, part, min_history, max_history)
        source = split.dataset.source or split.dataset.name
        if LABEL in first.columns and like_threshold is None:
            column = first[LABEL]
        elif like_threshold is not None and RATING in first.columns:
            column = (first[RATING] >= like_threshold).astype(np.int64)
        else:
            raise DataFormatError(source, f"a '{LABEL}' column, or a '{RATING}' column with like_threshold",
                                  field=LABEL, got=list(first.columns))
        labels = column.loc[list(zip(users, items, strict=True))].to_numpy()
        return cls(histories, items, labels, name=split.dataset.name, counts=counts, **kwargs)

    def __call__(self, scorer: Scorer) -> dict:
        preds, seconds = self._predict(scorer)
        labels = self.values.astype(np.int64)
        metrics = binary_metrics(labels, preds)
        return self._finish(scorer, {k: _clean(v) for k, v in metrics.items()}, "pointwise", seconds,
                            positives=int(labels.sum()), negatives=int(len(labels) - labels.sum()))


class RatingEvaluator(_PairEvaluator):
    """Rating prediction: the scorer's score for a pair is its predicted rating; RMSE and MAE."""

    primary_metric = "rmse"
    greater_is_better = False

    @classmethod
    def from_split(cls, split: Split, part: str = "test", min_history: int = 1,
                   max_history: int | None = None, **kwargs) -> RatingEvaluator:
        histories, users, items, first, counts = cls._pairs_from_split(split, part, min_history, max_history)
        if RATING not in first.columns:
            raise DataFormatError(split.dataset.source or split.dataset.name, f"a '{RATING}' column",
                                  field=RATING, got=list(first.columns))
        ratings = first[RATING].loc[list(zip(users, items, strict=True))].to_numpy()
        return cls(histories, items, ratings, name=split.dataset.name, counts=counts, **kwargs)

    def __call__(self, scorer: Scorer) -> dict:
        preds, seconds = self._predict(scorer)
        return self._finish(scorer, rating_metrics(self.values, preds), "rating", seconds)


# --- helpers -----------------------------------------------------------------------------------


def _case_seed(seed: int, user: str, targets: Sequence[str]) -> int:
    """A stable per-case seed (Python's hash() changes between processes; this does not)."""
    key = "\x1f".join([str(seed), str(user), *map(str, targets)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def _summary(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": int(values.min()), "mean": round(float(values.mean()), 2), "max": int(values.max())}


def _clean(value):
    """NaN (an undefined metric) becomes None so results are valid JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _jsonable_config(cfg: EvalConfig) -> dict:
    out = asdict(cfg)
    out["ks"] = list(cfg.ks)
    return out
