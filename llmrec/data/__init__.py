"""Data layer: one schema, loaders for real formats, item-to-text, leakage-free splits."""

from llmrec.data.schema import ITEM, LABEL, RATING, TIME, USER, Dataset
from llmrec.data.splits import EvalSet, Split, make_split

__all__ = ["Dataset", "EvalSet", "Split", "make_split", "USER", "ITEM", "TIME", "RATING", "LABEL"]
