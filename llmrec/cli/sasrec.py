"""``llmrec sasrec``: train the SASRec ID baseline on the events known before the evaluated part
(vocabulary included) and evaluate it on the one path with warm / long-tail / cold rows (cold
items rank last: an ID model has never seen them). A shortcut for ``llmrec evaluate --scorers sasrec``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.runargs import method_flags
    from llmrec.sasrec.config import SASRecConfig

    parser = subparsers.add_parser(
        "sasrec", help="train and evaluate SASRec (causal self-attention over item IDs, the ID baseline)",
        description=__doc__)
    method_flags(parser, SASRecConfig, "SASRec model and training")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.cli.runargs import run_method

    return run_method(args, "sasrec")
