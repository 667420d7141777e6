"""Settings of GIRL (Zheng et al., "Generative Job Recommendations with Large Language Model", 2023):
a causal LM writes the job (or movie) description that suits a user, in three stages (supervised
fine-tuning, a reward model, reinforcement learning against it), then each generation is grounded to
real items by embedding retrieval.

``GirlConfig`` stands on the shared trainer settings (``llmrec.training.TrainerSettings``: epochs,
batch_size, learning_rate, bf16, ...), which drive stage 1 (SFT); stage 2 (``reward_*``) and stage 3
(``rl_*``) have their own knobs. ``sft_config`` / ``reward_config`` / ``rl_config`` build trl's
``SFTConfig`` / ``RewardConfig`` / ``RLOOConfig`` through the one mapping every method uses
(``llmrec.training.training_arguments``), fp32 unless ``bf16`` is set (bf16 is ~15x slower on an
AVX2-only CPU). The defaults are the reduced size documented in the README for this CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from llmrec.training import TrainerSettings, training_arguments

DATASETS = ("job-views", "ml-100k")
NEGATIVES = ("random", "hard")


@dataclass
class GirlConfig(TrainerSettings):
    """Data, model, LoRA and the three stages' training settings of one GIRL run."""

    # ---- data
    dataset: str = field(default="job-views", metadata={
        "help": "job-views (applicant profile -> job) or ml-100k (liked-movie history -> movie)"})
    train_users: int = field(default=300, metadata={
        "help": "users (applicants) the stages train on, a seeded subset of the training side (0: all)"})
    test_users: int = field(default=60, metadata={
        "help": "held-out users evaluated (reward AUC, mean reward / KL, grounding), seeded (0: all)"})
    test_share: float = field(default=0.2, metadata={
        "help": "share of the eligible users put on the held-out side; the split is by user, never by event"})
    negatives: str = field(default="random", metadata={
        "help": "mismatched jobs for the reward model: random (jobs the user did not view) or hard (same city "
                "or industry as the viewed job; movies: same first genre), falling back to random"})
    history_len: int = field(default=10, metadata={"help": "ml-100k: liked movies shown in a profile"})
    max_profile_chars: int = field(default=360, metadata={"help": "profile text is cut to this many characters"})
    max_examples_per_user: int = field(default=3, metadata={
        "help": "SFT / reward examples per training user (their latest matches)"})
    # ---- models
    policy: str = field(default="smollm2-135m", metadata={
        "help": "causal LM generator: a packaged model (smollm2-135m), a local transformers folder or .gguf"})
    reward_model: str = field(default="minilm", metadata={
        "help": "reward model base: a sequence classifier over (profile, text); minilm = the packaged "
                "all-MiniLM-L6-v2 encoder with a new scalar head"})
    encoder: str = field(default="minilm", metadata={"help": "sentence encoder for grounding"})
    # ---- LoRA (policy, SFT and RL)
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      metadata={"help": "modules LoRA adapts"})
    # ---- prompts and generation
    max_prompt_tokens: int = field(default=160, metadata={"help": "prompt tokens kept (cut from the left)"})
    max_new_tokens: int = field(default=40, metadata={"help": "tokens per generation (issue: <= 48)"})
    temperature: float = field(default=1.0, metadata={
        "help": "sampling temperature of RL rollouts and of the evaluated generations"})
    gen_batch_size: int = field(default=16, metadata={"help": "prompts per generation call"})
    # ---- stage 1: SFT (epochs, batch_size, learning_rate ... from TrainerSettings)
    epochs: float = field(default=1.0, metadata={"help": "SFT passes over the training pairs"})
    batch_size: int = field(default=4, metadata={"help": "SFT examples per step"})
    learning_rate: float = field(default=3e-4, metadata={"help": "SFT AdamW learning rate"})
    # ---- stage 2: reward model
    reward_epochs: float = field(default=3.0, metadata={"help": "reward-model passes over the pairs"})
    reward_batch_size: int = field(default=16, metadata={"help": "pairs per reward-model step"})
    reward_learning_rate: float = field(default=1e-4, metadata={"help": "reward-model learning rate"})
    reward_max_length: int = field(default=128, metadata={"help": "tokens of profile + text for the reward model"})
    reward_center: float = field(default=0.01, metadata={
        "help": "trl center_rewards_coefficient: keeps scores near 0 so sigmoid(score) reads as P(match)"})
    # ---- stage 3: RL (RLOO)
    rl_steps: int = field(default=30, metadata={"help": "RLOO optimiser steps"})
    rl_learning_rate: float = field(default=1e-4, metadata={"help": "RLOO learning rate (LoRA)"})
    rl_generations: int = field(default=4, metadata={"help": "completions per prompt (leave-one-out baseline)"})
    rl_batch_size: int = field(default=8, metadata={"help": "completions per RLOO step (a multiple of rl_generations)"})
    rl_valid_users: int = field(default=40, metadata={
        "help": "training users kept out of the RL prompts; the RL checkpoints are compared on their mean "
                "P(match) and the best one is kept (tuning on training users only, never on held-out ones; 0: "
                "keep the last step)"})
    rl_eval_every: int = field(default=8, metadata={
        "help": "RL steps between the checkpoints compared on rl_valid_users (0: keep the last step)"})
    beta: float = field(default=0.05, metadata={
        "help": "KL coefficient to the SFT reference (RLOO subtracts beta x KL from the reward)"})
    degenerate_reward: float = field(default=-4.0, metadata={
        "help": "reward of an empty generation or one that repeats the prompt (instead of the reward model's)"})
    # ---- output and device
    seed: int = field(default=42, metadata={"help": "seed of the user split, negatives, LoRA init and sampling"})
    output_dir: str = field(default="runs/girl", metadata={
        "help": "work folder: sft/, reward/, rl/ and the stage reports are written under it"})
    logging_steps: int = field(default=10, metadata={"help": "log losses every this many steps"})
    save_steps: int = field(default=0, metadata={"help": "trainer checkpoints every this many steps (0: none)"})
    device: str = field(default="auto", metadata={"help": "auto (cuda if present), cpu, cuda"})

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = [m for m in self.target_modules.split(",") if m]
        if self.dataset not in DATASETS:
            raise ValueError(f"GirlConfig.dataset must be one of {list(DATASETS)}, got {self.dataset!r}")
        if self.negatives not in NEGATIVES:
            raise ValueError(f"GirlConfig.negatives must be one of {list(NEGATIVES)}, got {self.negatives!r}")
        if not 0.0 < self.test_share < 1.0:
            raise ValueError(f"GirlConfig.test_share must be in (0, 1), got {self.test_share}")
        if self.rl_generations < 2 or self.rl_batch_size % self.rl_generations:
            raise ValueError("GirlConfig: rl_generations >= 2 (leave-one-out needs two) and rl_batch_size a "
                             f"multiple of it; got {self.rl_generations}, {self.rl_batch_size}")
        if self.rl_valid_users < 0 or self.rl_eval_every < 0:
            raise ValueError(f"GirlConfig: rl_valid_users and rl_eval_every must be >= 0, got "
                             f"{self.rl_valid_users}, {self.rl_eval_every}")
        if not 1 <= self.max_new_tokens <= 256 or self.max_prompt_tokens < 8:
            raise ValueError(f"GirlConfig: 1 <= max_new_tokens <= 256 and max_prompt_tokens >= 8, got "
                             f"{self.max_new_tokens}, {self.max_prompt_tokens}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GirlConfig:
        """A config from a saved ``girl.json``; unknown keys are ignored."""
        known = {f.name for f in fields(cls) if f.init}
        return cls(**{k: v for k, v in values.items() if k in known})

    def lora_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                          target_modules=list(self.target_modules), bias="none", task_type="CAUSAL_LM")

    def _common(self, output_dir: str) -> dict[str, Any]:
        return dict(output_dir=output_dir, fp16=False, use_cpu=self.device == "cpu", data_seed=self.seed)

    def sft_config(self, output_dir: str, **overrides: Any) -> Any:
        """trl ``SFTConfig``: prompt-completion rows, loss on the completion only."""
        from trl import SFTConfig

        values = dict(self._common(output_dir), completion_only_loss=True,
                      max_length=self.max_prompt_tokens + self.max_new_tokens + 8, packing=False, eval_strategy="no")
        values.update(overrides)
        return training_arguments(self, args_cls=SFTConfig, **values)

    def reward_config(self, output_dir: str, **overrides: Any) -> Any:
        """trl ``RewardConfig`` (Bradley-Terry loss on chosen vs rejected)."""
        from trl import RewardConfig

        values = dict(self._common(output_dir), num_train_epochs=self.reward_epochs, max_steps=-1,
                      per_device_train_batch_size=self.reward_batch_size, learning_rate=self.reward_learning_rate,
                      max_length=self.reward_max_length, center_rewards_coefficient=self.reward_center or None,
                      eval_strategy="no")
        values.update(overrides)
        return training_arguments(self, args_cls=RewardConfig, **values)

    def rl_config(self, output_dir: str, **overrides: Any) -> Any:
        """trl ``RLOOConfig``: ``rl_generations`` samples per prompt, KL penalty ``beta`` to the SFT model."""
        from trl import RLOOConfig

        values = dict(self._common(output_dir), max_steps=self.rl_steps, num_train_epochs=1.0,
                      per_device_train_batch_size=self.rl_batch_size, learning_rate=self.rl_learning_rate,
                      num_generations=self.rl_generations, max_completion_length=self.max_new_tokens,
                      temperature=self.temperature, beta=self.beta, warmup_steps=0.0,
                      log_completions=False)
        values.update(overrides)
        return training_arguments(self, args_cls=RLOOConfig, **values)
