"""Registers ``bias``: the user + item bias model fitted on the events known before the evaluated part."""

from __future__ import annotations

from llmrec.bias.config import BiasConfig
from llmrec.bias.model import BiasModel, BiasScorer
from llmrec.registry import BuildContext, register_scorer


def build_bias(context: BuildContext, config: BiasConfig) -> BiasScorer:
    return BiasScorer(BiasModel.fit(context.known, config, source=context.dataset.source or context.dataset.name))


register_scorer("bias", build_bias, BiasConfig, "user + item bias model: mu + b_item + b_user(history ratings)",
                tasks=("ranking", "pointwise"))
