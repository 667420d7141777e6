"""One LLMRank run end to end: data -> split -> candidates -> scorer -> metrics (CLI and benchmark).

* ``prepare``: load a data set, split it (the source's own split where it has one, e.g. the LLMRank
  Games validation file; else leave-one-out), fix the evaluation cases and their LLMRank-protocol
  candidate lists once, so every scorer ranks exactly the same lists.
* ``evaluate_protocol``: the one evaluator on those lists.
* ``evaluate_multichannel``: recalled lists (ground truth not forced in) ranked by a scorer; a user
  whose target was not recalled counts as a miss.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llmrec.data.schema import Dataset
from llmrec.data.splits import Split, make_split
from llmrec.eval import RankingEvaluator
from llmrec.llmrank.bootstrap import DEFAULT_KS, ranking_metrics
from llmrec.llmrank.candidates import (
    MultiChannelRecall,
    ProtocolCases,
    RecallResult,
    llmrank_protocol,
    protocol_cases,
    recall_report,
)
from llmrec.llmrank.recall import RecallContext, build_channel
from llmrec.scoring import Scorer

BASELINES = ("popularity", "itemcf", "bm25", "embedding")


@dataclass
class RerankSetup:
    """Everything fixed before any scorer runs."""

    dataset: Dataset
    split: Split
    part: str
    evaluator: RankingEvaluator
    cases: ProtocolCases
    item_text: dict[str, str]
    n_candidates: int
    seed: int

    @property
    def known(self) -> pd.DataFrame:
        """Interactions a model may learn from for this part (never its targets)."""
        return self.split.known(self.part)

    def recall_context(self, **options: Any) -> RecallContext:
        return RecallContext(train=self.known, items=self.dataset.items, item_text=self.item_text,
                             options=options)


def prepare(
    dataset: str | Dataset,
    data_dir: str | None = None,
    *,
    users: int | None = 200,
    n_candidates: int = 20,
    seed: int = 0,
    split: str | None = None,
    part: str = "test",
    show_progress: bool = True,
) -> RerankSetup:
    """Load, split and fix the cases. ``split=None`` uses the data set's predefined split when it
    has one (Amazon Games: the LLMRank validation users) and leave-one-out otherwise."""
    from llmrec.data.registry import load_dataset
    from llmrec.data.text import item_text

    ds = load_dataset(dataset, data_dir) if isinstance(dataset, str) else dataset
    sp = make_split(ds, split or "auto")
    evaluator = llmrank_protocol(sp, part=part, n_candidates=n_candidates, max_users=users, seed=seed,
                                 show_progress=show_progress)
    texts = item_text(ds)
    return RerankSetup(dataset=ds, split=sp, part=part, evaluator=evaluator, cases=protocol_cases(evaluator),
                       item_text={str(k): str(v) for k, v in texts.items()}, n_candidates=n_candidates, seed=seed)


def baseline_scorer(name: str, setup: RerankSetup, **options: Any) -> Scorer:
    """A non-LLM scorer by name (the recall channels double as scorers)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {list(BASELINES)}")
    return build_channel(name, setup.recall_context(), **options)


def build_recall(setup: RerankSetup, channels: Sequence[str], **options: Any) -> MultiChannelRecall:
    ctx = setup.recall_context()
    return MultiChannelRecall([build_channel(name, ctx, **options) for name in channels], setup.n_candidates)


def score_in_batches(scorer: Scorer, histories: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]],
                     batch_size: int = 8, show_progress: bool = True) -> np.ndarray:
    """``scorer.score`` over blocks of users with a progress bar (LLM scorers take seconds per user)."""
    blocks = []
    for start in tqdm(range(0, len(histories), batch_size), desc=f"scoring {scorer.name}",
                      disable=not show_progress or len(histories) <= batch_size):
        blocks.append(np.asarray(scorer.score(histories[start:start + batch_size],
                                              candidates[start:start + batch_size]), dtype=np.float64))
    return np.concatenate(blocks) if blocks else np.zeros((0, 0))


def _scorer_stats(scorer: Scorer) -> dict:
    stats = getattr(scorer, "stats", None)
    return stats.as_dict() if hasattr(stats, "as_dict") else {}


def evaluate_protocol(setup: RerankSetup, scorer: Scorer) -> dict:
    """The evaluator on the LLMRank-protocol lists; LLM parse statistics attached."""
    if hasattr(scorer, "reset_stats"):
        scorer.reset_stats()
    result = setup.evaluator(scorer)
    out = {"candidates": "llmrank", "scorer": scorer.name, "cases": result["counts"]["cases"],
           **{k: result[k] for k in result if "@" in k}, "stats": _scorer_stats(scorer),
           "seconds_per_user": result["scoring_seconds"] / max(1, result["counts"]["cases"]),
           "evaluator": result}
    return out


def evaluate_multichannel(setup: RerankSetup, scorer: Scorer, recalled: RecallResult,
                          ks: Sequence[int] = DEFAULT_KS, show_progress: bool = True) -> dict:
    """Rank the recalled lists; a case whose target was not recalled is a miss."""
    if hasattr(scorer, "reset_stats"):
        scorer.reset_stats()
    start = time.perf_counter()
    scores = score_in_batches(scorer, setup.cases.histories, recalled.candidates, show_progress=show_progress)
    seconds = time.perf_counter() - start
    metrics = ranking_metrics(scores, recalled.candidates, setup.cases.targets, ks)
    return {"candidates": "multichannel", "scorer": scorer.name, "cases": len(setup.cases), **metrics,
            "stats": _scorer_stats(scorer), "seconds_per_user": seconds / max(1, len(setup.cases)),
            "recall": recall_report(recalled, setup.cases.targets)}


TABLE_COLUMNS = ("scorer", "candidates", "cases", "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20",
                 "parse_fail", "out_of_cand", "s/user")


def table_row(result: dict) -> dict:
    stats = result.get("stats") or {}
    return {
        "scorer": result["scorer"], "candidates": result["candidates"], "cases": result["cases"],
        **{k: result.get(k) for k in ("ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20")},
        "parse_fail": stats.get("parse_failure_rate"),
        "out_of_cand": stats.get("out_of_candidate_rate"),
        "s/user": result.get("seconds_per_user"),
    }


def format_table(rows: Sequence[dict], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """Fixed-width text table; a value that does not apply (e.g. parse rates of a non-generating
    scorer) shows as "-", never 0."""
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) >= 100 else f"{v:.4f}"
        return str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
              for row in cells]
    return "\n".join(lines)
