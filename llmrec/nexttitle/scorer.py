"""Registers ``nexttitle``: a LoRA-tuned causal LM scores each candidate by the log-likelihood of its
title as the continuation of the user's history.

What the builder does:

1. ``context.load_dir("nexttitle")`` is set (``--load nexttitle=FOLDER``): load that adapter and
   score with the prompt settings it was trained with;
2. otherwise train: examples from ``context.known`` only (a seeded sample of users, their last
   known events as targets; no candidates at training time, :mod:`llmrec.nexttitle.data`),
   LoRA on the HF ``Trainer``, the adapter saved to ``output_dir`` and checked by reloading it.
   Held-out training users' lists (their last known item among 19 sampled ones) are scored with
   every ``score`` (``check_variants``), a training-side check that never reads an evaluation case;
   the report names the best one, which a run may then choose (``--set nexttitle.score=...``).

Item text is the data set's (``context.item_text()``); with ``evidence=popularity`` each
continuation also carries the item's popularity bucket counted from ``context.known``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from llmrec.data.sequences import popularity_buckets, sample_users, user_sequences
from llmrec.eval.metrics import target_ndcg
from llmrec.llm.lora import adopt_prompt_settings, save_on_main_process
from llmrec.nexttitle.config import SCORES, NextTitleConfig
from llmrec.nexttitle.data import CheckList, check_lists, training_examples
from llmrec.nexttitle.model import NextTitleScorer, TitlePrompter, combine
from llmrec.registry import BuildContext, register_scorer

logger = logging.getLogger(__name__)
CHECK_NEGATIVES = 19
TITLE_WEIGHTS = (0.05, 0.1, 0.2, 0.5, 1.0)  # hint+pmi weights compared on the check lists


def prompter_for(context: BuildContext, config: NextTitleConfig) -> TitlePrompter:
    popularity = popularity_buckets(context.known) if config.evidence == "popularity" else None
    return TitlePrompter(context.item_text(), config.template, context.dataset.domain, config.history_len,
                         config.max_item_chars, config.evidence, popularity)


def check_variants(scorer: NextTitleScorer, lists: Sequence[CheckList]) -> dict[str, float]:
    """NDCG@10 of held-out training users' lists (their last known item among sampled ones) under every
    score (and hint+pmi title weight); ties rank the target last. The choice of a score is made here,
    on training users, never on evaluated cases."""
    gains: dict[str, list[float]] = {}
    for item in lists:
        parts = scorer.parts(item.history, item.candidates)
        for name, (score, weight) in variant_grid().items():
            gains.setdefault(name, []).append(target_ndcg(combine(parts, score, weight), 0, 10))
    return {name: round(float(np.mean(g)), 4) for name, g in gains.items()}


def variant_grid() -> dict[str, tuple[str, float]]:
    grid = {name: (name, 0.0) for name in SCORES if name != "hint+pmi"}
    grid.update({f"hint+pmi@{w}": ("hint+pmi", w) for w in TITLE_WEIGHTS})
    return grid


def best_variant(checks: dict[str, float]) -> tuple[str, float]:
    """(score, title_weight) of the best check NDCG@10."""
    return variant_grid()[max(checks, key=lambda name: checks[name])]


def build_nexttitle(context: BuildContext, config: NextTitleConfig) -> NextTitleScorer:
    from llmrec.nexttitle.train import load_adapter, read_meta, save_adapter, train_nexttitle

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub from a run
    saved = context.load_dir("nexttitle")
    if saved:
        trained = NextTitleConfig.from_dict(read_meta(saved)["config"])
        adopt_prompt_settings(config, trained)
        scorer = load_adapter(saved, prompter_for(context, config), device=config.device)
        scorer.score_name, scorer.title_weight = config.score, config.title_weight
        scorer.show_progress = context.show_progress
        scorer.info = {"mode": "loaded", "adapter": str(saved), "evidence": config.evidence}
        return scorer
    known = context.known
    catalogue = [str(i) for i in context.dataset.items.index]
    train_users, valid_users = sample_users(list(user_sequences(known)), config.train_users, config.valid_users,
                                            config.seed)
    train = training_examples(known, train_users, config.targets_per_user, config.history_len)
    checks = check_lists(known, catalogue, valid_users, CHECK_NEGATIVES, config.history_len, config.seed)
    logger.info("nexttitle: %d training examples and %d check lists from %d known events", len(train), len(checks),
                len(known))
    result = train_nexttitle(config, train, prompter_for(context, config))
    scorer = result.scorer
    scorer.show_progress = context.show_progress
    report: dict = {**result.report(), "check_users": len(checks)}
    if checks:
        report["check_ndcg@10"] = check_variants(scorer, checks)
        report["check_best"] = list(best_variant(report["check_ndcg@10"]))
    probes = checks or [CheckList(e.user, e.history, [e.target]) for e in train[:3]]
    save_on_main_process(lambda: save_adapter(result, config.output_dir, probes, extra={
        "dataset": context.dataset.name, "part": context.part, "report": report}),
        config.output_dir, [*train_users, *valid_users])
    scorer.info = {"mode": "trained", "adapter": config.output_dir, "evidence": config.evidence, **report}
    return scorer


register_scorer("nexttitle", build_nexttitle, NextTitleConfig,
                "next-title LM: LoRA-tuned LLM continues the history with an item title; each candidate is "
                "scored by its title's log-likelihood (trained on known events, or --load nexttitle=FOLDER)",
                trains=True, uses_llm=True)
