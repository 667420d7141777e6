"""Settings of TALLRec (Bao et al., "TALLRec: An Effective and Efficient Tuning Framework to Align
Large Language Model with Recommendation", RecSys 2023): LoRA instruction tuning of a causal LM
that answers "Yes." or "No." to "will the user like this item?", scored as P(Yes).

``TallRecConfig`` stands on the shared trainer settings (``llmrec.training.TrainerSettings``:
epochs, batch_size, learning_rate, bf16, gradient_checkpointing, ...) and adds the model, LoRA,
prompt, few-shot and early-stopping knobs. ``to_sft_config`` builds trl's ``SFTConfig`` through
the same mapping as every other method (``training_arguments(..., args_cls=SFTConfig)``);
``lora_config`` builds peft's ``LoraConfig``. Defaults are TALLRec's (r 8, alpha 16, dropout
0.05, q/v projections, lr 1e-4) except where a CPU needs otherwise (fp32, no gradient
checkpointing); the GPU path is behind ``bf16`` / ``load_in_4bit`` / ``gradient_checkpointing``.

As the registered ``tallrec`` scorer (``llmrec evaluate --scorers tallrec``) the same config picks
what the builder does: ``--load tallrec=FOLDER`` loads a saved adapter; ``zero_shot`` scores with
the untrained base model; otherwise it trains on examples built from the known events and saves
the adapter to ``output_dir``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from llmrec.training import TrainerSettings, training_arguments

SAMPLING = ("group_by_length", "random")

#: Field names of adapters saved before TallRecConfig stood on TrainerSettings -> today's names.
RENAMED_FIELDS = {"num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size"}


@dataclass
class TallRecConfig(TrainerSettings):
    """Model, adapter, prompt and training settings of one TALLRec run."""

    model: str = field(default="smollm2-135m", metadata={
        "help": "base causal LM: a packaged model (smollm2-135m, qwen2.5-0.5b, gemma3-270m), a local "
                "transformers folder, a .gguf file, or a hub id (only when HF_HUB_OFFLINE is unset)"})
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
    history_len: int = field(default=10, metadata={
        "help": "as a scorer and when building examples: the most recent history items shown in a prompt "
                "(TALLRec: 10), split into liked (rating > 3) and disliked"})
    evidence: str = field(default="none", metadata={
        "help": "collaborative evidence in the prompt (prompts/tallrec/evidence.j2): none (TALLRec's own text), "
                "item (the target's mean known rating, share liked, number of ratings and popularity in words), "
                "user (the user's mean rating and share liked) or both; from known events only: for a scored pair "
                "the events known before the evaluated part and the pair's history, for a training example the "
                "events strictly before its own target (llmrec.tallrec.evidence)"})
    prior: str = field(default="none", metadata={
        "help": "collaborative prior added to the answer's logit (llmrec.tallrec.prior): none (TALLRec as "
                "published) or evidence (a logistic regression on the item's and user's known rating statistics, "
                "fitted on the known examples; LoRA then learns the residual: P(like) = sigmoid(prior + "
                "logit(Yes) - logit(No)), trained with that loss)"})
    prior_only: bool = field(default=False, metadata={
        "help": "as a scorer with prior=evidence: score with the prior alone, no LLM loaded (the ablation row)"})
    answer_only_loss: bool = field(default=True, metadata={
        "help": "loss on the answer tokens only (trl completion_only_loss); off: on prompt and answer"})
    max_length: int = field(default=512, metadata={
        "help": "tokens per training example; longer prompts are cut from the left of the history so the "
                "target and the answer always stay"})
    # ---- optimisation (the rest: llmrec.training.TrainerSettings)
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (TALLRec: 1e-4)"})
    epochs: float = field(default=10.0, metadata={"help": "upper bound on epochs; early stopping may end sooner"})
    batch_size: int = field(default=4, metadata={"help": "examples per forward pass"})
    warmup_steps: float = field(default=0.0, metadata={
        "help": "linear warm-up: a number of steps, or a fraction of all steps when below 1"})
    seed: int = field(default=42, metadata={"help": "seed of the training subset, LoRA init and data order"})
    output_dir: str = field(default="runs/tallrec", metadata={
        "help": "where the guarded adapter is saved (trainer scratch files go to its 'trainer' sub-folder)"})
    save_steps: int = field(default=0, metadata={
        "help": "trainer checkpoints every this many steps (0: none; the final adapter is saved and checked "
                "by llmrec's guards either way)"})
    logging_steps: int = field(default=5, metadata={"help": "log the training loss every this many steps"})
    # ---- what the registered scorer does, few-shot protocol and early stopping
    zero_shot: bool = field(default=False, metadata={
        "help": "as a scorer: P(Yes) of the untrained base model (no training, nothing saved); ignored when "
                "a saved adapter is loaded"})
    shots: int = field(default=0, metadata={
        "help": "train on a seeded random subset of this many examples (TALLRec: 16 / 64 / 256); 0 = all "
                "(on a CPU, set it: the known events of ML-100K give ~80,000 examples)"})
    early_stopping_share: float = field(default=0.1, metadata={
        "help": "as a scorer: share of the examples built from known events, the latest by target time, "
                "held out for early stopping (the rest, all earlier, train); 0: no early-stopping set"})
    eval_every_steps: int = field(default=0, metadata={
        "help": "score the early-stopping set every this many steps; 0 = once per epoch"})
    early_stopping_patience: int = field(default=3, metadata={
        "help": "stop after this many validation scorings without a better AUC; the best adapter is kept. "
                "0 disables early stopping (the last adapter is kept)"})
    max_eval_examples: int = field(default=200, metadata={
        "help": "early-stopping examples scored (a seeded subset when there are more); 0 = all"})
    train_auc_examples: int = field(default=256, metadata={
        "help": "after training, AUC on this many of the training examples (a seeded subset), reported beside "
                "the validation / test AUC so under-fitting shows; 0: skip"})
    score_batch_size: int = field(default=8, metadata={"help": "prompts per scoring forward pass"})
    # ---- efficiency: GPU path and batching
    sampling: str = field(default="group_by_length", metadata={
        "help": "group_by_length: batches of similar length (little padding); random: plain shuffling"})
    pad_to_max_length: bool = field(default=False, metadata={
        "help": "pad every batch to max_length (TALLRec's original recipe; only for comparisons)"})
    packing: bool = field(default=False, metadata={
        "help": "pack several examples into each max_length row (trl packing, best-fit); GPU with flash "
                "attention recommended"})
    load_in_4bit: bool = field(default=False, metadata={
        "help": "QLoRA: load the base model in 4-bit NF4 with bitsandbytes (CUDA GPU and bitsandbytes needed)"})
    device: str = field(default="auto", metadata={"help": "auto (cuda if present), cpu, cuda, cuda:1"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow a model folder's own Python code to run (off: built-in architectures only)"})

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
        if self.shots < 0 or self.max_length < 8 or self.batch_size < 1 or self.history_len < 1:
            raise ValueError("TallRecConfig: shots >= 0, max_length >= 8, batch_size >= 1 and history_len >= 1 "
                             f"needed; got {self.shots}, {self.max_length}, {self.batch_size}, {self.history_len}")
        if not 0.0 <= self.early_stopping_share < 1.0:
            raise ValueError(f"TallRecConfig.early_stopping_share must be in [0, 1), got {self.early_stopping_share}")
        from llmrec.tallrec.evidence import check_evidence

        check_evidence(self.evidence)
        from llmrec.tallrec.prior import check_prior

        check_prior(self.prior)
        if self.prior != "none" and not self.answer_only_loss:
            raise ValueError("TallRecConfig: a prior trains the answer's logit only, so it needs answer_only_loss")
        if self.prior_only and self.prior == "none":
            raise ValueError("TallRecConfig.prior_only needs a prior (prior=evidence): there is nothing to score with")
        if self.train_auc_examples < 0:
            raise ValueError(f"TallRecConfig.train_auc_examples must be >= 0, got {self.train_auc_examples}")
        if self.packing and self.pad_to_max_length:
            raise ValueError("TallRecConfig: packing and pad_to_max_length exclude each other")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TallRecConfig:
        """A config from a dict (e.g. an adapter's tallrec.json); the field names of adapters saved
        before the shared trainer settings (``num_train_epochs``, ``per_device_train_batch_size``)
        still read. Unknown keys are ignored so newer records load in older code."""
        known = {f.name for f in fields(cls) if f.init}
        values = dict(values)
        for old, new in RENAMED_FIELDS.items():
            if old in values:
                values.setdefault(new, values.pop(old))  # a record holding both spellings keeps today's
        return cls(**{k: v for k, v in values.items() if k in known})

    def lora_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                          target_modules=list(self.target_modules), bias="none", task_type="CAUSAL_LM")

    def to_sft_config(self, output_dir: str | None = None, **overrides: Any) -> Any:
        """trl's ``SFTConfig`` for this run, through the shared trainer-settings mapping. Evaluation is
        ours (the AUC early-stopping callback), so the trainer's own is off."""
        from trl import SFTConfig

        values: dict[str, Any] = dict(
            output_dir=output_dir or f"{self.output_dir}/trainer",
            data_seed=self.seed,
            fp16=False,
            use_cpu=self.device == "cpu",
            train_sampling_strategy="group_by_length" if self.sampling == "group_by_length" else "random",
            max_length=self.max_length,
            packing=self.packing,
            # Pad every batch to max_length: TALLRec's recipe, kept only as the comparison baseline.
            pad_to_multiple_of=self.max_length if self.pad_to_max_length else None,
            completion_only_loss=self.answer_only_loss,
            eval_strategy="no",
        )
        values.update(overrides)
        return training_arguments(self, args_cls=SFTConfig, **values)
