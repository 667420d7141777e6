#!/usr/bin/env python
"""TALLRec LoRA tuning, thin: parse flags, build or read the data, train, save a guarded adapter.

CPU (fp32, the defaults):
    python scripts/train_tallrec.py --dataset ml-100k --shots 64 --out adapters/tallrec-64

One GPU, bf16, 4-bit QLoRA on a larger model:
    accelerate launch --config_file scripts/accelerate/single_gpu.yaml scripts/train_tallrec.py \
        --model /models/Llama-2-7b-hf --bf16 --load-in-4bit --gradient-checkpointing --shots 256 \
        --per-device-train-batch-size 16 --out adapters/tallrec-7b-256

Several GPUs: the same with scripts/accelerate/multi_gpu_ddp.yaml (or deepspeed_zero2.yaml, fsdp.yaml).
Data: ``--train/--valid`` TALLRec JSON files, or ``--dataset`` to build them (8:1:1 split).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmrec.cli.options import add_dataclass_arguments, dataclass_from_args  # noqa: E402
from llmrec.tallrec import (  # noqa: E402
    TallRecConfig,
    build_examples,
    few_shot_subset,
    read_examples,
    remove_overlap,
    save_adapter,
    split_examples,
    train_tallrec,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--train", type=Path, help="training JSON (TALLRec format)")
    data.add_argument("--valid", type=Path, help="validation JSON: early stopping on AUC")
    data.add_argument("--test", type=Path, help="JSON scored once after training (AUC printed)")
    data.add_argument("--max-test-examples", type=int, default=1000,
                      help="score a seeded subset of this many test examples (a built ml-100k test split holds "
                           "~9,000: ~45 min on one CPU core); 0 = all, -1 = skip the test scoring")
    data.add_argument("--dataset", help="build the data instead: ml-100k, mind, amazon-games, ...")
    data.add_argument("--data-dir", default=None, help="folder holding the data set folders")
    data.add_argument("--split-by", choices=["example", "user"], default="example")
    data.add_argument("--exclude", type=Path, nargs="*", default=[],
                      help="TALLRec JSON whose questions are removed from the built train split")
    parser.add_argument("--out", type=Path, required=True, help="adapter folder to write")
    add_dataclass_arguments(parser.add_argument_group("TALLRec model, LoRA and training"), TallRecConfig)
    args = parser.parse_args(argv)
    if args.max_test_examples < -1:
        parser.error(f"--max-test-examples: expected -1 (skip), 0 (all) or a positive count, got "
                     f"{args.max_test_examples}")
    if bool(args.train) == bool(args.dataset):
        parser.error("give either --train (with optional --valid/--test) or --dataset")
    return args


def load_data(args: argparse.Namespace, seed: int) -> tuple[list, list, list]:
    if args.train:
        return (read_examples(args.train), read_examples(args.valid) if args.valid else [],
                read_examples(args.test) if args.test else [])
    from llmrec.data.registry import load_dataset

    parts = split_examples(build_examples(load_dataset(args.dataset, args.data_dir), seed=seed),
                           by=args.split_by, seed=seed)
    for path in args.exclude:
        parts["train"], dropped = remove_overlap(parts["train"], read_examples(path))
        logging.info("removed %d training examples also in %s", dropped, path)
    return parts["train"], parts["valid"], parts["test"]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    config = dataclass_from_args(TallRecConfig, args)
    train, valid, test = load_data(args, config.seed)
    result = train_tallrec(config, train, valid, output_dir=args.out / "trainer")
    # Under accelerate every process trains; only the main one writes and checks the adapter.
    from accelerate import PartialState

    if PartialState().is_main_process:
        save_adapter(result, args.out, valid or train)
        summary = {"adapter": str(args.out), "train_examples": result.train_examples, "steps": result.steps,
                   "best_valid_auc": result.best_valid_auc, "seconds": round(result.seconds, 1),
                   "tokens_per_second": round(result.tokens_per_second, 1)}
        if test and args.max_test_examples >= 0:
            scored = few_shot_subset(test, args.max_test_examples, seed=0) if args.max_test_examples else test
            summary["test"] = {**result.scorer.evaluate(scored), "examples": len(scored), "of": len(test)}
        print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
