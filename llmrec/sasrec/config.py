"""Settings of SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018), the
ID-based baseline LEARN is compared with. One dataclass: model, objective and training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmrec.training import TrainerSettings

LOSSES = ("ce", "bce")


@dataclass
class SASRecConfig(TrainerSettings):
    """SASRec model and training settings; every field's help text feeds the CLI."""

    # --- model ------------------------------------------------------------------------------
    d_model: int = field(default=64, metadata={"help": "item-embedding and hidden width"})
    n_layers: int = field(default=2, metadata={"help": "causal self-attention blocks"})
    n_heads: int = field(default=1, metadata={"help": "attention heads per block"})
    dropout: float = field(default=0.2, metadata={"help": "dropout on embeddings, attention and MLP"})
    max_len: int = field(default=50, metadata={
        "help": "longest history read; longer training sequences are cut into windows and evaluation "
                "keeps the most recent events"})
    loss: str = field(default="ce", metadata={
        "help": "ce: full softmax cross-entropy over the training vocabulary at every position (stronger "
                "than the original, Klenitskiy & Vasilev 2023); bce: the original objective, binary "
                "cross-entropy of the next item against one sampled negative outside the sequence"})
    # --- training (the rest: llmrec.training.TrainerSettings) ---------------------------------
    epochs: float = field(default=20.0, metadata={"help": "passes over the training sequences"})
    seed: int = field(default=42, metadata={"help": "seed for initialisation, data order, negatives and dropout"})
    output_dir: str = field(default="runs/sasrec", metadata={
        "help": "where checkpoints (safetensors) and the final model go"})

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"SASRecConfig.loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"SASRecConfig: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.max_len < 1:
            raise ValueError(f"SASRecConfig.max_len must be >= 1, got {self.max_len}")
