"""Evaluation: ranking and pointwise metrics, the one evaluator, reports.

Imports no method: every method is a scorer (:class:`llmrec.scoring.Scorer`) the evaluator calls.
"""

from llmrec.eval.cases import EvalCases, build_cases
from llmrec.eval.metrics import (
    RankedScores,
    binary_metrics,
    case_auc,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    paired_difference,
    pessimistic_ranks,
    ranking_metric_names,
    rating_metrics,
    recall_at_k,
    top_k_accuracy,
)
from llmrec.eval.pointwise import PointwiseEvaluator, RatingEvaluator
from llmrec.eval.ranking import SLICES, EvalConfig, RankingEvaluator, evaluate_ranking
from llmrec.eval.report import results_table, write_results

__all__ = [
    "SLICES",
    "EvalCases",
    "EvalConfig",
    "PointwiseEvaluator",
    "RankedScores",
    "RankingEvaluator",
    "RatingEvaluator",
    "binary_metrics",
    "build_cases",
    "case_auc",
    "evaluate_ranking",
    "hit_rate_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "paired_difference",
    "pessimistic_ranks",
    "ranking_metric_names",
    "rating_metrics",
    "recall_at_k",
    "results_table",
    "top_k_accuracy",
    "write_results",
]
