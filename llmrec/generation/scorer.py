"""Registers ``embedding``: the generation paradigm's embedding ranker over the whole catalogue."""

from __future__ import annotations

from llmrec.generation.config import EmbeddingRankerConfig
from llmrec.generation.model import EmbeddingRanker
from llmrec.registry import BuildContext, register_scorer


def build_embedding(context: BuildContext, config: EmbeddingRankerConfig) -> EmbeddingRanker:
    return EmbeddingRanker(context.dataset.items, config)


register_scorer("embedding", build_embedding, EmbeddingRankerConfig,
                "cosine between the mean history text embedding and each item's (sentence-transformers)")
