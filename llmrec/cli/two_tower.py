"""``llmrec two-tower``: train the two-tower retrieval model with its multi-task rating head (in-batch
softmax with accidental-hit removal and logQ correction, an MLP rating head with MSE, per-task
weights) on the events known before the evaluated part, and evaluate it on the one path (ranking;
``--score rating`` with ``--task pointwise`` scores pairs by the predicted rating). A shortcut for
``llmrec evaluate --scorers two-tower``. TFRS's top-K accuracy / RMSE protocol is
``benchmarks/bench_two_tower.py``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.runargs import method_flags
    from llmrec.two_tower.config import TwoTowerConfig

    parser = subparsers.add_parser(
        "two-tower", help="train and evaluate the two-tower retrieval model with a multi-task rating head",
        description=__doc__)
    method_flags(parser, TwoTowerConfig, "two-tower model and training")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.cli.runargs import run_method

    return run_method(args, "two-tower")
