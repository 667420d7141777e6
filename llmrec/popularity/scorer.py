"""Registers ``popularity`` and ``item-prior``: built from the events known before the evaluated part."""

from __future__ import annotations

from llmrec.popularity.config import ItemPriorConfig, NewestConfig
from llmrec.popularity.model import ItemPriorScorer, NewestFirstScorer, PopularityScorer
from llmrec.registry import BuildContext, register_scorer


def build_popularity(context: BuildContext, config: None) -> PopularityScorer:
    return PopularityScorer(context.known)


def build_item_prior(context: BuildContext, config: ItemPriorConfig) -> ItemPriorScorer:
    return ItemPriorScorer(context.known, config.prior_weight, source=context.dataset.source or context.dataset.name)


def build_newest(context: BuildContext, config: NewestConfig) -> NewestFirstScorer:
    return NewestFirstScorer(context.dataset.items, config.column)


register_scorer("popularity", build_popularity, None, "interaction count in the known events",
                tasks=("ranking", "pointwise"))
register_scorer("item-prior", build_item_prior, ItemPriorConfig,
                "mean known rating of the item, shrunk to the global mean (no LLM)", tasks=("ranking", "pointwise"))
register_scorer("newest", build_newest, NewestConfig, "newest release first (a catalogue date field; no interactions)")
