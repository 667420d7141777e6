"""BM25 over item text: the lexical baseline (LLMRank's BM25 row)."""

from llmrec.bm25.config import BM25Config
from llmrec.bm25.model import BM25Scorer

__all__ = ["BM25Config", "BM25Scorer"]
