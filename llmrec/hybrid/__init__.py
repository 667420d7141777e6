"""The cold-aware hybrid: collaborative signal where items have events, content and text bridges where not."""

from llmrec.hybrid.config import HybridConfig
from llmrec.hybrid.model import HybridScorer, PopularityBridge

__all__ = ["HybridConfig", "HybridScorer", "PopularityBridge"]
