"""GIRL (Zheng et al., "Generative Job Recommendations with Large Language Model", 2023): a causal LM
writes the job description that suits a candidate, trained in three stages on trl 1.x — SFT
(``SFTTrainer``, completion-only loss, LoRA), a reward model (``RewardTrainer``) and RL against it
(``RLOOTrainer`` with the reward model as its ``reward_funcs`` entry and a KL penalty to the SFT
model) — then grounded to real jobs by embedding retrieval. The same pipeline runs on MovieLens 100K.

From the command line (each step reads what the earlier ones wrote under ``--output-dir``)::

    llmrec girl sft    --dataset job-views --output-dir runs/girl/job-views
    llmrec girl reward --dataset job-views --output-dir runs/girl/job-views
    llmrec girl rl     --dataset job-views --output-dir runs/girl/job-views
    llmrec girl ground --dataset job-views --output-dir runs/girl/job-views

In Python::

    config = GirlConfig(dataset="job-views", output_dir="runs/girl/job-views")
    run_sft(config); run_reward(config); run_rl(config); report = run_ground(config)

On the one path, ``girl`` is a registered scorer (``llmrec.girl.scorer``).
"""

from llmrec.girl.config import GirlConfig
from llmrec.girl.data import GirlData, Match, build_girl_data, load_girl_data, split_users
from llmrec.girl.model import GirlReward, RewardModel, check_generation, generate, render_prompt
from llmrec.girl.pipeline import run_ground, run_reward, run_rl, run_sft

__all__ = [
    "GirlConfig", "GirlData", "Match", "build_girl_data", "load_girl_data", "split_users", "GirlReward",
    "RewardModel", "check_generation", "generate", "render_prompt", "run_ground", "run_reward", "run_rl", "run_sft",
]
