"""``llmrec nexttitle train | evaluate``: the next-title LM reranker.

``train`` builds (history, next item) examples from the events known before the evaluated part
(``--part``), LoRA-tunes the model to continue a history with the next item's title, saves the
adapter to ``--output-dir`` (checked by reloading it) and evaluates it through the one path next to
``--baselines`` on the same candidates, each scored by its title's log-likelihood. ``evaluate`` does
the same with a saved adapter (``--load``); it is also the ``nexttitle`` scorer of
``llmrec evaluate --scorers nexttitle --load nexttitle=DIR``.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.finetuned import register_train_evaluate
    from llmrec.nexttitle.config import NextTitleConfig

    register_train_evaluate(subparsers, "nexttitle", NextTitleConfig,
                            "next-title LM: LoRA-tune an LLM to continue a history with the next item's title; "
                            "score candidates by their titles' log-likelihood", __doc__,
                            "next-title model, prompt, training and scoring")
