"""The ``train | evaluate`` pair shared by the fine-tuned LLM rerankers' commands (``llmrec llamarec``,
``llmrec nexttitle``): ``train`` builds the registered scorer from the events known before the
evaluated part (``--part``), which trains and saves its adapter to ``--output-dir``, then evaluates it
through the one path next to ``--baselines`` on the same candidates; ``evaluate`` does the same with
a saved adapter (``--load``). Not a command itself (it is not in ``COMMANDS``)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any


def register_train_evaluate(subparsers: argparse._SubParsersAction, scorer: str, config_cls: type, help_text: str,
                            description: str | None, flags_title: str) -> None:
    from llmrec.cli.runargs import method_flags

    parser = subparsers.add_parser(scorer, help=help_text, description=description)
    sub = parser.add_subparsers(dest=f"{scorer}_command", metavar="ACTION", required=True)
    for action, text in (("train", "train on the known events, save the adapter to --output-dir, evaluate it"),
                         ("evaluate", "evaluate a saved adapter (--load) next to the baselines")):
        command = sub.add_parser(action, help=text)
        method_flags(command, config_cls, flags_title)
        command.add_argument("--baselines", nargs="*", default=["popularity", "itemcf"],
                             help="registered scorers evaluated in the same table on the same candidates")
        command.set_defaults(func=lambda args, s=scorer, c=config_cls: run_train_evaluate(args, s, c),
                             dataset="amazon-games", mode="sampled", num_negatives=19)


def run_train_evaluate(args: argparse.Namespace, scorer: str, config_cls: Any) -> int:
    from llmrec.cli.runargs import run_config_from_args
    from llmrec.run import run

    action = getattr(args, f"{scorer}_command")
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if f.init}
    if action == "evaluate" and not args.load:
        raise ValueError(f"{scorer} evaluate needs --load DIR (an adapter saved by `llmrec {scorer} train`)")
    if action == "train" and args.load:
        raise ValueError(f"{scorer} train trains a new adapter; to evaluate a saved one use `llmrec {scorer} "
                         "evaluate --load DIR`")
    config = run_config_from_args(args)
    if config.out_dir is None:  # metrics beside the adapter they measure
        config.out_dir = args.load or options["output_dir"]
    outcome = run(config, [*args.baselines, scorer], options={scorer: options},
                  load={scorer: args.load} if args.load else {})
    diagnostics = outcome.results[scorer].get("diagnostics")
    if diagnostics:
        print(f"{scorer}: {diagnostics}")
    return 0
