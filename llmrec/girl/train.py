"""GIRL's three stages on trl 1.x, each saving a folder (safetensors) under ``config.output_dir``.

1. :func:`train_sft` — ``SFTTrainer`` on prompt-completion rows (profile prompt -> matched item text),
   loss on the completion only, LoRA; the adapter is merged into the base and saved as ``sft/``,
   a plain model that stage 3 starts from and keeps as its KL reference.
2. :func:`train_reward` — ``RewardTrainer`` (Bradley-Terry) on (profile, matched text) vs (profile,
   mismatched text), pre-tokenised as text pairs; saved as ``reward/``.
3. :func:`train_rl` — ``RLOOTrainer`` with a new LoRA on the SFT model and ``reward_funcs=[GirlReward]``
   (the reward model). RLOO, not GRPO: GIRL's RL stage is PPO with a KL penalty to the SFT model
   in the reward; RLOO keeps exactly that objective (reward - beta x KL, per sequence) and replaces
   PPO's value network by the leave-one-out mean of the other samples' rewards, which costs no
   extra model on a CPU. GRPO (trl's default beta is 0) puts the KL in the loss per token and
   normalises rewards by the group's std, which inflates tiny reward differences between a few
   similar samples. With LoRA the reference is the SFT model itself (adapter disabled), so no
   second copy is held. Saved as ``rl/`` (the adapter).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.girl.config import GirlConfig
from llmrec.girl.data import GirlData
from llmrec.girl.model import (
    GirlReward,
    RewardModel,
    completion_text,
    encode_pair,
    load_causal_lm,
    load_reward_base,
    prepare_tokenizer,
    render_prompt,
)
from llmrec.utils.io import write_json

logger = logging.getLogger(__name__)
META = "girl.json"


def _meta(config: GirlConfig, stage: str, **info: Any) -> dict:
    return {"stage": stage, "config": config.to_dict(), **info}


def _log_history(trainer: Any, *keys: str) -> list[dict]:
    return [{k: round(float(v), 5) for k, v in row.items() if k in ("step", *keys)}
            for row in trainer.state.log_history if any(k in row for k in keys)]


# ---------------------------------------------------------------------------------------- stage 1
def sft_rows(data: GirlData, config: GirlConfig) -> list[dict[str, str]]:
    """Prompt-completion rows of the training users' latest matches."""
    return [{"prompt": render_prompt(data.profiles[m.user], data.domain),
             "completion": completion_text(data.item_text[m.item])}
            for m in data.examples(data.train_users, config.max_examples_per_user)]


def train_sft(config: GirlConfig, data: GirlData, out_dir: str | Path, model: Any = None,
              tokenizer: Any = None) -> dict:
    """Stage 1; returns what was measured (steps, seconds, losses). Writes a merged model to ``out_dir``."""
    from datasets import Dataset as HFDataset
    from trl import SFTTrainer

    if model is None or tokenizer is None:
        model, tokenizer = load_causal_lm(config.policy, config.device)
    prepare_tokenizer(tokenizer)
    rows = sft_rows(data, config)
    if not rows:
        raise ValueError("girl sft: no training pairs (no training user has a profile and a match)")
    out_dir = Path(out_dir)
    trainer = SFTTrainer(model=model, args=config.sft_config(str(out_dir / "trainer")),
                         train_dataset=HFDataset.from_list(rows), processing_class=tokenizer,
                         peft_config=config.lora_config())
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload().eval()
    info = {"examples": len(rows), "users": len(data.train_users), "steps": trainer.state.global_step,
            "seconds": round(seconds, 1), "loss": _log_history(trainer, "loss", "train_loss")}
    if trainer.accelerator.is_main_process:  # under `accelerate launch` every process trains, one writes
        merged.save_pretrained(str(out_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(out_dir))
        write_json(out_dir / META, _meta(config, "sft", **info))
    trainer.accelerator.wait_for_everyone()
    return {**info, "model": merged, "tokenizer": tokenizer}


def load_sft(folder: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """The merged SFT model saved by :func:`train_sft` (plain safetensors folder)."""
    _check_stage(folder, "sft")
    return load_causal_lm(str(folder), device)


# ---------------------------------------------------------------------------------------- stage 2
def reward_rows(data: GirlData, users: list[str], config: GirlConfig, tokenizer: Any, seed: int) -> list[dict]:
    pairs = data.pairs(users, config.max_examples_per_user, seed, hard=config.negatives == "hard")
    rows = []
    for p in pairs:
        profile = data.profiles[p.user]
        rows.append({"chosen_ids": encode_pair(tokenizer, profile, data.item_text[p.item], config.reward_max_length),
                     "rejected_ids": encode_pair(tokenizer, profile, data.item_text[str(p.negative)],
                                                 config.reward_max_length)})
    return rows


def evaluate_reward(reward: RewardModel, data: GirlData, users: list[str], config: GirlConfig,
                    seed: int = 1, hard: bool | None = None, negatives_per_match: int = 4) -> dict:
    """Held-out pairwise accuracy (a match scored above a mismatch of the same user) and AUC (all
    matches vs all mismatches): each user's latest ``max_examples_per_user`` matches, each against
    ``negatives_per_match`` seeded mismatches."""
    from llmrec.eval.metrics import binary_metrics

    hard = config.negatives == "hard" if hard is None else hard
    draws = [data.pairs(users, config.max_examples_per_user, seed + k, hard=hard) for k in range(negatives_per_match)]
    matches = draws[0]
    profiles = [data.profiles[p.user] for p in matches]
    pos = reward.score(profiles, [data.item_text[p.item] for p in matches])
    neg = np.stack([reward.score(profiles, [data.item_text[str(p.negative)] for p in draw]) for draw in draws], 1)
    labels = np.r_[np.ones(len(pos)), np.zeros(neg.size)].astype(int)
    auc = binary_metrics(labels, np.r_[pos, neg.ravel()])["auc"]
    return {"pairs": int(neg.size), "matches": len(matches), "users": len(users),
            "negatives": "hard" if hard else "random",
            "pairwise_accuracy": float(np.mean(pos[:, None] > neg)), "auc": float(auc),
            "mean_score_match": float(pos.mean()), "mean_score_mismatch": float(neg.mean())}


def train_reward(config: GirlConfig, data: GirlData, out_dir: str | Path, model: Any = None,
                 tokenizer: Any = None) -> dict:
    """Stage 2; returns held-out accuracy / AUC and timing. Writes the classifier to ``out_dir``."""
    from datasets import Dataset as HFDataset
    from trl import RewardTrainer

    if model is None or tokenizer is None:
        model, tokenizer = load_reward_base(config.reward_model, config.device)
    rows = reward_rows(data, data.train_users, config, tokenizer, config.seed)
    out_dir = Path(out_dir)
    trainer = RewardTrainer(model=model, args=config.reward_config(str(out_dir / "trainer")),
                            train_dataset=HFDataset.from_list(rows), processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    if trainer.accelerator.is_main_process:
        model.save_pretrained(str(out_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(out_dir))
    reward = RewardModel(model, tokenizer, config.reward_max_length)
    held_out = evaluate_reward(reward, data, data.test_users, config)
    info = {"pairs": len(rows), "users": len(data.train_users), "steps": trainer.state.global_step,
            "seconds": round(seconds, 1), "held_out": held_out, "loss": _log_history(trainer, "loss", "train_loss")}
    if trainer.accelerator.is_main_process:
        write_json(out_dir / META, _meta(config, "reward", **info))
    trainer.accelerator.wait_for_everyone()
    return {**info, "reward": reward}


def load_reward(folder: str | Path, device: str = "cpu", max_length: int | None = None) -> RewardModel:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    meta = _check_stage(folder, "reward")
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), use_safetensors=True,
                                                               trust_remote_code=False).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    return RewardModel(model, tokenizer, max_length or int(meta["config"].get("reward_max_length", 128)))


# ---------------------------------------------------------------------------------------- stage 3
def rl_prompts(data: GirlData, users: list[str]) -> dict[str, str]:
    """Rendered prompt -> profile, for the users given."""
    return {render_prompt(data.profiles[u], data.domain): data.profiles[u] for u in users}


def train_rl(config: GirlConfig, data: GirlData, policy: Any, tokenizer: Any, reward: RewardModel,
             out_dir: str | Path) -> dict:
    """Stage 3: RLOO of the (merged) SFT ``policy`` against ``reward``; saves the LoRA adapter."""
    from datasets import Dataset as HFDataset
    from trl import RLOOTrainer

    prompts = rl_prompts(data, data.train_users)
    reward_func = GirlReward(reward, prompts, config.degenerate_reward)
    out_dir = Path(out_dir)
    prepare_tokenizer(tokenizer)
    trainer = RLOOTrainer(model=policy, reward_funcs=[reward_func], args=config.rl_config(str(out_dir / "trainer")),
                          train_dataset=HFDataset.from_list([{"prompt": p} for p in prompts]),
                          processing_class=tokenizer, peft_config=config.lora_config())
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    history = _log_history(trainer, "reward", "kl", "loss")
    info = {"prompts": len(prompts), "steps": trainer.state.global_step, "seconds": round(seconds, 1),
            "completions_checked": dict(reward_func.counts), "history": history}
    if trainer.accelerator.is_main_process:
        model.save_pretrained(str(out_dir), safe_serialization=True)
        write_json(out_dir / META, _meta(config, "rl", **info))
    trainer.accelerator.wait_for_everyone()
    return {**info, "model": model}


def load_rl(folder: str | Path, sft_model: Any) -> Any:
    """The SFT model with the RL adapter of ``folder`` on top (PeftModel, eval mode)."""
    from peft import PeftModel

    _check_stage(folder, "rl")
    return PeftModel.from_pretrained(sft_model, str(folder)).eval()


def _check_stage(folder: str | Path, stage: str) -> dict:
    path = Path(folder) / META
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {META}; run `llmrec girl {stage}` first")
    meta = json.loads(path.read_text())
    if meta.get("stage") != stage:
        raise ValueError(f"{folder} holds GIRL's {meta.get('stage')!r} stage, not {stage!r}")
    return meta
