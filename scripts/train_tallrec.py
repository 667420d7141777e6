#!/usr/bin/env python
"""TALLRec LoRA tuning on a leak-free split, evaluated beside the item prior through ``llmrec.run``.

The registered ``tallrec`` scorer builds its instruction examples from the events known before the
evaluated part (never a held-out one), early-stops on the latest of them, trains with trl's
``SFTTrainer`` and saves a guarded adapter to ``--output_dir``; the main process then evaluates
P(Yes) with the one pointwise evaluator (AUC, log loss) next to ``--baselines``.

CPU (fp32, the defaults):
    python scripts/train_tallrec.py --dataset ml-100k --split temporal --valid_ratio 0.1 --shots 64 \
        --max_cases 200 --output_dir adapters/tallrec-64

With collaborative evidence in the prompt (the target's known ratings and the user's habits in words,
leak-free: ``llmrec.tallrec.evidence``) and, on a CPU with avx512_bf16 / AMX, bf16 autocast (2-3x faster):
    python scripts/train_tallrec.py --shots 64 --evidence both --bf16 --max_cases 200 \
        --baselines item-prior popularity bias --output_dir adapters/tallrec-64-evidence

With the collaborative prior on the answer's logit (CoLLM-style; LoRA learns the residual), beside
the prior alone:
    python scripts/train_tallrec.py --shots 16 --prior evidence --max_cases 200 \
        --baselines item-prior bias --output_dir adapters/tallrec-16-prior

One GPU, bf16, 4-bit QLoRA on a larger model:
    accelerate launch --config_file scripts/accelerate/single_gpu.yaml scripts/train_tallrec.py \
        --model /models/Llama-2-7b-hf --bf16 --load_in_4bit --gradient_checkpointing --shots 256 \
        --batch_size 16 --output_dir adapters/tallrec-7b-256

Several GPUs: the same with scripts/accelerate/multi_gpu_ddp.yaml (or deepspeed_zero2.yaml, fsdp.yaml).
RunConfig's own ``seed`` and ``batch_size`` (case sampling, scorer calls) are ``--eval_seed`` and
``--eval_batch_size`` here, since TALLRec's ``--seed`` and ``--batch_size`` are the trainer's.
TALLRec's Alpaca JSON files: ``llmrec tallrec build-data | train | score``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import HfArgumentParser

from llmrec.run import run_config_flags, run_config_from_flags
from llmrec.tallrec.config import TallRecConfig

RENAMED = {"seed": "eval_seed", "batch_size": "eval_batch_size"}  # RunConfig fields TallRecConfig also has
DEFAULTS = {"dataset": "ml-100k", "split": "temporal", "test_ratio": 0.2, "valid_ratio": 0.1, "task": "pointwise",
            "min_history": 10, "out_dir": "outputs/train_tallrec"}


@dataclass
class ScriptArgs:
    baselines: list[str] = field(default_factory=lambda: ["item-prior"], metadata={
        "help": "registered scorers evaluated beside TALLRec on the same pairs (none: --baselines with no value)"})
    load: str | None = field(default=None, metadata={"help": "evaluate this saved adapter instead of training"})


def main(argv: list[str] | None = None) -> int:
    from accelerate import PartialState

    from llmrec.registry import build_scorer
    from llmrec.run import build_context, load_split, run

    flags, config, script = HfArgumentParser((run_config_flags(DEFAULTS, RENAMED), TallRecConfig, ScriptArgs)
                                             ).parse_args_into_dataclasses(args=argv)
    run_config = run_config_from_flags(flags, RENAMED)
    split = load_split(run_config)
    load = {"tallrec": script.load} if script.load else {}
    # Training runs on every process (the trainer handles DDP / DeepSpeed / FSDP) ...
    tallrec = build_scorer("tallrec", build_context(split, run_config, load=load), config)
    # ... evaluation and the report only on the main one.
    if PartialState().is_main_process:
        outcome = run(run_config, [*script.baselines, tallrec], split=split)
        print(f"adapter in {script.load or config.output_dir}; metrics in {run_config.out_dir}; "
              f"{tallrec.name} AUC {outcome.results[tallrec.name]['auc']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
