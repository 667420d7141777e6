"""Settings of the two-tower retrieval model with a multi-task rating head (the model TensorFlow
Recommenders teaches on MovieLens: in-batch softmax retrieval, an MLP rating head, per-task loss
weights). One dataclass: towers, objectives and training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmrec.training import TrainerSettings

SCORES = ("retrieval", "rating")


@dataclass
class TwoTowerConfig(TrainerSettings):
    """Two-tower model and training settings; every field's help text feeds the CLI."""

    # --- towers ----------------------------------------------------------------------------------
    dim: int = field(default=64, metadata={"help": "width of the user and item vectors the towers output"})
    embedding_dim: int = field(default=64, metadata={"help": "width of the item-ID embeddings inside the towers"})
    hidden: int = field(default=128, metadata={"help": "hidden width of the tower and rating-head MLPs"})
    dropout: float = field(default=0.1, metadata={"help": "dropout inside the MLPs"})
    max_history: int = field(default=256, metadata={
        "help": "history events the user tower reads (the user is their history: mean-pooled item embeddings, "
                "rating-weighted ones where the data has ratings, and the user's rating offset)"})
    history_keep: float = field(default=0.8, metadata={
        "help": "training: each of the user's other events is kept in the history with this probability "
                "(the target itself never is), so the tower learns from partial histories"})
    user_id: bool = field(default=False, metadata={
        "help": "the user tower also reads a user-ID embedding (TFRS's user tower), learnt from the training "
                "events; the scorer finds the user in the history's ``user`` attribute (the TFRS top-K and "
                "rating evaluators set it), other users get the padding row (history only)"})
    text_embeddings: str | None = field(default=None, metadata={
        "help": "folder written by `llmrec embed` (item id -> text vector): the item tower adds a projection of "
                "it, so items without training events (cold) still get a vector"})
    # --- objectives -----------------------------------------------------------------------------
    retrieval_weight: float = field(default=1.0, metadata={"help": "weight of the in-batch softmax retrieval loss"})
    rating_weight: float = field(default=1.0, metadata={"help": "weight of the rating head's MSE loss"})
    temperature: float = field(default=0.05, metadata={
        "help": "softmax temperature over cosine similarities of the L2-normalised tower outputs"})
    logq_correction: bool = field(default=True, metadata={
        "help": "subtract log item popularity (the in-batch sampling probability) from the logits while training "
                "(Yi et al. 2019 sampling-bias correction)"})
    remove_accidental_hits: bool = field(default=True, metadata={
        "help": "mask in-batch negatives that are the row's own positive item (same item in another row)"})
    rating_dot: bool = field(default=False, metadata={
        "help": "add the dot product of the user and item tower outputs to the rating (biased matrix "
                "factorisation on the towers: mu + b_item + offset + <user, item> + MLP)"})
    rating_dropout: float = field(default=0.0, metadata={
        "help": "dropout on the tower outputs on the rating path only (regularises the rating head without "
                "touching retrieval)"})
    score: str = field(default="retrieval", metadata={
        "help": "what the scorer returns: retrieval (user-item similarity, for ranking) or rating (the rating "
                "head's prediction, for the rating evaluator)"})
    # --- training (the rest: llmrec.training.TrainerSettings) ----------------------------------
    epochs: float = field(default=20.0, metadata={"help": "passes over the training events"})
    batch_size: int = field(default=1024, metadata={"help": "events per step (also the in-batch negatives)"})
    learning_rate: float = field(default=2e-3, metadata={"help": "AdamW peak learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=42, metadata={"help": "seed for initialisation, data order and history sampling"})
    output_dir: str = field(default="runs/two_tower", metadata={
        "help": "where checkpoints (safetensors) and the final model go"})

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"TwoTowerConfig.score must be one of {list(SCORES)}, got {self.score!r}")
        for name in ("dim", "embedding_dim", "hidden", "max_history"):
            if getattr(self, name) < 1:
                raise ValueError(f"TwoTowerConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("dropout", "rating_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TwoTowerConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 < self.history_keep <= 1.0:
            raise ValueError(f"TwoTowerConfig.history_keep must be in (0, 1], got {self.history_keep}")
        if self.temperature <= 0:
            raise ValueError(f"TwoTowerConfig.temperature must be > 0, got {self.temperature}")
        if self.retrieval_weight < 0 or self.rating_weight < 0 or self.retrieval_weight + self.rating_weight == 0:
            raise ValueError("TwoTowerConfig.retrieval_weight and rating_weight must be >= 0 and not both 0, got "
                             f"{self.retrieval_weight}, {self.rating_weight}")
