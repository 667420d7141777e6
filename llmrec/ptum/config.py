"""Settings of PTUM (Wu et al., "PTUM: Pre-training User Model from Unlabeled User Behaviors via
Self-supervision", Findings of EMNLP 2020). One dataclass: behaviour encoder, the two
self-supervised tasks, pretraining and fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmrec.embed.cache import DEFAULT_CACHE_DIR
from llmrec.embed.encoder import DEFAULT_MODEL
from llmrec.training import TrainerSettings

ITEM_ENCODERS = ("id", "text")
FINETUNE_ENCODER = ("full", "frozen")


@dataclass
class PTUMConfig(TrainerSettings):
    """PTUM model, pretraining and fine-tuning settings; every field's help text feeds the CLI."""

    # --- behaviour encoder -----------------------------------------------------------------------
    d_model: int = field(default=64, metadata={"help": "behaviour-embedding, hidden and user-vector width"})
    n_layers: int = field(default=2, metadata={"help": "bidirectional self-attention blocks"})
    n_heads: int = field(default=2, metadata={"help": "attention heads per block"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on embeddings, attention and MLP"})
    max_len: int = field(default=50, metadata={
        "help": "longest behaviour sequence read; longer sequences are cut into windows for pretraining and "
                "the most recent events are kept for users"})
    item_encoder: str = field(default="id", metadata={
        "help": "id: a learned table over the training vocabulary; text: frozen sentence-encoder vectors of "
                "the item text (cached), projected by a learned linear layer"})
    text_model: str = field(default=DEFAULT_MODEL, metadata={
        "help": "item_encoder=text: sentence encoder (default: the packaged MiniLM, offline)"})
    text_template: str | None = field(default=None, metadata={
        "help": "item_encoder=text: item-text template (None: the data set's own)"})
    cache_dir: str | None = field(default=DEFAULT_CACHE_DIR, metadata={
        "help": "item_encoder=text: embedding cache folder (None: encode every time)"})
    # --- self-supervised tasks -----------------------------------------------------------------
    masked_task: bool = field(default=True, metadata={
        "help": "masked behaviour prediction: hide a share of behaviours, predict each from its hidden state"})
    mask_share: float = field(default=0.15, metadata={
        "help": "share of behaviours hidden per sequence (at least one is always hidden)"})
    mask_negatives: int = field(default=4, metadata={
        "help": "sampled negative items per hidden behaviour (softmax over the true item and these)"})
    next_k_task: bool = field(default=True, metadata={
        "help": "next-K behaviour prediction: the user vector of a sequence without its last K behaviours "
                "predicts each of them"})
    next_k: int = field(default=2, metadata={"help": "K: behaviours held back at the end of each window"})
    next_negatives: int = field(default=4, metadata={"help": "sampled negative items per next behaviour"})
    # --- training (the rest: llmrec.training.TrainerSettings) ---------------------------------
    epochs: float = field(default=10.0, metadata={"help": "pretraining passes over the behaviour windows"})
    seed: int = field(default=42, metadata={
        "help": "seed for initialisation, data order, masking, negatives and dropout"})
    output_dir: str = field(default="runs/ptum", metadata={
        "help": "where checkpoints (safetensors) and the pretrained model go"})
    pretrain: bool = field(default=True, metadata={
        "help": "False: skip pretraining and fine-tune next-item prediction from a randomly initialised "
                "encoder (the from-scratch baseline; needs next_item_epochs > 0)"})
    # --- fine-tuning ---------------------------------------------------------------------------------
    next_item_epochs: float = field(default=0.0, metadata={
        "help": "recommendation: fine-tune the pretrained encoder on next-item prediction (K=1, same "
                "negatives) for this many epochs before scoring (0: score with the pretrained user vector)"})
    user_fraction: float = field(default=1.0, metadata={
        "help": "next-item fine-tuning: share of the users (a seeded draw of user ids) whose known events "
                "are trained on; the rest only feed pretraining, as unlabelled behaviour"})
    finetune_encoder: str = field(default="full", metadata={
        "help": "demographics: full: fine-tune the encoder with the head; frozen: train only the linear "
                "head on the fixed user vector (a linear probe)"})
    probe_learning_rate: float = field(default=1e-2, metadata={
        "help": "demographics with finetune_encoder=frozen: the head's learning rate (a lone linear head "
                "takes larger steps than a whole encoder can)"})
    finetune_epochs: float = field(default=30.0, metadata={"help": "demographics: passes over the labelled users"})
    finetune_batch_size: int = field(default=32, metadata={
        "help": "demographics: users per step (small, so that a 1% label share still makes several steps)"})
    finetune_learning_rate: float = field(default=1e-3, metadata={
        "help": "demographics and next-item fine-tuning: AdamW peak learning rate"})
    test_share: float = field(default=0.2, metadata={
        "help": "demographics: share of labelled users held out for testing (user-level, seeded)"})

    def __post_init__(self) -> None:
        if self.item_encoder not in ITEM_ENCODERS:
            raise ValueError(f"PTUMConfig.item_encoder must be one of {list(ITEM_ENCODERS)}, got {self.item_encoder!r}")
        if self.d_model < 1 or self.n_layers < 1 or self.n_heads < 1:
            raise ValueError(f"PTUMConfig: d_model, n_layers and n_heads must be >= 1, got "
                             f"{self.d_model}, {self.n_layers}, {self.n_heads}")
        if self.d_model % self.n_heads:
            raise ValueError(f"PTUMConfig: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"PTUMConfig.dropout must be in [0, 1), got {self.dropout}")
        if not (self.masked_task or self.next_k_task):
            raise ValueError("PTUMConfig: turn on at least one pretraining task (masked_task, next_k_task)")
        if not 0.0 < self.mask_share < 1.0:
            raise ValueError(f"PTUMConfig.mask_share must be in (0, 1), got {self.mask_share}")
        if self.next_k < 1:
            raise ValueError(f"PTUMConfig.next_k must be >= 1, got {self.next_k}")
        if self.mask_negatives < 1 or self.next_negatives < 1:
            raise ValueError(f"PTUMConfig: mask_negatives and next_negatives must be >= 1, got "
                             f"{self.mask_negatives}, {self.next_negatives}")
        # Next-K keeps at least one behaviour as the encoder's input.
        if self.max_len < 2 or (self.next_k_task and self.max_len <= self.next_k):
            raise ValueError(f"PTUMConfig.max_len must be >= 2 and > next_k ({self.next_k}), got {self.max_len}")
        if not 0.0 < self.test_share < 1.0:
            raise ValueError(f"PTUMConfig.test_share must be in (0, 1), got {self.test_share}")
        if not self.pretrain and self.next_item_epochs <= 0:
            raise ValueError("PTUMConfig: pretrain=False (from scratch) needs next_item_epochs > 0")
        if self.finetune_encoder not in FINETUNE_ENCODER:
            raise ValueError(f"PTUMConfig.finetune_encoder must be one of {list(FINETUNE_ENCODER)}, "
                             f"got {self.finetune_encoder!r}")
        if self.probe_learning_rate <= 0 or self.finetune_learning_rate <= 0:
            raise ValueError(f"PTUMConfig: probe_learning_rate and finetune_learning_rate must be > 0, got "
                             f"{self.probe_learning_rate}, {self.finetune_learning_rate}")
        if not 0.0 < self.user_fraction <= 1.0:
            raise ValueError(f"PTUMConfig.user_fraction must be in (0, 1], got {self.user_fraction}")
        if self.finetune_batch_size < 1:
            raise ValueError(f"PTUMConfig.finetune_batch_size must be >= 1, got {self.finetune_batch_size}")
        if self.next_item_epochs < 0 or self.finetune_epochs <= 0:
            raise ValueError(f"PTUMConfig: next_item_epochs must be >= 0 and finetune_epochs > 0, got "
                             f"{self.next_item_epochs}, {self.finetune_epochs}")
