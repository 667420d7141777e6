"""LLMRank: zero/few-shot direct ranking of candidates by an LLM (Hou et al., ECIR 2024).

Pieces, each usable alone:
* ``candidates``: the paper's sampled protocol (target + 19 random items, shuffled per user: the
  evaluator's sampled mode) and
  multi-channel recall (popularity, item-CF, BM25, embeddings; de-duplicated, target not forced in);
* ``recall``: the recall channels and their registry (the slot for trained recallers);
* ``prompts``: the jinja2 templates under ``prompts/llmrank/`` with quoted item text;
* ``parsing``: reading a generated ranking robustly;
* ``model``: :class:`LLMRankScorer` with generate / score / score-calibrated / first-token modes;
* ``bootstrap``: shuffled copies against position bias, and the position-bias report.
"""

from llmrec.llmrank.bootstrap import bootstrap_orders, position_bias_report, ranking_metrics
from llmrec.llmrank.candidates import (
    MultiChannelRecall,
    ProtocolCases,
    RecallResult,
    llmrank_protocol,
    protocol_cases,
    recall_report,
)
from llmrec.llmrank.config import LLMRankConfig
from llmrec.llmrank.model import LLMRankScorer, RerankStats
from llmrec.llmrank.parsing import ParseResult, parse_ranking
from llmrec.llmrank.prompts import Demonstration, PromptBuilder, build_demonstrations, quote_item
from llmrec.llmrank.recall import CHANNELS, RecallContext, ScorerChannel, build_channel, register_channel

__all__ = [
    "CHANNELS",
    "Demonstration",
    "LLMRankConfig",
    "LLMRankScorer",
    "MultiChannelRecall",
    "ParseResult",
    "PromptBuilder",
    "ProtocolCases",
    "RecallContext",
    "RecallResult",
    "RerankStats",
    "ScorerChannel",
    "bootstrap_orders",
    "build_channel",
    "build_demonstrations",
    "llmrank_protocol",
    "protocol_cases",
    "parse_ranking",
    "position_bias_report",
    "quote_item",
    "ranking_metrics",
    "recall_report",
    "register_channel",
]
