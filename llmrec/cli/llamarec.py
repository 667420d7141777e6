"""``llmrec llamarec train | evaluate``: the LlamaRec-style fine-tuned reranker.

``train`` builds lists from the events known before the evaluated part (``--part``), LoRA-tunes the
model on them and saves the adapter to ``--output-dir`` (checked by reloading it); it then evaluates
it through the one path next to ``--baselines`` on the same candidates. ``evaluate`` does the same
with a saved adapter (``--load``). The same adapter is the ``llamarec`` scorer of
``llmrec evaluate --scorers llamarec --load llamarec=DIR``.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.finetuned import register_train_evaluate
    from llmrec.llamarec.config import LlamaRecConfig

    register_train_evaluate(subparsers, "llamarec", LlamaRecConfig,
                            "LlamaRec: LoRA-tune an LLM to pick the next item among lettered candidates; evaluate it",
                            __doc__, "LlamaRec model, prompt, training and scoring")
