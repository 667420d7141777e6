#!/usr/bin/env python
"""GIRL's stages (SFT, reward model, RLOO) and the grounding evaluation, as one launcher for CPU or GPU.

Every ``GirlConfig`` field is a flag (``--dataset``, ``--policy``, ``--rl_steps``, ``--beta``, ...);
``--stages`` picks the steps (default: all four, in order). Each stage writes its folder and
``report.json`` under ``--output_dir``; grounding runs on the main process only.

CPU (fp32, the reduced size of benchmarks/bench_girl.py):
    python scripts/train_girl.py --dataset job-views --device cpu --train_users 200 --output_dir runs/girl/job-views

One GPU, bf16, a larger policy and more RL:
    accelerate launch --config_file scripts/accelerate/single_gpu.yaml scripts/train_girl.py \
        --dataset job-views --policy /models/Qwen2.5-1.5B-Instruct --bf16 --train_users 0 --test_users 0 \
        --batch_size 16 --rl_steps 500 --rl_batch_size 32 --rl_generations 8 --max_new_tokens 48 \
        --output_dir runs/girl/job-views-gpu

Several GPUs: the same with scripts/accelerate/multi_gpu_ddp.yaml (or deepspeed_zero2.yaml). Not run in
the CPU-only development environment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from llmrec.girl.config import GirlConfig

STAGES = ("sft", "reward", "rl", "ground")


@dataclass
class ScriptArgs:
    stages: list[str] = field(default_factory=lambda: list(STAGES), metadata={
        "help": "steps to run, in this order: sft reward rl ground"})
    data_dir: str | None = field(default=None, metadata={"help": "folder holding job-views/ and ml-100k/"})
    num_negatives: int = field(default=99, metadata={"help": "grounding: sampled negatives per held-out user"})


def main(argv: list[str] | None = None) -> int:
    from accelerate import PartialState

    from llmrec.girl.pipeline import run_ground, run_reward, run_rl, run_sft

    config, script = HfArgumentParser((GirlConfig, ScriptArgs)).parse_args_into_dataclasses(args=argv)
    unknown = [s for s in script.stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stage {unknown[0]!r}; stages: {', '.join(STAGES)}")
    steps = {"sft": run_sft, "reward": run_reward, "rl": run_rl}
    for stage in [s for s in STAGES if s in script.stages]:
        if stage == "ground":
            if PartialState().is_main_process:
                report = run_ground(config, script.data_dir, num_negatives=script.num_negatives)
                print(json.dumps(report["reward_kl"], indent=1), json.dumps(report["grounding"], indent=1))
        else:
            report = steps[stage](config, script.data_dir)
            if PartialState().is_main_process:
                print(stage, json.dumps({k: v for k, v in report.items() if k not in ("loss", "history")},
                                        default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
