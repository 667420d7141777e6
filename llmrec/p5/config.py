"""Settings of P5 (Geng et al., "Recommendation as Language Processing", RecSys 2022) on llmrec:
the item index, the prompt families, the text-to-text model and its training, and decoding.
One dataclass; every field's help text feeds the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmrec.training import TrainerSettings

ARCHITECTURES = ("t5", "causal")
DECODINGS = ("likelihood", "beam")
TRAIN_FAMILIES = ("sequential", "direct_yesno", "direct_pick", "rating", "explanation")


@dataclass
class P5Config(TrainerSettings):
    """P5 model, prompts, training and decoding settings."""

    # --- item index ---------------------------------------------------------------------------
    index: str = field(default="collaborative", metadata={
        "help": "item indexing scheme: random, sequential, collaborative, semantic, or original (LEAKY: "
                "numbers items while walking whole sequences, test events included; only to measure the leak)"})
    index_seed: int = field(default=0, metadata={"help": "seed of the index (random permutation, clustering)"})
    semantic_levels: int = field(default=3, metadata={"help": "semantic index: codebook levels"})
    semantic_codebook: int = field(default=32, metadata={"help": "semantic index: codes per level"})
    cf_clusters: int = field(default=20, metadata={"help": "collaborative index: children of every node"})
    cf_leaf_size: int = field(default=100, metadata={"help": "collaborative index: most items in a leaf"})
    encoder: str = field(default="minilm", metadata={"help": "semantic index: sentence encoder of the item text"})
    # --- prompts and training examples --------------------------------------------------------
    families: list[str] = field(default_factory=lambda: ["sequential", "direct_yesno", "direct_pick", "rating"],
                                metadata={"help": "prompt families trained on (prompts/p5/<family>/); rating "
                                                  "needs ratings and explanation a review column, else skipped"})
    family_share: float = field(default=0.25, metadata={
        "help": "examples of every family other than sequential, as a share of the sequential examples"})
    targets_per_user: int = field(default=0, metadata={
        "help": "sequential targets per user: the most recent N known next items (0: every position)"})
    max_history: int = field(default=20, metadata={"help": "most recent history items written into a prompt"})
    pick_candidates: int = field(default=10, metadata={"help": "direct_pick: candidates listed (1 true + negatives)"})
    prompt: str = field(default="seen_1", metadata={
        "help": "sequential phrasing used for scoring: seen_1..seen_3 (trained on) or held_out (never trained on)"})
    # --- model --------------------------------------------------------------------------------
    architecture: str = field(default="t5", metadata={
        "help": "t5: a small encoder-decoder built from a config with a word-level tokenizer (CPU); causal: "
                "a packaged or local causal LM (base_model) with LoRA and the ID tokens added (GPU)"})
    d_model: int = field(default=128, metadata={"help": "t5: hidden width"})
    d_ff: int = field(default=512, metadata={"help": "t5: feed-forward width"})
    n_layers: int = field(default=2, metadata={"help": "t5: encoder layers (and as many decoder layers)"})
    n_heads: int = field(default=4, metadata={"help": "t5: attention heads"})
    dropout: float = field(default=0.1, metadata={"help": "t5: dropout"})
    base_model: str = field(default="smollm2-135m", metadata={
        "help": "causal: packaged model name or local folder (never downloaded at run time)"})
    lora_r: int = field(default=16, metadata={"help": "causal: LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "causal: LoRA alpha"})
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], metadata={
        "help": "causal: modules that get LoRA adapters"})
    # --- decoding -----------------------------------------------------------------------------
    decoding: str = field(default="likelihood", metadata={
        "help": "likelihood: every candidate scored by the log-likelihood of its ID (full ranking); beam: "
                "constrained beam search, candidates outside the beams rank last"})
    num_beams: int = field(default=20, metadata={"help": "beam search: beams (= items returned per user)"})
    constrained: bool = field(default=True, metadata={
        "help": "beam search through the trie of valid IDs (off only to measure invalid IDs)"})
    score_batch_size: int = field(default=16, metadata={"help": "users per scoring forward pass"})
    # --- training (the rest: llmrec.training.TrainerSettings) ---------------------------------
    epochs: float = field(default=10.0, metadata={"help": "passes over the training examples"})
    batch_size: int = field(default=64, metadata={"help": "examples per device per step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW peak learning rate"})
    warmup_steps: float = field(default=0.05, metadata={"help": "linear warm-up (steps, or a share when below 1)"})
    seed: int = field(default=42, metadata={"help": "seed of initialisation, example sampling and data order"})
    output_dir: str = field(default="runs/p5", metadata={
        "help": "where checkpoints, the final model, its tokenizer and the item index go"})

    def __post_init__(self) -> None:
        if isinstance(self.families, str):
            self.families = [f for f in self.families.split(",") if f]
        if isinstance(self.target_modules, str):
            self.target_modules = [m for m in self.target_modules.split(",") if m]
        bad = [f for f in self.families if f not in TRAIN_FAMILIES]
        if bad or not self.families:
            raise ValueError(f"P5Config.families must be a non-empty subset of {list(TRAIN_FAMILIES)}, got "
                             f"{self.families}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"P5Config.architecture must be one of {list(ARCHITECTURES)}, got {self.architecture!r}")
        if self.decoding not in DECODINGS:
            raise ValueError(f"P5Config.decoding must be one of {list(DECODINGS)}, got {self.decoding!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"P5Config: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.max_history < 1 or self.pick_candidates < 2 or self.num_beams < 1:
            raise ValueError("P5Config: max_history >= 1, pick_candidates >= 2 and num_beams >= 1 are required")
        if not 0 <= self.family_share <= 10:
            raise ValueError(f"P5Config.family_share must be in [0, 10], got {self.family_share}")

    def index_options(self) -> dict:
        """Options of the chosen scheme (see llmrec.p5.indexing)."""
        if self.index in ("random",):
            return {"seed": self.index_seed}
        if self.index == "collaborative":
            return {"n_clusters": self.cf_clusters, "leaf_size": self.cf_leaf_size, "seed": self.index_seed}
        if self.index == "semantic":
            return {"levels": self.semantic_levels, "codebook_size": self.semantic_codebook,
                    "seed": self.index_seed, "encoder": self.encoder}
        return {}
