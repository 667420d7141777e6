"""Learned hybrid ranker: every registered scorer's opinion of a candidate becomes a feature, and a
learning-to-rank model (LambdaMART from LightGBM, or a logistic model) learns how to combine them
from training users' own next items (never from the evaluated part)."""

from llmrec.ltr.config import LTRConfig

__all__ = ["LTRConfig"]
