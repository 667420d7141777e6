"""Generation paradigm: rank items from text alone. The embedding ranker is its baseline member.

A user is represented by the embeddings of the item texts they interacted with; candidates are
ranked by cosine. No training, so cold-start items are first-class.
"""

from llmrec.generation.config import EmbeddingRankerConfig
from llmrec.generation.model import EmbeddingRanker

__all__ = ["EmbeddingRanker", "EmbeddingRankerConfig"]
