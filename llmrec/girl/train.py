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

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """A stage writes its model folder into ``.<name>.partial`` beside ``target``; only when the
    stage has finished is that folder renamed to ``target`` (an older ``target`` is moved aside first,
    then deleted), so an interrupted run never leaves a half folder that a later stage would load.

    The partial name is fixed, not random, so every process of an ``accelerate launch`` writes into
    the same folder; the main process clears a stale one left by a killed run and publishes."""
    from accelerate import PartialState

    state = PartialState()
    target = Path(target)
    partial = target.parent / f".{target.name}.partial"
    if state.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    state.wait_for_everyone()
    try:
        yield partial
    except BaseException:
        if state.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    state.wait_for_everyone()
    if state.is_main_process:
        old = target.parent / f".{target.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(partial, target)
        shutil.rmtree(old, ignore_errors=True)
    state.wait_for_everyone()


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
    with staged_folder(out_dir) as folder:
        trainer = SFTTrainer(model=model, args=config.sft_config(str(folder / "trainer")),
                             train_dataset=HFDataset.from_list(rows), processing_class=tokenizer,
                             peft_config=config.lora_config())
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload().eval()
        info = {"examples": len(rows), "users": len(data.train_users), "steps": trainer.state.global_step,
                "seconds": round(seconds, 1), "loss": _log_history(trainer, "loss", "train_loss")}
        if trainer.accelerator.is_main_process:  # under `accelerate launch` every process trains, one writes
            merged.save_pretrained(str(folder), safe_serialization=True)
            tokenizer.save_pretrained(str(folder))
            write_json(folder / META, _meta(config, "sft", **info))
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
    with staged_folder(out_dir) as folder:
        trainer = RewardTrainer(model=model, args=config.reward_config(str(folder / "trainer")),
                                train_dataset=HFDataset.from_list(rows), processing_class=tokenizer)
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        model = trainer.accelerator.unwrap_model(trainer.model).eval()
        reward = RewardModel(model, tokenizer, config.reward_max_length)
        held_out = evaluate_reward(reward, data, data.test_users, config)
        info = {"pairs": len(rows), "users": len(data.train_users), "steps": trainer.state.global_step,
                "seconds": round(seconds, 1), "held_out": held_out,
                "loss": _log_history(trainer, "loss", "train_loss")}
        if trainer.accelerator.is_main_process:
            model.save_pretrained(str(folder), safe_serialization=True)
            tokenizer.save_pretrained(str(folder))
            write_json(folder / META, _meta(config, "reward", **info))
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


def rl_users(data: GirlData, config: GirlConfig) -> tuple[list[str], list[str]]:
    """(RL prompt users, validation users): both from the training side; the first
    ``rl_valid_users`` training users never serve as RL prompts and judge the checkpoints."""
    cut = min(config.rl_valid_users, max(0, len(data.train_users) - 1))
    return data.train_users[cut:], data.train_users[:cut]


def _checkpoint_steps(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for path in folder.glob("checkpoint-*"):
        if path.name.split("-")[-1].isdigit() and (path / "adapter_model.safetensors").is_file():
            found.append((int(path.name.split("-")[-1]), path))
    return sorted(found)


def select_checkpoint(model: Any, tokenizer: Any, data: GirlData, users: list[str], reward: RewardModel,
                      config: GirlConfig, trainer_dir: Path) -> dict:
    """Score the SFT start (adapter off) and every saved RL checkpoint on the validation users (one sampled
    generation each, the same seed for all: mean P(match), KL to SFT), load the best checkpoint's adapter
    into ``model`` and return the table. The choice sees training users only."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from llmrec.girl.evaluate import generate_for_users, kl_to_reference

    class _Reference:  # the SFT model = the policy with its adapter switched off
        def __init__(self, peft_model: Any) -> None:
            self.peft_model = peft_model

        def parameters(self) -> Any:
            return self.peft_model.parameters()

        def eval(self) -> _Reference:
            self.peft_model.eval()
            return self

        def __call__(self, **kwargs: Any) -> Any:
            with self.peft_model.disable_adapter():
                return self.peft_model(**kwargs)

    rows = []
    with model.disable_adapter():
        start = generate_for_users("sft", model, tokenizer, data, users, reward, config, seed=config.seed)
    rows.append({"step": 0, **_brief(start.summary()), "kl_per_sequence": 0.0})
    for step, path in _checkpoint_steps(trainer_dir):
        set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
        gens = generate_for_users(f"rl-{step}", model, tokenizer, data, users, reward, config, seed=config.seed)
        kl = kl_to_reference(model, _Reference(model), tokenizer, data, gens, config)["kl_per_sequence"]
        rows.append({"step": step, **_brief(gens.summary()), "kl_per_sequence": round(kl, 5)})
    trained = [r for r in rows if r["step"] > 0]
    best = max(trained, key=lambda r: r["mean_p_match"]) if trained else None
    if best is not None:
        path = dict(_checkpoint_steps(trainer_dir))[best["step"]]
        set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
    return {"users": len(users), "criterion": "mean P(match) of one sampled generation per validation user",
            "checkpoints": rows, "chosen_step": best["step"] if best else None}


def _brief(summary: dict) -> dict:
    return {"mean_reward": round(summary["mean_reward"], 5), "mean_p_match": round(summary["mean_p_match"], 5),
            "empty": summary["empty"], "echo": summary["echo"]}


def train_rl(config: GirlConfig, data: GirlData, policy: Any, tokenizer: Any, reward: RewardModel,
             out_dir: str | Path) -> dict:
    """Stage 3: RLOO of the (merged) SFT ``policy`` against ``reward``; saves the LoRA adapter.

    With ``rl_valid_users`` and ``rl_eval_every`` set, a checkpoint is saved every ``rl_eval_every``
    steps and the one with the best validation mean P(match) is kept (:func:`select_checkpoint`)."""
    from datasets import Dataset as HFDataset
    from trl import RLOOTrainer

    train_users, valid_users = rl_users(data, config)
    prompts = rl_prompts(data, train_users)
    reward_func = GirlReward(reward, prompts, config.degenerate_reward)
    prepare_tokenizer(tokenizer)
    select = bool(valid_users and config.rl_eval_every)
    # Every checkpoint is kept (save_total_limit None): the selection compares all of them.
    overrides: dict[str, Any] = dict(save_strategy="steps", save_steps=config.rl_eval_every, save_only_model=True,
                                     save_total_limit=None) if select else {}
    with staged_folder(out_dir) as folder:
        trainer = RLOOTrainer(model=policy, reward_funcs=[reward_func],
                              args=config.rl_config(str(folder / "trainer"), **overrides),
                              train_dataset=HFDataset.from_list([{"prompt": p} for p in prompts]),
                              processing_class=tokenizer, peft_config=config.lora_config())
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        model = trainer.accelerator.unwrap_model(trainer.model).eval()
        history = _log_history(trainer, "reward", "kl", "loss")
        info: dict[str, Any] = {"prompts": len(prompts), "validation_users": len(valid_users),
                                "steps": trainer.state.global_step, "seconds": round(seconds, 1),
                                "completions_checked": dict(reward_func.counts), "history": history}
        if select and trainer.accelerator.is_main_process:
            started = time.perf_counter()
            info["selection"] = select_checkpoint(model, tokenizer, data, valid_users, reward, config,
                                                  folder / "trainer")
            info["selection_seconds"] = round(time.perf_counter() - started, 1)
        if trainer.accelerator.is_main_process:
            model.save_pretrained(str(folder), safe_serialization=True)
            write_json(folder / META, _meta(config, "rl", **info))
    return {**info, "model": model}


def finish_rl(config: GirlConfig, data: GirlData, policy: Any, tokenizer: Any, reward: RewardModel,
              checkpoints: str | Path, out_dir: str | Path, seconds: float | None = None) -> dict:
    """Stage 3 from the checkpoints of an RL run stopped before its last step (time ran out): the
    same checkpoint selection on the validation users as :func:`train_rl`, saved as ``out_dir``.

    A stopped run leaves its checkpoints in ``.rl.partial/trainer``; copy them elsewhere first
    (the next stage run clears that folder) and pass that copy as ``checkpoints``. ``seconds``: the
    training time of the stopped run, for the report."""
    from peft import PeftModel

    checkpoints = Path(checkpoints)
    found = _checkpoint_steps(checkpoints)
    if not found:
        raise FileNotFoundError(f"{checkpoints}: no checkpoint-N folder with an adapter_model.safetensors")
    state = json.loads((found[-1][1] / "trainer_state.json").read_text())
    train_users, valid_users = rl_users(data, config)
    model = PeftModel.from_pretrained(policy, str(found[0][1]), is_trainable=False).eval()
    with staged_folder(out_dir) as folder:
        shutil.copytree(checkpoints, folder / "trainer")
        started = time.perf_counter()
        selection = select_checkpoint(model, tokenizer, data, valid_users, reward, config, folder / "trainer")
        history = [{k: round(float(v), 5) for k, v in row.items() if k in ("step", "reward", "kl", "loss")}
                   for row in state["log_history"] if any(k in row for k in ("reward", "kl", "loss"))]
        info: dict[str, Any] = {
            "prompts": len(rl_prompts(data, train_users)), "validation_users": len(valid_users),
            "steps": int(state["global_step"]), "seconds": seconds,
            "stopped_early": f"stopped at step {state['global_step']} of {config.rl_steps}; finished from its "
                             "checkpoints (finish_rl)",
            "history": history, "selection": selection, "selection_seconds": round(time.perf_counter() - started, 1)}
        model.save_pretrained(str(folder), safe_serialization=True)
        write_json(folder / META, _meta(config, "rl", **info))
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
