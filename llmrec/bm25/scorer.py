"""Registers ``bm25``: lexical match between the recent history's text and each item's text."""

from __future__ import annotations

from llmrec.bm25.config import BM25Config
from llmrec.bm25.model import BM25Scorer
from llmrec.registry import BuildContext, register_scorer


def build_bm25(context: BuildContext, config: BM25Config) -> BM25Scorer:
    return BM25Scorer(context.item_text(), query_items=config.query_items)


register_scorer("bm25", build_bm25, BM25Config, "BM25 over item text, queried with the recent history")
