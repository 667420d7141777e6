"""Registers ``hybrid``: the cold-aware blend of recent popularity (+ content bridge), CF and text.

The weights are fitted on a validation part carved from the known events by time; the CF and text
scorers are other registered scorers, built through the context (a method never imports another).
With ``simulated_events`` the CF scorer retrains on the known events plus LLM-simulated ones; with
``enriched_text`` the text scorer reads the catalogue plus the LLM-written text. Neither is used
for the validation fit (simulated events sit at the end of the known period, where validation
targets are, so they would count as targets).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from llmrec.coldstart.enrich import enriched_text_options
from llmrec.coldstart.files import read_simulated, with_enriched_text
from llmrec.coldstart.simulate import augment_split
from llmrec.data.schema import Dataset
from llmrec.data.splits import Split, temporal_split
from llmrec.eval import EvalConfig, RankingEvaluator
from llmrec.hybrid.config import HybridConfig
from llmrec.hybrid.model import HybridScorer, PopularityBridge, fit_weights
from llmrec.registry import BuildContext, register_scorer


def _assemble(context: BuildContext, bridge_known, config: HybridConfig, enriched: bool = False) -> HybridScorer:
    dataset = context.dataset
    seconds_per_day = 1.0 if dataset.timestamps_are_order else 86400.0
    bridge = PopularityBridge(bridge_known, dataset.items, config, seconds_per_day)
    cf = context.build(config.cf) if config.cf else None
    text_options: dict = {}
    if config.text == "embedding":
        text_options["show_progress"] = False
        if enriched:  # the catalogue template the ranker would use, then the LLM's text
            text_options.update(enriched_text_options(context.options.get("embedding")))
    text = context.build(config.text, **text_options) if config.text else None
    return HybridScorer(bridge, cf, text, name=config.name)


def validation_split(split: Split, part: str, valid_share: float) -> Split:
    """The events known before ``part``, split by time: the latest ``valid_share`` are validation targets."""
    data = split.dataset
    known = Dataset(f"{data.name} (validation)", split.known(part), data.items, domain=data.domain,
                    source=data.source, timestamps_are_order=data.timestamps_are_order)
    return temporal_split(known, test_ratio=valid_share)


def build_hybrid(context: BuildContext, config: HybridConfig) -> HybridScorer:
    split, part = context.split, context.part
    quiet = dataclasses.replace(context, show_progress=False)
    if config.weights is None:
        vsplit = validation_split(split, part, config.valid_share)
        candidate = _assemble(dataclasses.replace(quiet, split=vsplit, part="test", load={}), vsplit.known("test"),
                              config)
        evaluator = RankingEvaluator(vsplit, EvalConfig(mode="full", max_cases=config.valid_cases,
                                                        seed=context.seed, show_progress=False))
        fit_weights(candidate, evaluator, config.objective, config.all_slack)
        weights, report = candidate.weights, candidate.fit_report
    else:
        weights, report = np.asarray(config.weights, dtype=np.float64), {"objective": "fixed weights"}
    final_split = split
    if config.enriched_text:
        final_split = with_enriched_text(final_split, config.enriched_text)
    if config.simulated_events:
        final_split = augment_split(final_split, read_simulated(config.simulated_events))
    scorer = _assemble(dataclasses.replace(quiet, split=final_split), split.known(part), config,
                       enriched=bool(config.enriched_text))
    scorer.weights = np.asarray(weights, dtype=np.float64)
    scorer.fit_report = {**report, "enriched_text": config.enriched_text, "simulated_events": config.simulated_events}
    return scorer


register_scorer("hybrid", build_hybrid, HybridConfig,
                "cold-aware hybrid: recent popularity + content bridge for cold items, CF and text, weights "
                "fitted on validation", composes=True)
