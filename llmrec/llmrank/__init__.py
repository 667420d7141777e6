"""LLMRank: zero/few-shot direct ranking of candidates by an LLM (Hou et al., ECIR 2024).

Pieces, each usable alone:
* ``prompts``: the jinja2 templates under ``prompts/llmrank/`` with quoted item text;
* ``parsing``: reading a generated ranking robustly;
* ``model``: :class:`LLMRankScorer` with generate / score / score-calibrated / first-token modes;
* ``bootstrap``: shuffled copies against position bias, and the position-bias report;
* ``scorer``: the registered ``llmrank`` builder.

Candidates (the paper's 1 + 19 sampled protocol, multi-channel recall) come from
:mod:`llmrec.candidates`, metrics from :mod:`llmrec.eval`, like every other method's.
"""

from llmrec.llmrank.bootstrap import bootstrap_orders, position_bias_report
from llmrec.llmrank.config import LLMRankConfig
from llmrec.llmrank.model import LLMRankScorer, RerankStats
from llmrec.llmrank.parsing import ParseResult, parse_ranking
from llmrec.llmrank.prompts import Demonstration, PromptBuilder, build_demonstrations, quote_item
from llmrec.llmrank.scorer import LLMRankScorerConfig

__all__ = [
    "Demonstration",
    "LLMRankConfig",
    "LLMRankScorer",
    "LLMRankScorerConfig",
    "ParseResult",
    "PromptBuilder",
    "RerankStats",
    "bootstrap_orders",
    "build_demonstrations",
    "parse_ranking",
    "position_bias_report",
    "quote_item",
]
