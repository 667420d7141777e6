"""``llmrec tallrec build-data | train | score``: TALLRec's Alpaca JSON files in and out.

The JSON files are TALLRec's import / export format. Evaluating TALLRec on a split, beside other
scorers, is ``llmrec evaluate --task pointwise --scorers item-prior tallrec`` (the registered
``tallrec`` scorer); ``score`` reports through the same pointwise evaluator.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmrec.cli.options import add_dataclass_arguments, dataclass_from_args

#: TallRecConfig fields that only the registered scorer reads (it builds its own examples; a prior
#: is fitted on rating statistics, which a JSON file does not carry).
SCORER_ONLY = ("zero_shot", "early_stopping_share", "history_len", "output_dir", "prior", "prior_only")


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.tallrec.config import TallRecConfig
    from llmrec.tallrec.split import SPLIT_BY

    parser = subparsers.add_parser("tallrec", help="TALLRec: instruction JSON files, LoRA tuning, Yes/No scoring",
                                   description="Build TALLRec instruction data (Alpaca JSON), fine-tune a causal LM "
                                               "with LoRA, and score P(Yes) (AUC against the files' answers). To "
                                               "compare TALLRec with other scorers on a split, use `llmrec evaluate "
                                               "--task pointwise --scorers item-prior tallrec`.")
    sub = parser.add_subparsers(dest="tallrec_command", metavar="ACTION", required=True)

    build = sub.add_parser("build-data", help="write train/valid/test JSON (TALLRec's Alpaca format)")
    build.add_argument("--dataset", required=True, help="ml-100k (ratings), mind (impressions), amazon-games, ...")
    build.add_argument("--data-dir", default=None, help="folder holding the data set folders")
    build.add_argument("--out", required=True, type=Path, help="output folder for train.json, valid.json, test.json")
    build.add_argument("--history-len", type=int, default=10, help="items shown before the target")
    build.add_argument("--split-by", choices=list(SPLIT_BY), default="user",
                       help="8:1:1 split, leak-free either way: user (each user in one part) or time (by the "
                            "target's timestamp: train earliest, test latest). The old 'example' split was removed: "
                            "it put test targets, with their labels, into training prompts")
    build.add_argument("--exclude", type=Path, nargs="*", default=[],
                       help="evaluation JSON files (e.g. TALLRec's valid.json): their questions, and every example of "
                            "their users, are removed from train and valid (the early-stopping set)")
    build.add_argument("--evidence", choices=["none", "item", "user", "both"], default="none",
                       help="collaborative evidence in each prompt (rated data; needs --split-by time): the target's "
                            "known ratings and the user's habits, from events strictly before the example's target. "
                            "Train on it with `train --evidence` set to the same, so a loaded adapter scores alike")
    build.add_argument("--seed", type=int, default=42)
    build.set_defaults(func=run_build)

    train = sub.add_parser("train", help="LoRA-tune on a JSON file; save a guarded adapter")
    train.add_argument("--train", required=True, type=Path, help="training JSON (TALLRec format)")
    train.add_argument("--valid", type=Path, default=None, help="validation JSON: early stopping on AUC")
    train.add_argument("--out", required=True, type=Path, help="adapter folder to write")
    add_dataclass_arguments(train.add_argument_group("TALLRec model, LoRA and training"), TallRecConfig,
                            skip=SCORER_ONLY)
    train.set_defaults(func=run_train)

    score = sub.add_parser("score", help="P(Yes) for a JSON file with a saved adapter (or zero-shot)")
    score.add_argument("--data", required=True, type=Path, help="TALLRec JSON to score")
    group = score.add_mutually_exclusive_group(required=True)
    group.add_argument("--adapter", type=Path, help="adapter folder written by 'train'")
    group.add_argument("--zero-shot", metavar="MODEL", help="score with an untrained base model")
    score.add_argument("--template", default="alpaca", help="prompt template for --zero-shot")
    score.add_argument("--limit", type=int, default=0, help="score a seeded subset of this many examples")
    score.add_argument("--batch-size", type=int, default=8)
    score.add_argument("--device", default="auto")
    score.add_argument("--out", type=Path, default=None, help="write per-example scores and metrics as JSON")
    score.set_defaults(func=run_score)


def run_build(args: argparse.Namespace) -> int:
    from llmrec.data.registry import load_dataset
    from llmrec.tallrec.data import build_examples, read_examples, write_examples
    from llmrec.tallrec.split import exclude_evaluation, split_examples

    if args.evidence != "none" and args.split_by != "time":
        # By user, a training example's item evidence would average held-out users' earlier ratings in.
        raise SystemExit("--evidence needs --split-by time: split by user, the item statistics of training examples "
                         "would include the held-out users' ratings")
    dataset = load_dataset(args.dataset, args.data_dir)
    examples = build_examples(dataset, history_len=args.history_len, seed=args.seed, evidence=args.evidence)
    parts = split_examples(examples, by=args.split_by, seed=args.seed)
    for path in args.exclude:
        dropped = exclude_evaluation(parts, read_examples(path), examples)
        print(f"{path}: removed {dropped['train']} train and {dropped['valid']} valid examples (its questions and "
              f"every example of its {dropped['users']} users)")
    for name, rows in parts.items():
        write_examples(args.out / f"{name}.json", rows)
        print(f"{name}: {len(rows)} examples ({sum(e.label for e in rows)} yes) -> {args.out / f'{name}.json'}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from llmrec.tallrec.config import TallRecConfig
    from llmrec.tallrec.data import read_examples
    from llmrec.tallrec.train import save_adapter, train_tallrec

    config = dataclass_from_args(TallRecConfig, args, output_dir=str(args.out))
    train = read_examples(args.train)
    valid = read_examples(args.valid) if args.valid else []
    result = train_tallrec(config, train, valid, output_dir=args.out / "trainer")
    save_adapter(result, args.out, valid or train)
    print(json.dumps({"adapter": str(args.out), "train_examples": result.train_examples, "steps": result.steps,
                      "best_valid_auc": result.best_valid_auc, "best_step": result.best_step,
                      "seconds": round(result.seconds, 1), "tokens_per_second": round(result.tokens_per_second, 1)}))
    return 0


def run_score(args: argparse.Namespace) -> int:
    from llmrec.tallrec.config import TallRecConfig
    from llmrec.tallrec.data import few_shot_subset, read_examples
    from llmrec.tallrec.model import YesNoScorer
    from llmrec.tallrec.scorer import QuestionScorer, file_evaluator, question_id
    from llmrec.tallrec.train import load_adapter, load_base
    from llmrec.utils.io import write_json

    everything = read_examples(args.data)
    examples = few_shot_subset(everything, args.limit, seed=0)
    if args.adapter:
        yes_no = load_adapter(args.adapter, device=args.device, batch_size=args.batch_size)
    else:
        model, tokenizer = load_base(TallRecConfig(model=args.zero_shot, device=args.device))
        yes_no = YesNoScorer(model.eval(), tokenizer, template=args.template, batch_size=args.batch_size)
    yes_no.show_progress = True
    scorer = QuestionScorer(yes_no, examples)
    result = file_evaluator(examples, name=args.data.name, total=len(everything), batch_size=64)(scorer)
    result["n"] = len(examples)
    print(json.dumps(result))
    if args.out:
        write_json(args.out, {"metrics": result, "p_yes": [scorer.p_yes[question_id(e)] for e in examples],
                              "labels": [e.label for e in examples]})
    return 0
