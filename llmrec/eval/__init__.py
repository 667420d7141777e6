"""Evaluation: ranking and pointwise metrics, the one evaluator, reports.

Imports no method: every method is a scorer (:class:`llmrec.scoring.Scorer`) the evaluator calls.
"""

from llmrec.eval.evaluator import (
    SLICES,
    EvalConfig,
    PointwiseEvaluator,
    RankingEvaluator,
    RatingEvaluator,
    evaluate_ranking,
)
from llmrec.eval.metrics import (
    RankedScores,
    binary_metrics,
    case_auc,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    pessimistic_ranks,
    ranking_metric_names,
    rating_metrics,
    recall_at_k,
    top_k_accuracy,
)
from llmrec.eval.report import results_table, write_results

__all__ = [
    "SLICES",
    "EvalConfig",
    "PointwiseEvaluator",
    "RankedScores",
    "RankingEvaluator",
    "RatingEvaluator",
    "binary_metrics",
    "case_auc",
    "evaluate_ranking",
    "hit_rate_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "pessimistic_ranks",
    "ranking_metric_names",
    "rating_metrics",
    "recall_at_k",
    "results_table",
    "top_k_accuracy",
    "write_results",
]
