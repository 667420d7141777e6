#!/usr/bin/env python
"""LlamaRec LoRA tuning on the known events, evaluated beside the baselines through ``llmrec.run``.

The registered ``llamarec`` scorer builds its training lists from the events known before the
evaluated part (a seeded sample of users, each one's last known event as the target, 19 uniform
negatives from outside the user's items, label-blind order), trains with the HF ``Trainer`` (loss on
the answer letter only), saves the adapter (safetensors) to ``--output_dir`` and checks it reloads;
the main process then evaluates it on the same candidates as ``--baselines``.

CPU (fp32, the defaults; sized for a shared CPU):
    python scripts/train_llamarec.py --dataset amazon-games --train_users 400 --history_len 8 \
        --max_item_chars 40 --evidence popularity --max_cases 200 --threads 1 --output_dir runs/llamarec/games

One GPU, bf16, LoRA on every layer, many more users:
    accelerate launch --config_file scripts/accelerate/single_gpu.yaml scripts/train_llamarec.py \
        --dataset amazon-games --bf16 --lora_layers 0 --train_users 20000 --batch_size 16 \
        --score_batch_size 32 --output_dir runs/llamarec/games-gpu

4-bit QLoRA on a larger packaged model: add ``--model qwen2.5-0.5b --load_in_4bit --gradient_checkpointing``.
Several GPUs: scripts/accelerate/multi_gpu_ddp.yaml (or deepspeed_zero2.yaml, fsdp.yaml).
RunConfig's own ``seed`` and ``batch_size`` (case sampling, scorer calls) are ``--eval_seed`` and
``--eval_batch_size`` here, since LlamaRec's ``--seed`` and ``--batch_size`` are the trainer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import HfArgumentParser

from llmrec.llamarec.config import LlamaRecConfig
from llmrec.run import run_config_flags, run_config_from_flags

RENAMED = {"seed": "eval_seed", "batch_size": "eval_batch_size"}  # RunConfig fields LlamaRecConfig also has
# The LLMRank protocol on Amazon Games (benchmarks/bench_evaluate.py's `games`): target + 19 sampled negatives.
DEFAULTS = {"dataset": "amazon-games", "split": "predefined", "mode": "sampled", "num_negatives": 19,
            "max_cases": 200, "batch_size": 8, "out_dir": "outputs/train_llamarec"}


@dataclass
class ScriptArgs:
    baselines: list[str] = field(default_factory=lambda: ["popularity", "itemcf"], metadata={
        "help": "registered scorers evaluated beside LlamaRec on the same candidates (none: --baselines with no "
                "value)"})
    load: str | None = field(default=None, metadata={"help": "evaluate this saved adapter instead of training"})


def main(argv: list[str] | None = None) -> int:
    from accelerate import PartialState

    from llmrec.registry import build_scorer
    from llmrec.run import build_context, load_split, run

    flags, config, script = HfArgumentParser((run_config_flags(DEFAULTS, RENAMED), LlamaRecConfig, ScriptArgs)
                                             ).parse_args_into_dataclasses(args=argv)
    run_config = run_config_from_flags(flags, RENAMED)
    split = load_split(run_config)
    load = {"llamarec": script.load} if script.load else {}
    # Training runs on every process (the trainer handles DDP / DeepSpeed / FSDP) ...
    llamarec = build_scorer("llamarec", build_context(split, run_config, load=load), config)
    # ... evaluation and the report only on the main one.
    if PartialState().is_main_process:
        outcome = run(run_config, [*script.baselines, llamarec], split=split)
        print(f"adapter in {script.load or config.output_dir}; metrics in {run_config.out_dir}; "
              f"{llamarec.name} NDCG@10 {outcome.results[llamarec.name]['ndcg@10']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
