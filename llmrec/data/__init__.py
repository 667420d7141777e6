"""Data layer: one schema, loaders for real formats, item-to-text, leakage-free splits."""

from llmrec.data.paths import resolve_data_dir
from llmrec.data.registry import list_datasets, load_dataset
from llmrec.data.schema import ITEM, LABEL, RATING, TIME, USER, Dataset, subsample_users
from llmrec.data.splits import EvalSet, Split, make_split
from llmrec.data.text import item_text, learn_item_text

__all__ = ["Dataset", "EvalSet", "Split", "make_split", "USER", "ITEM", "TIME", "RATING", "LABEL",
           "load_dataset", "list_datasets", "resolve_data_dir", "item_text", "learn_item_text",
           "subsample_users"]
