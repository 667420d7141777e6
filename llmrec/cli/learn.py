"""``llmrec learn``: content embeddings from a frozen model, LEARN trained on the events known before
the evaluated part, evaluated on the one path (full ranking by default) with warm / long-tail / cold rows.

A shortcut for ``llmrec evaluate --scorers learn``: the RunConfig flags plus LEARN's own
(``llmrec.learn.config``). Metrics are written next to the model unless ``--out-dir`` is given.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.runargs import method_flags
    from llmrec.learn.config import LearnRunConfig

    parser = subparsers.add_parser(
        "learn", help="train and evaluate LEARN (frozen-LLM content embeddings + causal Transformer user tower)",
        description=__doc__)
    method_flags(parser, LearnRunConfig, "LEARN: content embeddings, model and training")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.cli.runargs import run_method

    return run_method(args, "learn")
