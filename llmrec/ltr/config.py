"""Settings of the learned hybrid ranker (``ltr``)."""

from __future__ import annotations

from dataclasses import dataclass, field

MODELS = ("lambdamart", "logistic")
DEFAULT_FEATURES = ["popularity", "itemcf", "bm25", "embedding", "sasrec", "llmrank"]


@dataclass
class LTRConfig:
    """Which scorers become features, how the fitting lists are drawn, and the ranking model."""

    features: list[str] = field(default_factory=lambda: list(DEFAULT_FEATURES), metadata={
        "help": "registered scorers whose scores become features (each gives its raw score, its z-score and "
                "its rank within the candidate list); options for each come from --options NAME.key=value"})
    model: str = field(default="lambdamart", metadata={
        "help": "lambdamart: LightGBM's LGBMRanker (lambdarank objective, early stopping on held-out fitting "
                "users); logistic: scikit-learn logistic regression on the same features (a linear blend)"})
    fit_users: int = field(default=500, metadata={
        "help": "training users whose last known event becomes a fitting target (seeded sample; each gives "
                "one list of the target plus num_negatives sampled items)"})
    num_negatives: int = field(default=19, metadata={
        "help": "negatives per fitting list, drawn like the evaluator's sampled candidates (outside the "
                "user's history, seeded per user and history, never from the target)"})
    early_stopping_share: float = field(default=0.2, metadata={
        "help": "share of the fitting users held out to stop boosting (lambdamart) and to report the fit's "
                "own held-out NDCG@10"})
    n_estimators: int = field(default=300, metadata={"help": "most boosting rounds (lambdamart)"})
    learning_rate: float = field(default=0.05, metadata={"help": "boosting learning rate (lambdamart)"})
    num_leaves: int = field(default=15, metadata={"help": "leaves per tree (lambdamart)"})
    min_child_samples: int = field(default=20, metadata={"help": "fewest rows in a leaf (lambdamart)"})
    first_stage: str = field(default="", metadata={
        "help": "full ranking / long lists: a registered scorer (e.g. itemcf) whose top rerank_top candidates "
                "(history excluded) the hybrid reranks, the rest keeping its order below them; the fitting lists "
                "are then its top lists of the fitting users that hold their target. Empty: score every candidate"})
    rerank_top: int = field(default=20, metadata={"help": "candidates the hybrid reranks after first_stage"})
    fit_load: list[str] = field(default_factory=list, metadata={
        "help": "feature scorers whose saved model (--load NAME=FOLDER) also scores the fitting lists: honest only "
                "because the fitting lists then leave out the users it trained on (FOLDER/train_users.json, which "
                "it must hold), e.g. a fine-tuned LLM reranker too slow to train twice"})
    refit: bool = field(default=True, metadata={
        "help": "rebuild (retrain) the feature scorers on every known event for scoring; False scores with "
                "the ones built for fitting, which never saw the fitting targets (saves a second training)"})
    output_dir: str = field(default="runs/ltr", metadata={
        "help": "where the ranking model (LightGBM text model or JSON coefficients), its report and the trained "
                "feature scorers (fit/NAME, final/NAME; reused when present) are written"})
    seed: int = field(default=0, metadata={"help": "seed of the fitting users, their negatives and the model"})
    name: str = field(default="ltr", metadata={"help": "the scorer's name in result tables"})

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"LTRConfig.model must be one of {MODELS}, got {self.model!r}")
        if not self.features:
            raise ValueError("LTRConfig.features names no scorer; give at least one (e.g. popularity itemcf)")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"LTRConfig.features names a scorer twice: {self.features}")
        if "ltr" in self.features or self.name in self.features:
            raise ValueError("LTRConfig.features cannot contain the ltr scorer itself")
        if self.fit_users < 10:
            raise ValueError(f"LTRConfig.fit_users must be >= 10, got {self.fit_users}")
        if self.num_negatives < 1:
            raise ValueError(f"LTRConfig.num_negatives must be >= 1, got {self.num_negatives}")
        if not 0 < self.early_stopping_share < 0.9:
            raise ValueError(f"LTRConfig.early_stopping_share must lie in (0, 0.9), got {self.early_stopping_share}")
        if self.rerank_top < 2:
            raise ValueError(f"LTRConfig.rerank_top must be >= 2, got {self.rerank_top}")
        if self.n_estimators < 1 or self.num_leaves < 2 or self.learning_rate <= 0:
            raise ValueError("LTRConfig: need n_estimators >= 1, num_leaves >= 2 and learning_rate > 0, got "
                             f"{self.n_estimators}, {self.num_leaves}, {self.learning_rate}")
