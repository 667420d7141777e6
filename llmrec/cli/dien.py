"""``llmrec dien``: train DIEN (GRU interest extractor with the auxiliary loss, attention on the
target, interest evolution by GRU / AIGRU / AGRU / AUGRU) on the events known before the evaluated
part and evaluate it on the one path: ``--task pointwise`` for AUC / log loss of liked-or-not
held-out ratings, ``--task ranking`` (default) for ranking metrics over the candidates. A shortcut for
``llmrec evaluate --scorers dien``. The sampled-negative CTR protocol is ``benchmarks/bench_dien.py``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.runargs import method_flags
    from llmrec.dien.config import DIENConfig

    parser = subparsers.add_parser(
        "dien", help="train and evaluate DIEN (interest evolution with AUGRU, click-through prediction)",
        description=__doc__)
    method_flags(parser, DIENConfig, "DIEN model and training")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.cli.runargs import run_method

    return run_method(args, "dien")
