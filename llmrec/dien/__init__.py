"""DIEN (Zhou et al., AAAI 2019): a GRU interest extractor with an auxiliary next-click loss, DIN's
attention on the target item, and interest evolution by GRU + attention pooling, AIGRU, AGRU or
AUGRU, trained for click-through prediction."""

from llmrec.dien.config import DIENConfig
from llmrec.dien.data import DIENCollator, DIENExamples, item_categories
from llmrec.dien.model import DIEN, InterestCell, run_cell
from llmrec.dien.scorer import DIENScorer
from llmrec.dien.train import train_dien

__all__ = ["DIEN", "DIENCollator", "DIENConfig", "DIENExamples", "DIENScorer", "InterestCell", "item_categories",
           "run_cell", "train_dien"]
