"""Settings of the LlamaRec-style fine-tuned reranker (Yue et al., "LlamaRec: Two-Stage
Recommendation using Large Language Models for Ranking", 2023): the user's recent history and the
candidates, labelled A, B, C, ..., go into one prompt; the score of candidate k is the
log-softmax over the candidate letters of letter k's logit at the first answer position (the
verbalizer). LoRA (peft) tunes the model on training users' next items with the loss on the
answer letter only.

``LlamaRecConfig`` stands on the shared trainer settings (``llmrec.training.TrainerSettings``)
and adds the model, LoRA, prompt, training-data and scoring knobs. Defaults suit a shared CPU
(fp32, LoRA on the top layers only so the backward pass stops there); the GPU path is behind
``bf16`` / ``load_in_4bit`` / ``gradient_checkpointing``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from llmrec.llm.lora import LoraSettings
from llmrec.training import TrainerSettings, training_arguments

EVIDENCE = ("none", "popularity")


@dataclass
class LlamaRecConfig(LoraSettings, TrainerSettings):
    """Prompt, training-data and scoring settings of one LlamaRec run (model and LoRA: ``LoraSettings``)."""

    # ---- prompt
    template: str = field(default="rerank", metadata={
        "help": "prompt template under prompts/llamarec/ (without .j2), or a path to a .j2 file"})
    history_len: int = field(default=10, metadata={"help": "most recent history items shown in a prompt"})
    max_item_chars: int = field(default=60, metadata={"help": "item texts are cut to this many characters"})
    evidence: str = field(default="none", metadata={
        "help": "none: titles only (LlamaRec); popularity: each candidate also shows its popularity bucket, "
                "floor(log2(1 + events known before the evaluated part)) capped at 9"})
    chat_template: bool = field(default=False, metadata={
        "help": "wrap the prompt in the tokenizer's chat template (off: raw text, ~25 tokens shorter; the "
                "tuned model learns the format either way)"})
    # ---- training data (from the events known before the evaluated part only)
    train_users: int = field(default=2000, metadata={
        "help": "seeded sample of users whose last known event is a training target (0: every user)"})
    valid_users: int = field(default=0, metadata={
        "help": "further seeded users held out of training (their NDCG@10 on the same kind of lists is "
                "reported after training: a check on training users only, never on evaluation cases)"})
    train_negatives: int = field(default=19, metadata={
        "help": "negatives per training list, uniform over the catalogue minus the user's known items"})
    # ---- optimisation (the rest: llmrec.training.TrainerSettings)
    epochs: float = field(default=1.0, metadata={"help": "passes over the training lists"})
    batch_size: int = field(default=4, metadata={"help": "training lists per forward pass"})
    learning_rate: float = field(default=3e-4, metadata={"help": "AdamW peak learning rate"})
    warmup_steps: float = field(default=0.05, metadata={
        "help": "linear warm-up: a number of steps, or a fraction of all steps when below 1"})
    seed: int = field(default=42, metadata={"help": "seed of the training users, negatives, LoRA init and data order"})
    output_dir: str = field(default="runs/llamarec", metadata={
        "help": "where the adapter is saved (trainer scratch files go to its 'trainer' sub-folder)"})
    save_steps: int = field(default=0, metadata={"help": "trainer checkpoints every this many steps (0: none)"})
    logging_steps: int = field(default=10, metadata={"help": "log the training loss every this many steps"})
    max_train_minutes: float = field(default=0.0, metadata={
        "help": "stop training after this many wall-clock minutes (0: no limit); on a shared CPU this keeps a "
                "run inside its slot, and the report says how many lists were actually seen"})
    # ---- scoring
    bootstrap: int = field(default=1, metadata={
        "help": "score B orders of each candidate list (the given one, then seeded label-blind shuffles) and "
                "average each item's scores: less position bias, B times the cost"})
    score_batch_size: int = field(default=8, metadata={"help": "prompts per scoring forward pass"})

    def __post_init__(self) -> None:
        self.check_lora("LlamaRecConfig")
        if self.evidence not in EVIDENCE:
            raise ValueError(f"LlamaRecConfig.evidence must be one of {list(EVIDENCE)}, got {self.evidence!r}")
        if self.history_len < 1 or self.max_item_chars < 8 or self.train_negatives < 1 or self.bootstrap < 1:
            raise ValueError("LlamaRecConfig: history_len >= 1, max_item_chars >= 8, train_negatives >= 1 and "
                             f"bootstrap >= 1 needed; got {self.history_len}, {self.max_item_chars}, "
                             f"{self.train_negatives}, {self.bootstrap}")
        if self.train_users < 0 or self.valid_users < 0 or self.batch_size < 1 or self.score_batch_size < 1:
            raise ValueError("LlamaRecConfig: train_users, valid_users >= 0 and batch sizes >= 1 needed")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LlamaRecConfig:
        """The config saved beside an adapter; keys this version does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        return cls(**{k: v for k, v in values.items() if k in known})

    def prompt_settings(self) -> dict[str, Any]:
        """What decides the prompt text: a loaded adapter scores with the settings it was trained with."""
        return {k: getattr(self, k) for k in ("template", "history_len", "max_item_chars", "evidence",
                                              "chat_template")}

    def to_training_arguments(self, output_dir: str | None = None, **overrides: Any) -> Any:
        """``TrainingArguments`` through the shared mapping; fp32 unless ``bf16`` (on an AVX2 CPU bf16 is
        much slower)."""
        values: dict[str, Any] = dict(output_dir=output_dir or f"{self.output_dir}/trainer", data_seed=self.seed,
                                      fp16=False, use_cpu=self.device == "cpu", eval_strategy="no")
        values.update(overrides)
        return training_arguments(self, **values)
