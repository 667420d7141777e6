"""Popularity: the baseline every recommender must beat."""

from llmrec.popularity.model import PopularityScorer

__all__ = ["PopularityScorer"]
