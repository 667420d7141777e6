"""Registers ``llmrank``: an LLM reranks each case's candidates (sampled, recalled or given lists).

Few-shot demonstrations come from the events known before the evaluated part (other users'
sequences), and the ``prior`` fallback is the registered popularity scorer: no label reaches a prompt.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from llmrec.llmrank.config import LLMRankConfig
from llmrec.llmrank.model import LLMRankScorer
from llmrec.llmrank.prompts import build_demonstrations
from llmrec.registry import BuildContext, register_scorer


@dataclass
class LLMRankScorerConfig(LLMRankConfig):
    """LLMRank's prompt and mode settings plus the language model that answers."""

    model: str = field(default="smollm2-135m", metadata={
        "help": "packaged model (smollm2-135m, qwen2.5-0.5b, gemma3-270m), a model folder, a .gguf file, or "
                "http:<model> for an OpenAI-compatible server"})
    device: str = field(default="auto", metadata={"help": "torch device for a local model: auto, cpu, cuda"})

    def rank_config(self, domain: str) -> LLMRankConfig:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(LLMRankConfig)}
        if values["domain"] == "item":
            values["domain"] = domain
        return LLMRankConfig(**values)


def build_llmrank(context: BuildContext, config: LLMRankScorerConfig) -> LLMRankScorer:
    import os

    from llmrec.llm import load_llm

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub from a run
    rank_config = config.rank_config(context.dataset.domain)
    demos = build_demonstrations(context.known, rank_config.few_shot, rank_config.few_shot_candidates,
                                 seed=rank_config.seed) if rank_config.few_shot else []
    prior = context.build("popularity") if rank_config.fallback == "prior" else None
    kwargs: dict[str, Any] = {} if config.model.startswith("http:") else {"device": config.device,
                                                          "show_progress": context.show_progress}
    llm = load_llm(config.model, **kwargs)
    return LLMRankScorer(llm, context.item_text(), rank_config, prior=prior, demonstrations=demos,
                         show_progress=context.show_progress)


register_scorer("llmrank", build_llmrank, LLMRankScorerConfig,
                "LLMRank: zero/few-shot LLM reranking (generate, score, score-calibrated, first-token)",
                uses_llm=True)
