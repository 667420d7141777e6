"""The ranking evaluator: a split, settings and a candidates stage in, a scorer called on batches,
labelled metrics out.

Usage, in the sentence-transformers evaluator style::

    evaluator = RankingEvaluator(split, EvalConfig(mode="sampled"))
    result = evaluator(scorer)          # dict: primary metric, every metric, slices, counts
    result[result["primary_metric"]]    # e.g. NDCG@10 over all cases

What keeps it honest:

* the scorer sees histories (at most ``max_history`` recent events) and candidate item ids, never a
  target or a label; the evaluator excludes the *whole* history from the ranking;
* cases and candidates are fixed when the evaluator is built, so every scorer ranks the same lists;
  sampled negatives are seeded per case (user, history), never from a target (``llmrec.candidates``);
* a target that a recall stage did not put in the list is a miss, never ignored;
* ties are broken against the scorer (see :mod:`llmrec.eval.metrics`);
* every result says how it was measured (``mode``: "full", "sampled-100", "recalled-20", ...), how
  many users out of the data set's total, and what was left out (dropped cases and why).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llmrec.candidates import CANDIDATE_MODES, CandidateLists, MultiChannelRecall, read_candidate_file
from llmrec.candidates.sampled import sample_candidates
from llmrec.data.splits import Split
from llmrec.eval.cases import EvalCases, build_cases
from llmrec.eval.metrics import RankedScores, aggregate, ranking_metric_names
from llmrec.scoring import Scorer, check_scores, scorer_diagnostics

SLICES = ("all", "warm", "long_tail", "cold")


@dataclass
class EvalConfig:
    """How a ranking evaluation is run. Every field ends up in the result, so runs stay comparable."""

    part: str = field(default="test", metadata={
        "help": "Which held-out part to evaluate: 'test' or 'valid'."})
    mode: str = field(default="full", metadata={
        "help": "Candidates. 'full': every catalogue item. 'sampled': num_negatives random items plus the "
                "targets (labelled sampled-N). 'recalled': the top n_candidates of the recall channels, "
                "de-duplicated, targets not forced in. 'given': lists from candidates_file."})
    num_negatives: int = field(default=100, metadata={
        "help": "Sampled mode: negatives per case, drawn uniformly from catalogue items outside the "
                "user's history and targets, seeded per case (user, history)."})
    n_candidates: int = field(default=20, metadata={"help": "Recalled mode: candidates per case."})
    candidates_file: str | None = field(default=None, metadata={
        "help": "Given mode: JSON lines {\"user\": ..., \"candidates\": [...]}."})
    exclude_history: bool = field(default=True, metadata={
        "help": "Leave the user's history items out of the ranking. Targets the user had already "
                "consumed (repeat consumption) are then removed and counted."})
    ks: tuple[int, ...] = field(default=(1, 5, 10, 20), metadata={"help": "Cut-offs K for @K metrics."})
    head_fraction: float = field(default=0.2, metadata={
        "help": "The most popular fraction of known items (by interaction count before the evaluated "
                "part) that forms the head; warm items outside it are the long tail."})
    min_history: int = field(default=1, metadata={"help": "Cases with fewer history events are dropped (counted)."})
    max_history: int | None = field(default=None, metadata={
        "help": "Show scorers only the most recent events of each history (None: all). The whole history "
                "is still excluded from the ranking."})
    max_cases: int | None = field(default=None, metadata={
        "help": "Evaluate a seeded random subset of this many cases (quick runs); None: all."})
    batch_size: int = field(default=256, metadata={"help": "Cases per scorer call."})
    seed: int = field(default=42, metadata={"help": "Seed for negative sampling and case subsampling."})
    show_progress: bool = field(default=True, metadata={"help": "Show a tqdm progress bar over batches."})
    primary_metric: str = field(default="ndcg@10", metadata={"help": "The metric model selection reads."})
    per_case: bool = field(default=False, metadata={
        "help": "Also return the primary metric of every case (slice 'all', case order) as result['per_case'], "
                "for paired confidence intervals between scorers on the same cases."})

    def __post_init__(self) -> None:
        self.ks = tuple(int(k) for k in self.ks)
        if self.part not in ("test", "valid"):
            raise ValueError(f"part must be 'test' or 'valid', got {self.part!r}")
        if self.mode not in CANDIDATE_MODES:
            raise ValueError(f"mode must be one of {CANDIDATE_MODES}, got {self.mode!r}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive integers, got {self.ks}")
        if self.num_negatives < 1 or self.n_candidates < 1:
            raise ValueError(f"num_negatives and n_candidates must be >= 1, got {self.num_negatives}, "
                             f"{self.n_candidates}")
        if not 0.0 <= self.head_fraction <= 1.0:
            raise ValueError(f"head_fraction must be in [0, 1], got {self.head_fraction}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_cases is not None and self.max_cases < 1:
            raise ValueError(f"max_cases must be >= 1 or None, got {self.max_cases}")
        if self.max_history is not None and self.max_history < 1:
            raise ValueError(f"max_history must be >= 1 or None, got {self.max_history}")
        if self.primary_metric not in ranking_metric_names(self.ks):
            raise ValueError(f"primary_metric {self.primary_metric!r} is not computed; choose one of "
                             f"{ranking_metric_names(self.ks)}")


class RankingEvaluator:
    """Rank candidates for every evaluation case of ``split`` and report metrics per slice.

    Slices: ``all``; ``warm`` (target had at least one interaction before the evaluated part);
    ``long_tail`` (warm, outside the head); ``cold`` (no interaction before: ``split.cold_items``).
    For a slice, a case keeps only its targets in that slice (a case with none is skipped); its
    other targets leave the ranking, so they are neither hits nor misses there.

    ``channels`` (scorers) are the recall channels of ``mode="recalled"``; ``candidates`` passes
    lists built elsewhere. Each call's result is kept in ``results[scorer.name]``.
    """

    greater_is_better = True

    def __init__(self, split: Split, config: EvalConfig | None = None, *, channels: Sequence[Scorer] = (),
                 candidates: CandidateLists | None = None, **overrides) -> None:
        if config is None:
            config = EvalConfig(**overrides)
        elif overrides:
            config = EvalConfig(**{**asdict(config), **overrides})
        self.split = split
        self.config = config
        self.primary_metric = config.primary_metric
        self.catalog: list[str] = [str(i) for i in split.dataset.items.index]
        self._catalog_index = pd.Index(self.catalog)
        self.results: dict[str, dict] = {}
        self.last_result: dict | None = None
        self._cases = build_cases(split, self._catalog_index, config.part, config.exclude_history,
                                  config.min_history, config.max_cases, config.seed, config.head_fraction)
        self._scorer_histories = self._cases.scorer_histories(config.max_history)
        self.candidates = candidates if candidates is not None else self._build_candidates(channels)
        self._target_col, self._ignore = self._locate()
        self._counts = {**self._cases.counts, "catalog_items": len(self.catalog),
                        "candidates_per_case": _summary(self._per_case_sizes())}

    # --- preparation: everything a scorer must not influence is fixed here --------------------
    def _build_candidates(self, channels: Sequence[Scorer]) -> CandidateLists:
        cfg, cases = self.config, self._cases
        if cfg.mode == "full":
            return CandidateLists("full", "full")
        if cfg.mode == "sampled":
            return sample_candidates(cases.users, cases.histories, cases.history_items_of(),
                                     cases.target_items_of(), len(self.catalog), cfg.num_negatives, cfg.seed)
        if cfg.mode == "recalled":
            if not channels:
                raise ValueError("mode 'recalled' needs recall channels (scorers), e.g. popularity and itemcf")
            lists, _ = MultiChannelRecall(channels, cfg.n_candidates).candidates(
                self._scorer_histories, cases.history_items_of(), self.catalog)
            return lists
        if not cfg.candidates_file:
            raise ValueError("mode 'given' needs candidates_file (or candidate lists passed as candidates=)")
        return read_candidate_file(str(cfg.candidates_file), cases.users, self.catalog)

    def _locate(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each target's column in its case's list (-1: not among the candidates), and per case the
        columns of history items to leave out of the ranking."""
        cases, lists = self._cases, self.candidates.lists
        if lists is None:
            return cases.target_item.copy(), []
        if len(lists) != len(cases):
            raise ValueError(f"{len(lists)} candidate lists for {len(cases)} cases")
        cols = np.full(len(cases.target_item), -1, dtype=np.int64)
        targets = cases.target_items_of()
        hist = cases.history_items_of()
        ignore = []
        start = 0
        for i, cand in enumerate(lists):
            where = {int(item): j for j, item in enumerate(cand)}
            cols[start:start + len(targets[i])] = [where.get(int(t), -1) for t in targets[i]]
            start += len(targets[i])
            ignore.append(np.flatnonzero(np.isin(cand, hist[i])) if self.config.exclude_history
                          else np.empty(0, np.int64))
        return cols, ignore

    def _per_case_sizes(self) -> np.ndarray:
        if self.candidates.lists is not None:
            return self.candidates.sizes()
        if not self.config.exclude_history:
            return np.full(len(self._cases), len(self.catalog))
        n = len(self.catalog)
        unique = np.unique(self._cases.history_case * n + self._cases.history_item) // max(n, 1)
        return n - np.bincount(unique, minlength=len(self._cases))

    # --- evaluation ------------------------------------------------------------------------------
    def __call__(self, scorer: Scorer, output_path: str | Path | None = None) -> dict:
        if not isinstance(scorer, Scorer):
            raise TypeError("expected a Scorer (a .name and .score(histories, candidates)), "
                            f"got {type(scorer).__name__}")
        cfg, cases = self.config, self._cases
        start = time.perf_counter()
        scoring_seconds = 0.0
        per_slice: dict[str, list[dict[str, np.ndarray]]] = {s: [] for s in SLICES}
        slice_of_target = {"all": np.ones(len(cases.target_item), dtype=bool), "warm": cases.target_warm,
                           "long_tail": cases.target_warm & ~cases.target_head, "cold": ~cases.target_warm}
        for batch in tqdm(self._batches(), desc=f"evaluating {scorer.name}", disable=not cfg.show_progress):
            histories = [self._scorer_histories[i].last(None) for i in batch]  # copies: scorers cannot edit ours
            if self.candidates.lists is None:
                candidates: list[str] | list[list[str]] = list(self.catalog)
                n_cand = len(self.catalog)
            else:
                candidates = [[self.catalog[j] for j in self.candidates.lists[i]] for i in batch]
                n_cand = len(candidates[0])
            t0 = time.perf_counter()
            scores = check_scores(scorer.score(histories, candidates), len(batch), n_cand, scorer.name)
            scoring_seconds += time.perf_counter() - t0
            ranked = RankedScores(scores)
            t_sel, t_rows, t_cols = self._batch_targets(batch)
            ign_rows0, ign_cols0 = self._batch_ignored(batch)
            listed = t_cols >= 0
            for name in SLICES:
                in_slice = slice_of_target[name][t_sel]
                if not in_slice.any():
                    continue
                other = ~in_slice & listed  # this case's targets of other slices leave the ranking
                rel = in_slice & listed
                m = ranked.case_metrics((t_rows[rel], t_cols[rel]), cfg.ks,
                                        (np.concatenate([ign_rows0, t_rows[other]]),
                                         np.concatenate([ign_cols0, t_cols[other]])),
                                        n_targets=np.bincount(t_rows[in_slice], minlength=len(batch)))
                has = m["n_relevant"] > 0
                per_slice[name].append({k: v[has] for k, v in m.items()})
        slices = {name: _slice_result(per_slice[name], cfg.ks) for name in SLICES}
        if cfg.per_case:
            parts = [p[self.primary_metric] for p in per_slice["all"]]
            values = np.concatenate(parts) if parts else np.zeros(0)
            per_case = {"users": list(cases.users), self.primary_metric: [float(v) for v in values]}
        result = {
            "primary_metric": self.primary_metric,
            **{k: slices["all"][k] for k in ranking_metric_names(cfg.ks)},
            "mode": self.candidates.label,
            "part": cfg.part,
            "dataset": self.split.dataset.name,
            "split": self.split.name,
            "population": self.population(),
            "slices": slices,
            "counts": dict(self._counts),
            "candidates": {"mode": self.candidates.mode, **self.candidates.info},
            "config": _jsonable_config(cfg),
            "scorer": scorer.name,
            "seconds": round(time.perf_counter() - start, 4),
            "scoring_seconds": round(scoring_seconds, 4),
        }
        if cfg.per_case:
            result["per_case"] = per_case
        diagnostics = scorer_diagnostics(scorer)
        if diagnostics:
            result["diagnostics"] = diagnostics
        self.results[scorer.name] = result
        self.last_result = result
        if output_path is not None:
            from llmrec.eval.report import write_results

            write_results(self.results, output_path)
        return result

    def population(self) -> dict:
        """Users evaluated out of the users in the data set (and out of its source, if subsampled)."""
        pop = self.split.dataset.population()
        return {"cases": len(self._cases), "users_evaluated": self._cases.counts["users"],
                "users_in_dataset": pop["users"], "users_in_source": pop["users_total"],
                "subsampled_dataset": pop["subsampled"], "subsampled_cases": self._cases.counts["subsampled"]}

    def _batches(self) -> list[np.ndarray]:
        n, size = len(self._cases), self.config.batch_size
        if self.candidates.lists is None:
            return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]
        # A scorer call takes equal-length lists: batch cases of equal list length together.
        lengths = self.candidates.sizes()
        out = []
        for length in np.unique(lengths):
            idx = np.flatnonzero(lengths == length)
            out += [idx[i:i + size] for i in range(0, len(idx), size)]
        return out

    def _batch_targets(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices into the flat target arrays, batch rows and candidate columns (-1: not listed)."""
        bounds = np.searchsorted(self._cases.target_case, np.stack([batch, batch + 1]))
        sel = np.concatenate([np.arange(a, b) for a, b in bounds.T]) if len(batch) else np.empty(0, np.int64)
        rows = np.repeat(np.arange(len(batch)), bounds[1] - bounds[0])
        return sel, rows, self._target_col[sel]

    def _batch_ignored(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cells of history items, left out of the ranking when ``exclude_history``."""
        if not self.config.exclude_history:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        if self.candidates.lists is not None:
            cols = [self._ignore[i] for i in batch]
            rows = np.repeat(np.arange(len(batch)), [len(c) for c in cols])
            return rows, np.concatenate(cols) if cols else np.empty(0, np.int64)
        cases = self._cases
        bounds = np.searchsorted(cases.history_case, np.stack([batch, batch + 1]))
        sel = np.concatenate([np.arange(a, b) for a, b in bounds.T])
        return np.repeat(np.arange(len(batch)), bounds[1] - bounds[0]), cases.history_item[sel]

    # --- what the evaluator fixed, for tests and reports ---------------------------------------
    @property
    def counts(self) -> dict:
        return dict(self._counts)

    @property
    def eval_cases(self) -> EvalCases:
        return self._cases

    def cases(self) -> list[dict]:
        """The prepared cases (user, whole history, the history scorers see, targets, slice of each
        target, candidates in list modes), for inspection and tests; scorers never get this."""
        c = self._cases
        out = []
        bounds = np.searchsorted(c.target_case, np.arange(len(c.users) + 1))
        for i, user in enumerate(c.users):
            sl = slice(bounds[i], bounds[i + 1])
            case = {"user": user, "history": list(c.histories[i]), "scorer_history": list(self._scorer_histories[i]),
                    "targets": [self.catalog[j] for j in c.target_item[sl]],
                    "warm": c.target_warm[sl].tolist(), "head": c.target_head[sl].tolist()}
            if self.candidates.lists is not None:
                case["candidates"] = [self.catalog[j] for j in self.candidates.lists[i]]
            out.append(case)
        return out


def evaluate_ranking(split: Split, scorer: Scorer, **config) -> dict:
    """One-call form: ``evaluate_ranking(split, scorer, mode="sampled")``."""
    return RankingEvaluator(split, EvalConfig(**config))(scorer)


def _slice_result(parts: list[dict[str, np.ndarray]], ks: Sequence[int]) -> dict:
    if not parts:
        return {**{m: None for m in ranking_metric_names(ks)}, "cases": 0, "targets": 0, "auc_cases": 0}
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    values = aggregate(merged, ks)
    return {**{k: clean_number(v) for k, v in values.items()}, "cases": int(len(merged["n_relevant"])),
            "targets": int(merged["n_relevant"].sum()), "targets_listed": int(merged["n_listed"].sum()),
            "auc_cases": int(np.sum(~np.isnan(merged["auc"])))}


def _summary(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": int(values.min()), "mean": round(float(values.mean()), 2), "max": int(values.max())}


def clean_number(value):
    """NaN (an undefined metric) becomes None so results are valid JSON."""
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _jsonable_config(cfg: EvalConfig) -> dict:
    out = asdict(cfg)
    out["ks"] = list(cfg.ks)
    return out
