"""Registers ``itemcf``: item-to-item co-occurrence from the events known before the evaluated part."""

from __future__ import annotations

from llmrec.itemcf.config import ItemCFConfig
from llmrec.itemcf.model import ItemCFScorer
from llmrec.registry import BuildContext, register_scorer


def build_itemcf(context: BuildContext, config: ItemCFConfig) -> ItemCFScorer:
    return ItemCFScorer(context.known, recency_decay=config.recency_decay)


register_scorer("itemcf", build_itemcf, ItemCFConfig, "item-based CF: cosine co-occurrence with the history")
