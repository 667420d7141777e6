"""The user + item bias model (baseline predictor): rating = mu + b_item + b_user, the baseline every
rating model must beat (Koren 2008's baseline estimates)."""

from llmrec.bias.config import BiasConfig
from llmrec.bias.model import BiasModel, BiasScorer

__all__ = ["BiasConfig", "BiasModel", "BiasScorer"]
