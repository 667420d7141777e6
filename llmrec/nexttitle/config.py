"""Settings of the next-title LM reranker (the generative ranking of BIGRec, Bao et al., "A Bi-Step
Grounding Paradigm for Large Language Models in Recommendation Systems", 2023, grounded on the given
candidates instead of by embedding search): a causal LM is LoRA-tuned to continue a user's history
with the title of the next item, and each candidate is scored by the log-likelihood of its own
title as that continuation. Candidates are scored one by one against the same prompt (one prompt
pass per user, shared by every candidate), so no candidate order exists that could bias the score.

``NextTitleConfig`` stands on the shared trainer settings (``llmrec.training.TrainerSettings``).
Defaults suit a shared CPU (fp32, LoRA on the top layers only); the GPU path is behind ``bf16`` /
``load_in_4bit`` / ``gradient_checkpointing``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from llmrec.llm.lora import LoraSettings
from llmrec.training import TrainerSettings, training_arguments

EVIDENCE = ("none", "popularity")
SCORES = ("sum", "mean", "pmi", "hint+pmi")


@dataclass
class NextTitleConfig(LoraSettings, TrainerSettings):
    """Prompt, training-data and scoring settings of one next-title run (model and LoRA: ``LoraSettings``)."""

    # ---- prompt
    template: str = field(default="next", metadata={
        "help": "prompt template under prompts/nexttitle/ (without .j2), or a path to a .j2 file"})
    history_len: int = field(default=8, metadata={"help": "most recent history items shown in a prompt"})
    max_item_chars: int = field(default=60, metadata={"help": "item texts are cut to this many characters"})
    evidence: str = field(default="none", metadata={
        "help": "none: the continuation is the title; popularity: '[pop B] title', B = floor(log2(1 + events "
                "known before the evaluated part)) capped at 9, so the tuned model also learns which "
                "popularity a next item tends to have (a prior in words)"})
    score: str = field(default="pmi", metadata={
        "help": "a candidate's score from its continuation's log-probability given the prompt: sum; mean (per "
                "token); pmi (minus the same given an empty history: a title's generic likelihood removed); "
                "hint+pmi (the popularity hint's log-probability plus title_weight x the title's pmi; with "
                "evidence=none, title_weight x pmi)"})
    title_weight: float = field(default=0.1, metadata={
        "help": "score=hint+pmi: weight of the title's pmi beside the hint's log-probability"})
    # ---- training data (from the events known before the evaluated part only)
    train_users: int = field(default=2000, metadata={
        "help": "seeded sample of users whose last known events are training targets (0: every user)"})
    targets_per_user: int = field(default=1, metadata={
        "help": "each training user's last this many known events become targets (each with the history "
                "before it), more examples from the same users"})
    valid_users: int = field(default=200, metadata={
        "help": "further seeded users held out of training; their last known item among 19 sampled ones is "
                "scored after training with both length norms (a check on training users only, never on "
                "evaluation cases)"})
    # ---- optimisation (the rest: llmrec.training.TrainerSettings)
    epochs: float = field(default=1.0, metadata={"help": "passes over the training examples"})
    batch_size: int = field(default=8, metadata={"help": "examples per forward pass"})
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW peak learning rate"})
    warmup_steps: float = field(default=0.05, metadata={
        "help": "linear warm-up: a number of steps, or a fraction of all steps when below 1"})
    seed: int = field(default=42, metadata={"help": "seed of the users, LoRA init and data order"})
    output_dir: str = field(default="runs/nexttitle", metadata={
        "help": "where the adapter is saved (trainer scratch files go to its 'trainer' sub-folder)"})
    save_steps: int = field(default=0, metadata={"help": "trainer checkpoints every this many steps (0: none)"})
    logging_steps: int = field(default=10, metadata={"help": "log the training loss every this many steps"})
    max_train_minutes: float = field(default=0.0, metadata={
        "help": "stop training after this many wall-clock minutes (0: no limit); the report says how many "
                "examples were actually seen"})
    # ---- scoring
    score_batch_size: int = field(default=20, metadata={"help": "candidate continuations per scoring forward pass"})

    def __post_init__(self) -> None:
        self.check_lora("NextTitleConfig")
        if self.evidence not in EVIDENCE:
            raise ValueError(f"NextTitleConfig.evidence must be one of {list(EVIDENCE)}, got {self.evidence!r}")
        if self.score not in SCORES:
            raise ValueError(f"NextTitleConfig.score must be one of {list(SCORES)}, got {self.score!r}")
        if self.history_len < 1 or self.max_item_chars < 8 or self.targets_per_user < 1:
            raise ValueError("NextTitleConfig: history_len >= 1, max_item_chars >= 8 and targets_per_user >= 1 "
                             f"needed; got {self.history_len}, {self.max_item_chars}, {self.targets_per_user}")
        if self.train_users < 0 or self.valid_users < 0 or self.batch_size < 1 or self.score_batch_size < 1:
            raise ValueError("NextTitleConfig: train_users, valid_users >= 0 and batch sizes >= 1 needed")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NextTitleConfig:
        """The config saved beside an adapter; keys this version does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        return cls(**{k: v for k, v in values.items() if k in known})

    def prompt_settings(self) -> dict[str, Any]:
        """What decides the prompt and continuation text: a loaded adapter scores with what it learnt."""
        return {k: getattr(self, k) for k in ("template", "history_len", "max_item_chars", "evidence")}

    def to_training_arguments(self, output_dir: str | None = None, **overrides: Any) -> Any:
        """``TrainingArguments`` through the shared mapping; fp32 unless ``bf16``."""
        values: dict[str, Any] = dict(output_dir=output_dir or f"{self.output_dir}/trainer", data_seed=self.seed,
                                      fp16=False, use_cpu=self.device == "cpu", eval_strategy="no")
        values.update(overrides)
        return training_arguments(self, **values)
