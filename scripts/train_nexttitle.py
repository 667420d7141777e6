#!/usr/bin/env python
"""Next-title LoRA tuning on the known events, evaluated beside the baselines through ``llmrec.run``.

The registered ``nexttitle`` scorer builds (history, next item) examples from the events known
before the evaluated part (a seeded sample of users, their last known events as targets), trains
with the HF ``Trainer`` (causal-LM loss on the next item's title only), saves the adapter
(safetensors) to ``--output_dir`` and checks it reloads; the main process then evaluates it on the
same candidates as ``--baselines``, each candidate scored by its title's log-likelihood.

CPU (fp32, the defaults; sized for a shared CPU):
    python scripts/train_nexttitle.py --dataset amazon-games --train_users 3000 --history_len 6 \
        --max_item_chars 40 --evidence popularity --max_cases 200 --threads 1 --output_dir runs/nexttitle/games

One GPU, bf16, LoRA on every layer, many more users and targets:
    accelerate launch --config_file scripts/accelerate/single_gpu.yaml scripts/train_nexttitle.py \
        --dataset amazon-games --bf16 --lora_layers 0 --train_users 0 --targets_per_user 3 --batch_size 32 \
        --output_dir runs/nexttitle/games-gpu

4-bit QLoRA on a larger packaged model: add ``--model qwen2.5-0.5b --load_in_4bit --gradient_checkpointing``.
Several GPUs: scripts/accelerate/multi_gpu_ddp.yaml (or deepspeed_zero2.yaml, fsdp.yaml).
RunConfig's own ``seed`` and ``batch_size`` are ``--eval_seed`` and ``--eval_batch_size`` here, since
the scorer's ``--seed`` and ``--batch_size`` are the trainer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import HfArgumentParser

from llmrec.nexttitle.config import NextTitleConfig
from llmrec.run import run_config_flags, run_config_from_flags

RENAMED = {"seed": "eval_seed", "batch_size": "eval_batch_size"}  # RunConfig fields NextTitleConfig also has
# The LLMRank protocol on Amazon Games (benchmarks/bench_evaluate.py's `games`): target + 19 sampled negatives.
DEFAULTS = {"dataset": "amazon-games", "split": "predefined", "mode": "sampled", "num_negatives": 19,
            "max_cases": 200, "batch_size": 8, "out_dir": "outputs/train_nexttitle"}


@dataclass
class ScriptArgs:
    baselines: list[str] = field(default_factory=lambda: ["popularity", "itemcf"], metadata={
        "help": "registered scorers evaluated beside the next-title LM on the same candidates"})
    load: str | None = field(default=None, metadata={"help": "evaluate this saved adapter instead of training"})
    evaluate: bool = field(default=True, metadata={
        "help": "evaluate after training (--evaluate false: train and save only, e.g. before a full-ranking "
                "hybrid reuses the adapter)"})


def main(argv: list[str] | None = None) -> int:
    from accelerate import PartialState

    from llmrec.registry import build_scorer
    from llmrec.run import build_context, load_split, run

    flags, config, script = HfArgumentParser((run_config_flags(DEFAULTS, RENAMED), NextTitleConfig, ScriptArgs)
                                             ).parse_args_into_dataclasses(args=argv)
    run_config = run_config_from_flags(flags, RENAMED)
    split = load_split(run_config)
    load = {"nexttitle": script.load} if script.load else {}
    # Training runs on every process (the trainer handles DDP / DeepSpeed / FSDP) ...
    scorer = build_scorer("nexttitle", build_context(split, run_config, load=load), config)
    # ... evaluation and the report only on the main one.
    if script.evaluate and PartialState().is_main_process:
        outcome = run(run_config, [*script.baselines, scorer], split=split)
        print(f"adapter in {script.load or config.output_dir}; metrics in {run_config.out_dir}; "
              f"{scorer.name} NDCG@10 {outcome.results[scorer.name]['ndcg@10']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
