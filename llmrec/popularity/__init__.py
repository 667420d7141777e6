"""Popularity and the item prior: the baselines every recommender must beat."""

from llmrec.popularity.config import ItemPriorConfig
from llmrec.popularity.model import ItemPriorScorer, PopularityScorer

__all__ = ["ItemPriorConfig", "ItemPriorScorer", "PopularityScorer"]
