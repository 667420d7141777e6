"""Settings of TALLRec (Bao et al., "TALLRec: An Effective and Efficient Tuning Framework to Align
Large Language Model with Recommendation", RecSys 2023): LoRA instruction tuning of a causal LM
that answers "Yes." or "No." to "will the user like this item?", scored as P(Yes).

One dataclass holds every knob with its help text; ``to_sft_config`` turns it into trl's
``SFTConfig`` (the training loop is trl's, not ours) and ``lora_config`` into peft's ``LoraConfig``.
Defaults are TALLRec's (r 8, alpha 16, dropout 0.05, q/v projections, lr 1e-4) except where a CPU
needs otherwise (fp32, no gradient checkpointing); the GPU path is behind ``bf16`` / ``load_in_4bit``
/ ``gradient_checkpointing``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

SAMPLING = ("group_by_length", "random")


@dataclass
class TallRecConfig:
    """Model, adapter, prompt and training settings of one TALLRec run."""

    model: str = field(default="smollm2-135m", metadata={
        "help": "base causal LM: a packaged model (smollm2-135m, qwen2.5-0.5b, gemma3-270m), a local "
                "transformers folder, or a hub id (only when HF_HUB_OFFLINE is unset)"})
    # ---- LoRA (TALLRec's values)
    lora_r: int = field(default=8, metadata={"help": "LoRA rank r"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha (the update is scaled by alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"], metadata={
        "help": "module names LoRA adapts (TALLRec: the attention query and value projections)"})
    # ---- prompt
    template: str = field(default="alpaca", metadata={
        "help": "prompt template under prompts/tallrec/ (alpaca: TALLRec's own wrapper), a .j2 path, "
                "or 'chat' to put instruction + input into one user turn of the tokenizer's chat template"})
    answer_only_loss: bool = field(default=True, metadata={
        "help": "loss on the answer tokens only (trl completion_only_loss); off: on prompt and answer"})
    max_length: int = field(default=512, metadata={
        "help": "tokens per training example; longer prompts are cut from the left of the history so the "
                "target and the answer always stay"})
    # ---- optimisation
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (TALLRec: 1e-4)"})
    num_train_epochs: float = field(default=10.0, metadata={
        "help": "upper bound on epochs; early stopping may end sooner"})
    max_steps: int = field(default=-1, metadata={"help": "if > 0, stop after this many optimizer steps"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "examples per forward pass"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "forward passes per optimizer step"})
    warmup_steps: int = field(default=0, metadata={"help": "linear learning-rate warm-up steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=42, metadata={"help": "seed of the training subset, LoRA init and data order"})
    # ---- few-shot protocol and early stopping
    shots: int = field(default=0, metadata={
        "help": "train on a seeded random subset of this many examples (TALLRec: 16 / 64 / 256); 0 = all"})
    eval_every_steps: int = field(default=0, metadata={
        "help": "score the validation set every this many steps; 0 = once per epoch"})
    early_stopping_patience: int = field(default=3, metadata={
        "help": "stop after this many validation scorings without a better AUC; the best adapter is kept. "
                "0 disables early stopping (the last adapter is kept)"})
    max_eval_examples: int = field(default=200, metadata={
        "help": "validation examples scored for early stopping (a seeded subset when there are more); 0 = all"})
    score_batch_size: int = field(default=8, metadata={"help": "prompts per scoring forward pass"})
    # ---- efficiency: GPU path and batching
    sampling: str = field(default="group_by_length", metadata={
        "help": "group_by_length: batches of similar length (little padding); random: plain shuffling"})
    pad_to_max_length: bool = field(default=False, metadata={
        "help": "pad every batch to max_length (TALLRec's original recipe; only for comparisons)"})
    packing: bool = field(default=False, metadata={
        "help": "pack several examples into each max_length row (trl packing, best-fit); GPU with flash "
                "attention recommended"})
    bf16: bool = field(default=False, metadata={
        "help": "bfloat16 mixed precision (GPU; on an AVX2-only CPU it is ~15x slower, so off by default)"})
    load_in_4bit: bool = field(default=False, metadata={
        "help": "QLoRA: load the base model in 4-bit NF4 with bitsandbytes (CUDA GPU and bitsandbytes needed)"})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "recompute activations in the backward pass: less memory, ~30% slower (GPU, long prompts)"})
    device: str = field(default="auto", metadata={"help": "auto (cuda if present), cpu, cuda, cuda:1"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow a model folder's own Python code to run (off: built-in architectures only)"})
    logging_steps: int = field(default=5, metadata={"help": "log the training loss every this many steps"})
    report_to: str = field(default="none", metadata={"help": "trainer loggers: none, tensorboard, wandb, ..."})

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = [m for m in self.target_modules.split(",") if m]
        if self.lora_r < 1 or self.lora_alpha <= 0 or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"TallRecConfig: need lora_r >= 1, lora_alpha > 0, 0 <= lora_dropout < 1; got "
                             f"{self.lora_r}, {self.lora_alpha}, {self.lora_dropout}")
        if not self.target_modules:
            raise ValueError("TallRecConfig.target_modules is empty: name at least one module (e.g. q_proj)")
        if self.sampling not in SAMPLING:
            raise ValueError(f"TallRecConfig.sampling must be one of {list(SAMPLING)}, got {self.sampling!r}")
        if self.shots < 0 or self.max_length < 8 or self.per_device_train_batch_size < 1:
            raise ValueError("TallRecConfig: shots >= 0, max_length >= 8 and per_device_train_batch_size >= 1 needed")
        if self.packing and self.pad_to_max_length:
            raise ValueError("TallRecConfig: packing and pad_to_max_length exclude each other")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TallRecConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def lora_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                          target_modules=list(self.target_modules), bias="none", task_type="CAUSAL_LM")

    def to_sft_config(self, output_dir: str, **overrides: Any) -> Any:
        """trl's ``SFTConfig`` for this run. Saving and evaluation are ours (guards, AUC callback)."""
        from trl import SFTConfig

        use_cpu = self.device == "cpu"
        values: dict[str, Any] = dict(
            output_dir=output_dir,
            learning_rate=self.learning_rate,
            num_train_epochs=self.num_train_epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.per_device_train_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            warmup_steps=self.warmup_steps,
            weight_decay=self.weight_decay,
            seed=self.seed,
            data_seed=self.seed,
            # trl turns bf16 on by default; on a CPU without native bf16 that is ~15x slower.
            bf16=self.bf16,
            fp16=False,
            use_cpu=use_cpu,
            gradient_checkpointing=self.gradient_checkpointing,
            train_sampling_strategy="group_by_length" if self.sampling == "group_by_length" else "random",
            max_length=self.max_length,
            packing=self.packing,
            # Pad every batch to max_length: TALLRec's recipe, kept only as the comparison baseline.
            pad_to_multiple_of=self.max_length if self.pad_to_max_length else None,
            completion_only_loss=self.answer_only_loss,
            logging_steps=self.logging_steps,
            save_strategy="no",
            eval_strategy="no",
            report_to=self.report_to,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            disable_tqdm=False,
        )
        values.update(overrides)
        return SFTConfig(**values)
