#!/usr/bin/env python
"""P5 training on the events known before the evaluated part, evaluated beside the baselines through
``llmrec.run`` (the one path: same split, full-ranking candidates and evaluator).

CPU (the small T5 built from a config; reduced size):
    python scripts/train_p5.py --dataset ml-100k --split leave_one_out --index collaborative \
        --epochs 3 --targets_per_user 20 --max_history 10 --output_dir runs/p5-ml100k

One GPU, bf16, a packaged causal LM with LoRA and the ID tokens as new trainable rows:
    accelerate launch --config_file scripts/accelerate/single_gpu.yaml scripts/train_p5.py \
        --dataset ml-100k --split leave_one_out --architecture causal --base_model qwen2.5-0.5b --bf16 \
        --index semantic --batch_size 32 --learning_rate 2e-4 --epochs 5 --output_dir runs/p5-qwen

Several GPUs: the same with scripts/accelerate/multi_gpu_ddp.yaml (or deepspeed_zero2.yaml, fsdp.yaml).
RunConfig's ``seed``, ``batch_size`` and ``max_history`` are ``--eval_seed``, ``--eval_batch_size`` and
``--eval_max_history`` here (P5's ``--seed``, ``--batch_size`` and ``--max_history`` are its own).
``--index original`` is the LEAKY P5 numbering, kept only to measure the leak; its rows say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import HfArgumentParser

from llmrec.p5.config import P5Config
from llmrec.run import run_config_flags, run_config_from_flags

# RunConfig fields that P5Config also has
RENAMED = {"seed": "eval_seed", "batch_size": "eval_batch_size", "max_history": "eval_max_history"}
DEFAULTS = {"dataset": "ml-100k", "split": "leave_one_out", "mode": "full", "out_dir": "outputs/train_p5"}


@dataclass
class ScriptArgs:
    baselines: list[str] = field(default_factory=lambda: ["popularity", "sasrec"], metadata={
        "help": "registered scorers evaluated beside P5 on the same candidates"})
    load: str | None = field(default=None, metadata={"help": "evaluate this saved P5 model instead of training"})


def main(argv: list[str] | None = None) -> int:
    from accelerate import PartialState

    from llmrec.registry import build_scorer
    from llmrec.run import build_context, load_split, run

    flags, config, script = HfArgumentParser((run_config_flags(DEFAULTS, RENAMED), P5Config, ScriptArgs)
                                             ).parse_args_into_dataclasses(args=argv)
    run_config = run_config_from_flags(flags, RENAMED)
    split = load_split(run_config)
    load = {"p5": script.load} if script.load else {}
    # Training runs on every process (the Trainer handles DDP / DeepSpeed / FSDP) ...
    p5 = build_scorer("p5", build_context(split, run_config, load=load), config)
    # ... evaluation and the report only on the main one.
    if PartialState().is_main_process:
        outcome = run(run_config, [*script.baselines, p5], split=split)
        result = outcome.results[p5.name]
        print(f"model in {script.load or config.output_dir}; metrics in {run_config.out_dir}; {p5.name} "
              f"HR@10 {result['hr@10']:.4f} NDCG@10 {result['ndcg@10']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
