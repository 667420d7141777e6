#!/usr/bin/env python
"""Pretrain PTUM (and optionally fine-tune it on next-item prediction), then evaluate it beside the
baselines through ``llmrec.run`` (the one path): one process on the CPU, or GPUs under
``accelerate launch``.

    python scripts/train_ptum.py --dataset ml-100k --epochs 20 --output_dir runs/ptum-ml100k
    accelerate launch --config_file scripts/accelerate/multi_gpu_ddp.yaml scripts/train_ptum.py \
        --dataset amazon-games --batch_size 256 --next_item_epochs 5 --output_dir runs/ptum-games

Training runs on every process (the Trainer handles DDP / DeepSpeed / FSDP); the main process
reloads the saved model and evaluates. RunConfig's ``seed`` and ``batch_size`` are ``--eval_seed``
and ``--eval_batch_size`` here (PTUM's ``--seed`` and ``--batch_size`` are its own). Demographics
fine-tuning is ``llmrec ptum finetune --task demographics --load OUTPUT_DIR``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import HfArgumentParser

from llmrec.ptum.config import PTUMConfig
from llmrec.run import run_config_flags, run_config_from_flags

# RunConfig fields that PTUMConfig also has
RENAMED = {"seed": "eval_seed", "batch_size": "eval_batch_size"}
DEFAULTS = {"dataset": "ml-100k", "split": "leave_one_out", "mode": "full"}


@dataclass
class ScriptArgs:
    baselines: list[str] = field(default_factory=lambda: ["popularity"], metadata={
        "help": "registered scorers evaluated beside PTUM on the same candidates"})


def main(argv: list[str] | None = None) -> int:
    from accelerate import PartialState

    from llmrec.ptum import PTUM, ItemVocabulary, PTUMScorer, finetune_next_item, pretrain_ptum
    from llmrec.run import load_split, run

    flags, config, script = HfArgumentParser((run_config_flags(DEFAULTS, RENAMED), PTUMConfig, ScriptArgs)
                                             ).parse_args_into_dataclasses(args=argv)
    run_config = run_config_from_flags(flags, RENAMED)
    state = PartialState()
    split = load_split(run_config)

    model, vocabulary = pretrain_ptum(split, config, part=run_config.part)
    folder = config.output_dir
    if config.next_item_epochs > 0:
        finetune_next_item(split, model, vocabulary, config, part=run_config.part)
        folder = f"{config.output_dir}/next-item"

    if state.is_main_process:
        # Reload the saved file: under FSDP the in-memory model is sharded, the file holds it whole.
        model, items = PTUM.from_pretrained(folder, map_location=str(state.device))
        run_config.out_dir = folder
        run(run_config, [*script.baselines, PTUMScorer(model, ItemVocabulary(items))], split=split)
        print(f"model and metrics in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
