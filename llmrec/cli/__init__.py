"""The ``llmrec`` command. Thin: each subcommand parses flags and calls the Python API.

Each subcommand lives in its own module under ``llmrec.cli`` with ``register(subparsers)``; the
module sets ``func`` on its parser. Adding a command is one module plus one name below.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from llmrec import __version__

COMMANDS = ["quickstart", "data", "embed", "evaluate", "coldstart", "rerank", "learn", "sasrec", "p5", "ptum", "dien",
            "two_tower", "tallrec", "girl", "ltr", "llamarec", "nexttitle"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmrec", description="LLMs for recommender systems.")
    parser.add_argument("--version", action="version", version=f"llmrec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"llmrec.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our own progress at INFO; third-party chatter (model loading notices) only with --verbose.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("llmrec").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from llmrec.errors import LLMRecError

    try:
        return int(args.func(args) or 0)
    except (LLMRecError, ValueError) as err:
        # Our errors and the API's ValueErrors (unknown names, invalid settings) already say what was
        # wrong and where; a traceback adds nothing for a user. --verbose keeps it for debugging.
        if args.verbose:
            raise
        print(f"llmrec {args.command}: error: {err}", file=sys.stderr)
        return 1


