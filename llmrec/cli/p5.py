"""``llmrec p5 train | evaluate``: P5, prompted text-to-text recommendation by item ID.

``train`` fits the item index and trains the model on the events known before the evaluated part
(``--part``), saving weights, tokenizer and index to ``--output-dir``. ``evaluate`` loads that model
and ranks through the one path (same split, candidates and evaluator as every scorer), next to
``--baselines`` (popularity and SASRec by default), and writes metrics beside the model. The same
model is the ``p5`` scorer of ``llmrec evaluate --scorers p5 --load p5=DIR``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.runargs import method_flags
    from llmrec.p5.config import P5Config

    parser = subparsers.add_parser("p5", help="P5: train and evaluate text-to-text recommendation by item ID",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="p5_command", metavar="ACTION", required=True)
    train = sub.add_parser("train", help="fit the item index and train the model; save it to --output-dir")
    method_flags(train, P5Config, "P5 index, prompts, model and training")
    train.set_defaults(func=run_train)
    evaluate = sub.add_parser("evaluate", help="rank with a saved P5 model next to the baselines")
    method_flags(evaluate, P5Config, "P5 decoding (model settings come from the saved model)")
    evaluate.add_argument("--baselines", nargs="*", default=["popularity", "sasrec"],
                          help="registered scorers evaluated in the same table on the same candidates")
    evaluate.set_defaults(func=run_evaluate)


def _options(args: argparse.Namespace) -> dict:
    from llmrec.p5.config import P5Config

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(P5Config) if f.init}


def run_train(args: argparse.Namespace) -> int:
    from llmrec.cli.runargs import run_config_from_args
    from llmrec.p5.config import P5Config
    from llmrec.p5.train import train_p5
    from llmrec.run import load_split
    from llmrec.utils.io import write_json

    config = run_config_from_args(args)
    p5_config = P5Config(**_options(args))
    split = load_split(config)
    p5 = train_p5(split, p5_config, part=config.part)
    report = {**p5.train_report, "index": p5.index.name, "leaky": p5.index.leaky, "part": config.part}
    write_json(f"{p5_config.output_dir}/train_report.json", report)
    print(json.dumps(report, indent=2))
    print(f"P5 model, tokenizer and item index in {p5_config.output_dir}; evaluate with "
          f"`llmrec p5 evaluate --load {p5_config.output_dir} --dataset {config.dataset} --split {config.split}`")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from llmrec.cli.runargs import run_config_from_args
    from llmrec.run import run

    if not args.load:
        raise ValueError("p5 evaluate needs --load DIR (a model saved by `llmrec p5 train`)")
    config = run_config_from_args(args)
    if config.out_dir is None:
        config.out_dir = args.load
    outcome = run(config, [*args.baselines, "p5"], options={"p5": _options(args)}, load={"p5": args.load})
    for name, result in outcome.results.items():
        if result.get("diagnostics"):
            print(f"{name}: {result['diagnostics']}")
    return 0
