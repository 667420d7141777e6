"""``llmrec sasrec``: train the SASRec ID baseline on the events known before the evaluated part,
evaluate with the one evaluator and print metrics with warm / long-tail / cold rows."""

from __future__ import annotations

import argparse

from llmrec.cli.learn import add_run_arguments, evaluate_and_report, prepare_split
from llmrec.cli.options import add_dataclass_arguments, dataclass_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.sasrec.config import SASRecConfig

    parser = subparsers.add_parser(
        "sasrec", help="train and evaluate SASRec (causal self-attention over item IDs, the ID baseline)",
        description="SASRec trained on the events known before the evaluated part (vocabulary included), "
                    "then full-ranking evaluation with warm / long-tail / cold rows (cold items rank last).")
    add_run_arguments(parser)
    add_dataclass_arguments(parser.add_argument_group("SASRec model and training"), SASRecConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.sasrec import ItemVocabulary, SASRec, SASRecConfig, SASRecScorer, train_sasrec

    split = prepare_split(args)
    if args.load:
        model, items = SASRec.from_pretrained(args.load)
        vocabulary, out_dir = ItemVocabulary(items), args.load
    else:
        config = dataclass_from_args(SASRecConfig, args)
        model, vocabulary = train_sasrec(split, config, part=args.part)
        out_dir = config.output_dir
        print(f"model saved to {out_dir}")
    evaluate_and_report(split, SASRecScorer(model, vocabulary), args, out_dir)
    return 0
