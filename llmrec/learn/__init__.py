"""LEARN (Jia et al., arXiv 2405.03988): knowledge adaptation from a frozen LLM to recommendation.

Content embeddings come from a frozen model reading item texts (``ceg``); a causal Transformer
user tower (PCH) over a user's content embeddings is trained against one of three item towers with
the dense all-action InfoNCE loss and an auxiliary CVR loss (``model``, ``train``). Items are
embedded from their text alone, so cold-start items are scored like any other (``scorer``).
"""

from llmrec.learn.ceg import ContentEmbeddingGenerator, ContentEmbeddings, load_frozen_model
from llmrec.learn.config import CEGConfig, LearnConfig
from llmrec.learn.data import LearnCollator, LearnSequences
from llmrec.learn.model import LearnModel, info_nce
from llmrec.learn.scorer import LearnScorer
from llmrec.learn.train import train_learn

__all__ = [
    "CEGConfig",
    "ContentEmbeddingGenerator",
    "ContentEmbeddings",
    "LearnCollator",
    "LearnConfig",
    "LearnModel",
    "LearnScorer",
    "LearnSequences",
    "info_nce",
    "load_frozen_model",
    "train_learn",
]
