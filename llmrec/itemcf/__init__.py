"""Item-based collaborative filtering (co-occurrence), the classic non-LLM baseline."""

from llmrec.itemcf.config import ItemCFConfig
from llmrec.itemcf.model import ItemCFScorer

__all__ = ["ItemCFConfig", "ItemCFScorer"]
