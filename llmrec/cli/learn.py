"""``llmrec learn``: content embeddings from a frozen model, train LEARN, evaluate with the one
evaluator (full ranking by default) and print metrics with warm / long-tail / cold rows."""

from __future__ import annotations

import argparse

from llmrec.cli.options import add_dataclass_arguments, dataclass_from_args


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, split and evaluation flags shared by ``llmrec learn`` and ``llmrec sasrec``."""
    from llmrec.data.splits import SPLITS

    group = parser.add_argument_group("data and evaluation")
    group.add_argument("--dataset", required=True, help="data set name (see `llmrec data list`)")
    group.add_argument("--data-dir", default=None, help="folder holding the data sets (default: $LLMREC_DATA_DIR)")
    group.add_argument("--split", default="auto", choices=["auto", *sorted(SPLITS)],
                       help="auto: the source's own split where it has one (predefined: the RecFormer / "
                            "LLMRank validation files), else leave-one-out")
    group.add_argument("--part", default="test", choices=["test", "valid"],
                       help="held-out part to evaluate; training reads only the events known before it")
    group.add_argument("--max-users", type=int, default=None,
                       help="seeded subsample of users for training and evaluation (the catalogue stays whole)")
    group.add_argument("--max-cases", type=int, default=None, help="seeded subsample of evaluation cases")
    group.add_argument("--mode", default="full", choices=["full", "sampled"],
                       help="full ranking over the catalogue, or sampled negatives (labelled in the output)")
    group.add_argument("--negatives", type=int, default=100, help="negatives per case in sampled mode")
    group.add_argument("--load", default=None,
                       help="evaluate a model saved in this folder instead of training one")
    group.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (1 is fastest on a busy shared CPU; default: torch's choice)")


def prepare_split(args: argparse.Namespace):
    from llmrec.training import load_split

    return load_split(args.dataset, args.data_dir, args.split, args.max_users, args.threads)


def evaluate_and_report(split, scorer, args: argparse.Namespace, out_dir: str) -> dict:
    from llmrec.training import evaluate_and_write

    return evaluate_and_write(split, scorer, out_dir, part=args.part, mode=args.mode, max_cases=args.max_cases,
                              num_negatives=args.negatives)


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.learn.config import CEGConfig, LearnConfig

    parser = subparsers.add_parser(
        "learn", help="train and evaluate LEARN (frozen-LLM content embeddings + causal Transformer user tower)",
        description="Content embeddings from a frozen model (cached), LEARN training on the events known "
                    "before the evaluated part, then full-ranking evaluation with warm / long-tail / cold rows.")
    add_run_arguments(parser)
    add_dataclass_arguments(parser.add_argument_group("content embeddings (CEG)"), CEGConfig)
    add_dataclass_arguments(parser.add_argument_group("LEARN model and training"), LearnConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.data.text import learn_item_text
    from llmrec.learn import (
        CEGConfig,
        ContentEmbeddingGenerator,
        LearnConfig,
        LearnModel,
        LearnScorer,
        train_learn,
    )

    split = prepare_split(args)
    ceg_config = dataclass_from_args(CEGConfig, args)
    content = ContentEmbeddingGenerator(ceg_config)(learn_item_text(split.dataset).to_dict())
    print(f"content embeddings: {content.stats}")
    if args.load:
        model = LearnModel.from_pretrained(args.load)
        out_dir = args.load
    else:
        config = dataclass_from_args(LearnConfig, args)
        model = train_learn(split, content, config, part=args.part, ceg_config=ceg_config)
        out_dir = config.output_dir
        print(f"model saved to {out_dir}")
    evaluate_and_report(split, LearnScorer(model, content), args, out_dir)
    return 0
