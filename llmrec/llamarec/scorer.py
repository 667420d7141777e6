"""Registers ``llamarec``: a LoRA-tuned causal LM picks the next item among lettered candidates.

What the builder does:

1. ``context.load_dir("llamarec")`` is set (``--load llamarec=FOLDER``): load that adapter and score
   with the prompt settings it was trained with;
2. otherwise train: lists from ``context.known`` only (a seeded sample of users, each one's last
   known event as the target, :mod:`llmrec.llamarec.data`), LoRA on the HF ``Trainer``, the adapter
   saved to ``output_dir`` and checked by reloading it.

Item text is the data set's (``context.item_text()``); with ``evidence=popularity`` each candidate
also shows a popularity bucket counted from ``context.known``. The scorer sees histories and
candidate ids only.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from llmrec.eval.metrics import target_ndcg
from llmrec.llamarec.config import LlamaRecConfig
from llmrec.llamarec.data import popularity_buckets, sample_users, training_examples, user_sequences
from llmrec.llamarec.model import LlamaRecScorer, PromptRenderer
from llmrec.llm.lora import adopt_prompt_settings, save_on_main_process
from llmrec.registry import BuildContext, register_scorer

logger = logging.getLogger(__name__)


def renderer_for(context: BuildContext, config: LlamaRecConfig) -> PromptRenderer:
    popularity = popularity_buckets(context.known) if config.evidence == "popularity" else None
    return PromptRenderer(context.item_text(), config.template, context.dataset.domain, config.history_len,
                          config.max_item_chars, config.evidence, popularity)


def validation_ndcg(scorer: LlamaRecScorer, examples) -> float:
    """NDCG@10 of the held-out training users' lists (one target each): a training-side check."""
    if not examples:
        return float("nan")
    scores = scorer.score([e.history for e in examples], [e.candidates for e in examples])
    return float(np.mean([target_ndcg(row, e.target, 10) for row, e in zip(scores, examples, strict=True)]))


def build_llamarec(context: BuildContext, config: LlamaRecConfig) -> LlamaRecScorer:
    from llmrec.llamarec.train import load_adapter, read_meta, save_adapter, train_llamarec

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub from a run
    saved = context.load_dir("llamarec")
    if saved:
        trained = LlamaRecConfig.from_dict(read_meta(saved)["config"])
        adopt_prompt_settings(config, trained)
        ranker = load_adapter(saved, renderer_for(context, config), device=config.device,
                              batch_size=config.score_batch_size)
        return LlamaRecScorer(ranker, config.bootstrap, config.seed, show_progress=context.show_progress,
                              info={"mode": "loaded", "adapter": str(saved), "evidence": config.evidence})
    known = context.known
    catalogue = [str(i) for i in context.dataset.items.index]
    train_users, valid_users = sample_users(list(user_sequences(known)), config.train_users, config.valid_users,
                                            config.seed)
    train = training_examples(known, catalogue, train_users, config.train_negatives, config.history_len, config.seed)
    valid = training_examples(known, catalogue, valid_users, config.train_negatives, config.history_len, config.seed)
    logger.info("llamarec: %d training and %d validation lists from %d known events", len(train), len(valid),
                len(known))
    renderer = renderer_for(context, config)
    result = train_llamarec(config, train, renderer)
    scorer = LlamaRecScorer(result.ranker, config.bootstrap, config.seed, show_progress=context.show_progress)
    report = {**result.report(), "valid_users": len(valid)}
    if valid:
        report["valid_ndcg@10"] = round(validation_ndcg(scorer, valid), 4)
    save_on_main_process(lambda: save_adapter(result, config.output_dir, valid or train, extra={
        "dataset": context.dataset.name, "part": context.part, "report": report}),
        config.output_dir, [*train_users, *valid_users])
    scorer.info = {"mode": "trained", "adapter": config.output_dir, "evidence": config.evidence, **report}
    return scorer


register_scorer("llamarec", build_llamarec, LlamaRecConfig,
                "LlamaRec: LoRA-tuned LLM picks the next item among lettered candidates (first-token letter "
                "logits; trained on known events, or --load llamarec=FOLDER)",
                trains=True, uses_llm=True)
