"""Popularity and the item prior: the baselines every recommender must beat."""

from llmrec.popularity.config import ItemPriorConfig, NewestConfig
from llmrec.popularity.model import ItemPriorScorer, NewestFirstScorer, PopularityScorer

__all__ = ["ItemPriorConfig", "ItemPriorScorer", "NewestConfig", "NewestFirstScorer", "PopularityScorer"]
