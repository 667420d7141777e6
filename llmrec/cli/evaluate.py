"""``llmrec evaluate``: score registered scorers on a data set and split with the one evaluator."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.data.splits import SPLITS
    from llmrec.methods import SCORERS

    parser = subparsers.add_parser(
        "evaluate", help="evaluate scorers (full or sampled ranking) with warm / long-tail / cold rows")
    parser.add_argument("--dataset", required=True, help="data set name (see `llmrec data list`)")
    parser.add_argument("--data-dir", default=None, help="folder holding the data sets (default: $LLMREC_DATA_DIR)")
    parser.add_argument("--split", default="temporal", choices=sorted(SPLITS),
                        help="how to split (default: temporal 70/30)")
    parser.add_argument("--part", default="test", choices=["test", "valid"], help="which held-out part to evaluate")
    parser.add_argument("--scorers", nargs="+", default=["popularity", "embedding"], choices=sorted(SCORERS),
                        help="scorers to compare")
    parser.add_argument("--mode", default="full", choices=["full", "sampled"],
                        help="full ranking over the catalogue, or sampled negatives (always labelled in the output)")
    parser.add_argument("--negatives", type=int, default=100, help="negatives per case in sampled mode")
    parser.add_argument("--max-cases", type=int, default=None, help="seeded subsample of evaluation cases")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="sentence encoder for the embedding scorer")
    parser.add_argument("--seed", type=int, default=0, help="seed for sampling negatives and subsampling cases")
    parser.add_argument("--out", default="outputs/evaluate", help="folder for metrics.json and metrics.png")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.data.registry import load_dataset
    from llmrec.data.splits import make_split
    from llmrec.eval import EvalConfig, RankingEvaluator
    from llmrec.eval.report import results_table, write_results
    from llmrec.methods import build_scorer

    dataset = load_dataset(args.dataset, args.data_dir)
    split = make_split(dataset, args.split)
    print(f"{dataset.name}: {split.summary()}")
    evaluator = RankingEvaluator(split, EvalConfig(part=args.part, mode=args.mode, num_negatives=args.negatives,
                                                   max_cases=args.max_cases, seed=args.seed))
    results = {}
    for name in args.scorers:
        scorer = build_scorer(name, split, part=args.part, model=args.model)
        results[scorer.name] = evaluator(scorer)
    print(results_table(results))
    for path in write_results(results, args.out, title=f"{args.split} split"):
        print(f"wrote {path}")
    return 0
