"""The cold-start comparison on the one path: baselines, the hybrid and its LLM variants, one table.

``coldstart_scorers`` builds, on one split:

* the baselines: popularity, newest release first (when the catalogue has a release date),
  item-CF, the text ranker (embedding) and the rank average of popularity and the text ranker;
* ``hybrid``: the cold-aware blend (weights fitted on validation, never on test);
* with ``enriched_text`` (``llmrec coldstart enrich``): ``embedding+enriched`` and
  ``hybrid+enriched``, whose text is the catalogue text followed by the LLM's;
* with ``simulated_events`` (``llmrec coldstart simulate``): ``itemcf+simulated`` (item-CF
  retrained on known plus simulated events; any ``retrain`` scorer, e.g. ``sasrec+simulated``)
  and ``hybrid+simulated`` (its item-CF retrained so);
* with both: ``hybrid+both``.

The LLM variants keep the plain hybrid's fitted weights: validation never sees enriched text or
simulated events (they describe the test cut's cold items), so refitting would pick the same
weights at the cost of another grid search. Every scorer is trained on the split given (or on it
plus simulated events) and evaluated by the same evaluator on the original split: the simulated
events never enter a test user's history or the cold-start slice's definition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata

from llmrec.coldstart.enrich import enriched_text_options
from llmrec.coldstart.files import read_simulated, with_enriched_text
from llmrec.coldstart.simulate import augment_split
from llmrec.data.splits import Split
from llmrec.registry import BuildContext
from llmrec.scoring import Candidates, Histories, Scorer


@dataclass
class ColdStartEvalConfig:
    """What ``llmrec coldstart evaluate`` compares."""

    enriched_text: str | None = field(default=None, metadata={
        "help": "file from `llmrec coldstart enrich`: adds embedding+enriched and hybrid+enriched"})
    simulated_events: str | None = field(default=None, metadata={
        "help": "file from `llmrec coldstart simulate`: adds itemcf+simulated and hybrid+simulated"})
    baselines: list[str] = field(default_factory=lambda: ["popularity", "newest", "itemcf", "embedding"], metadata={
        "help": "registered baselines to show (newest is skipped for catalogues without a release date)"})
    retrain: list[str] = field(default_factory=lambda: ["itemcf"], metadata={
        "help": "with simulated_events: registered scorers retrained on known + simulated events, shown as "
                "<name>+simulated (itemcf, sasrec, ...); each is also shown without them"})
    rank_average: bool = field(default=True, metadata={
        "help": "also show the rank average of popularity and the text ranker (a naive hybrid)"})
    embedding: dict = field(default_factory=dict, metadata={
        "help": "options of the embedding (text) scorer, e.g. {'cache_dir': ...}"})


class RankAverage:
    """Scorer: the mean of the scorers' within-list ranks (higher is better)."""

    def __init__(self, scorers: list[Scorer], name: str) -> None:
        self.scorers = scorers
        self.name = name

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        ranks = [rankdata(np.asarray(s.score(histories, candidates), dtype=float), axis=1) for s in self.scorers]
        return np.mean(ranks, axis=0)


def _named(scorer: Scorer, name: str) -> Scorer:
    scorer.name = name  # an instance attribute: the class keeps its registered name
    return scorer


def coldstart_scorers(context: BuildContext, config: ColdStartEvalConfig,
                      log: Callable[[str], Any] = lambda _: None) -> list[Scorer]:
    """The scorers of the comparison, built on ``context``'s split (see the module docstring)."""
    split = context.split
    # The LLM files are read and checked first: a bad file fails before minutes of training.
    enriched = with_enriched_text(split, config.enriched_text) if config.enriched_text else None
    augmented = augment_split(split, read_simulated(config.simulated_events, split)) \
        if config.simulated_events else None
    text_options = {"show_progress": False, **config.embedding}
    scorers: list[Scorer] = []
    built: dict[str, Scorer] = {}
    for name in config.baselines:
        if name == "newest" and "release_date" not in split.dataset.items.columns:
            log("newest: skipped (the catalogue has no release_date)")
            continue
        built[name] = context.build(name, **(text_options if name == "embedding" else {}))
        scorers.append(built[name])
    if config.rank_average and {"popularity", "embedding"} <= set(built):
        scorers.append(RankAverage([built["popularity"], built["embedding"]], "rank-avg(pop,text)"))
    # The hybrid builds its text scorer through the context: hand it the same text options.
    hybrid_context = dataclasses.replace(context, options={
        **context.options, "embedding": {**context.options.get("embedding", {}), **config.embedding}})
    plain = hybrid_context.build("hybrid")
    scorers.append(plain)
    weights = [float(w) for w in plain.weights]  # type: ignore[attr-defined]
    log(f"hybrid weights (fitted on validation): {dict(zip(('popularity', 'cf', 'text', 'cold'), weights))}")
    if enriched is not None:
        scorers.append(_named(dataclasses.replace(context, split=enriched).build(
            "embedding", **text_options, **enriched_text_options(config.embedding)), "embedding+enriched"))
    if augmented is not None:
        for name in config.retrain:
            if name not in built:  # the same scorer without simulated events, for the comparison
                built[name] = context.build(name)
                scorers.append(built[name])
            scorers.append(_named(dataclasses.replace(context, split=augmented).build(name), f"{name}+simulated"))
    variants: list[tuple[str, str | None, str | None]] = []
    if config.enriched_text:
        variants.append(("hybrid+enriched", config.enriched_text, None))
    if config.simulated_events:
        variants.append(("hybrid+simulated", None, config.simulated_events))
    if config.enriched_text and config.simulated_events:
        variants.append(("hybrid+both", config.enriched_text, config.simulated_events))
    for name, text_file, events_file in variants:  # the plain hybrid's weights: validation never sees LLM files
        scorers.append(hybrid_context.build("hybrid", weights=weights, name=name, enriched_text=text_file,
                                            simulated_events=events_file))
    return scorers


def evaluate_coldstart(run_config: Any, config: ColdStartEvalConfig | None = None, split: Split | None = None,
                       echo: Callable[[str], Any] = print, write: bool = True) -> Any:
    """``llmrec coldstart evaluate`` as a function: the comparison on ``run_config``'s split, on the
    one path (``llmrec.run``: one evaluator, one table, metrics.json + chart). Returns its ``RunOutcome``."""
    from llmrec.run import build_context, load_split, run

    config = config or ColdStartEvalConfig()
    split = split if split is not None else load_split(run_config)
    context = build_context(split, run_config)
    scorers = coldstart_scorers(context, config, log=echo)
    return run(run_config, scorers, split=split, echo=echo, write=write)
