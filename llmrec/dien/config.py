"""Settings of DIEN (Zhou et al., "Deep Interest Evolution Network for Click-Through Rate
Prediction", AAAI 2019). One dataclass: features, interest extractor and evolution, training."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmrec.training import TrainerSettings

EVOLUTIONS = ("gru", "aigru", "agru", "augru")


@dataclass
class DIENConfig(TrainerSettings):
    """DIEN model and training settings; every field's help text feeds the CLI."""

    # --- features --------------------------------------------------------------------------------
    embedding_dim: int = field(default=18, metadata={
        "help": "width of the item-ID and the category embeddings (an item is both, concatenated; paper: 18)"})
    category_column: str = field(default="genres", metadata={
        "help": "catalogue column whose first comma-separated value is the item's category (absent: one "
                "category for all)"})
    max_len: int = field(default=50, metadata={"help": "most recent behaviours read per history"})
    # --- interest extractor and evolution -----------------------------------------------------
    evolution: str = field(default="augru", metadata={
        "help": "interest evolution layer: gru (GRU, then attention pooling), aigru (attention scales the GRU "
                "input), agru (attention replaces the update gate), augru (attention scales the update gate)"})
    aux_loss: bool = field(default=True, metadata={
        "help": "auxiliary loss: each extractor hidden state must tell the next clicked item from a sampled "
                "non-clicked one"})
    aux_weight: float = field(default=1.0, metadata={"help": "weight of the auxiliary loss"})
    attention_hidden: int = field(default=80, metadata={"help": "hidden width of the attention (local activation) MLP"})
    mlp: list[int] = field(default_factory=lambda: [200, 80], metadata={"help": "hidden widths of the top MLP"})
    # --- training (the rest: llmrec.training.TrainerSettings) ---------------------------------
    epochs: float = field(default=5.0, metadata={"help": "passes over the training (positive + negative) examples"})
    batch_size: int = field(default=128, metadata={"help": "examples per step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW peak learning rate"})
    seed: int = field(default=42, metadata={"help": "seed for initialisation, data order and negatives"})
    output_dir: str = field(default="runs/dien", metadata={"help": "where checkpoints (safetensors) and the final "
                                                                    "model go"})

    def __post_init__(self) -> None:
        if self.evolution not in EVOLUTIONS:
            raise ValueError(f"DIENConfig.evolution must be one of {list(EVOLUTIONS)}, got {self.evolution!r}")
        for name in ("embedding_dim", "max_len", "attention_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"DIENConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.aux_weight < 0:
            raise ValueError(f"DIENConfig.aux_weight must be >= 0, got {self.aux_weight}")
        self.mlp = [int(w) for w in self.mlp]
        if not self.mlp or min(self.mlp) < 1:
            raise ValueError(f"DIENConfig.mlp must be positive widths, got {self.mlp}")
