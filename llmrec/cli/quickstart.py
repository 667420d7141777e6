"""``llmrec quickstart``: the main job on real MovieLens 100K (see llmrec.quickstart)."""

from __future__ import annotations

import argparse

from llmrec.cli.options import add_dataclass_arguments, dataclass_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.quickstart import QuickstartConfig

    parser = subparsers.add_parser(
        "quickstart", help="embedding ranker vs popularity on MovieLens 100K, warm and cold-start rows")
    add_dataclass_arguments(parser, QuickstartConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.quickstart import QuickstartConfig, run_quickstart

    run_quickstart(dataclass_from_args(QuickstartConfig, args))
    return 0


