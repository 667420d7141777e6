"""``llmrec llamarec train | evaluate``: the LlamaRec-style fine-tuned reranker.

``train`` builds lists from the events known before the evaluated part (``--part``), LoRA-tunes the
model on them and saves the adapter to ``--output-dir`` (checked by reloading it); it then evaluates
it through the one path next to ``--baselines`` on the same candidates. ``evaluate`` does the same
with a saved adapter (``--load``). The same adapter is the ``llamarec`` scorer of
``llmrec evaluate --scorers llamarec --load llamarec=DIR``.
"""

from __future__ import annotations

import argparse
import dataclasses


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.runargs import method_flags
    from llmrec.llamarec.config import LlamaRecConfig

    parser = subparsers.add_parser("llamarec", help="LlamaRec: LoRA-tune an LLM to pick the next item among "
                                                    "lettered candidates; evaluate it", description=__doc__)
    sub = parser.add_subparsers(dest="llamarec_command", metavar="ACTION", required=True)
    for action, text in (("train", "train on the known events, save the adapter to --output-dir, evaluate it"),
                         ("evaluate", "evaluate a saved adapter (--load) next to the baselines")):
        command = sub.add_parser(action, help=text)
        method_flags(command, LlamaRecConfig, "LlamaRec model, prompt, training and scoring")
        command.add_argument("--baselines", nargs="*", default=["popularity", "itemcf"],
                             help="registered scorers evaluated in the same table on the same candidates")
        command.set_defaults(func=run_command, dataset="amazon-games", mode="sampled", num_negatives=19)


def run_command(args: argparse.Namespace) -> int:
    from llmrec.cli.runargs import run_config_from_args
    from llmrec.llamarec.config import LlamaRecConfig
    from llmrec.run import run

    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(LlamaRecConfig) if f.init}
    if args.llamarec_command == "evaluate" and not args.load:
        raise ValueError("llamarec evaluate needs --load DIR (an adapter saved by `llmrec llamarec train`)")
    if args.llamarec_command == "train" and args.load:
        raise ValueError("llamarec train trains a new adapter; to evaluate a saved one use `llmrec llamarec evaluate "
                         "--load DIR`")
    config = run_config_from_args(args)
    if config.out_dir is None:  # metrics beside the adapter they measure
        config.out_dir = args.load or options["output_dir"]
    outcome = run(config, [*args.baselines, "llamarec"], options={"llamarec": options},
                  load={"llamarec": args.load} if args.load else {})
    diagnostics = outcome.results["llamarec"].get("diagnostics")
    if diagnostics:
        print(f"llamarec: {diagnostics}")
    return 0
