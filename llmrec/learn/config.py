"""Settings of LEARN (Jia et al., "Knowledge Adaptation from LLM to Recommendation for Practical
Industrial Application", arXiv 2405.03988): one dataclass for content-embedding generation (CEG),
one for the two-tower model and its training.

Every field carries its help text, so the CLI, the scripts and the docs read from one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from llmrec.training import TrainerSettings

ITEM_TOWERS = ("pch", "attention", "projection")
CVR_LABELS = ("auto", "rating", "label", "interaction", "off")
DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class CEGConfig:
    """How a frozen language model turns each item's text into content embeddings."""

    text_model: str = field(default="minilm", metadata={
        "help": "frozen model that reads item texts: 'minilm' (the packaged all-MiniLM-L6-v2 encoder), a "
                "packaged LLM of llmrec.llm (smollm2-135m, qwen2.5-0.5b, gemma3-270m; decoders), a .gguf "
                "file, or a local Hugging Face model folder (encoder or decoder; never downloaded)"})
    layer: int = field(default=-1, metadata={
        "help": "which hidden-state layer is mean-pooled: 0 = token embeddings, 1..N = block outputs, "
                "negative counts from the last (-1 = last layer)"})
    max_text_tokens: int = field(default=128, metadata={
        "help": "item texts are cut to this many tokens"})
    segments: int = field(default=4, metadata={
        "help": "each text's tokens are cut into this many contiguous segments, each mean-pooled on its "
                "own; the attention item tower reads the segments, every other part their token-weighted "
                "mean (which equals plain mean pooling over the whole text)"})
    encode_batch_size: int = field(default=64, metadata={
        "help": "texts per forward pass (texts are sorted by token length first, so a batch holds "
                "similar lengths and little padding)"})
    chunk_size: int = field(default=1024, metadata={
        "help": "texts per cache chunk: each chunk is written atomically when done, so an interrupted "
                "run resumes at the first missing chunk"})
    cache_dir: str = field(default="auto", metadata={
        "help": "folder of the on-disk cache, keyed by (model, layer, max_text_tokens, segments, text hash); "
                "auto: $LLMREC_CACHE_DIR/ceg (default ~/.cache/llmrec/ceg); empty string disables caching"})
    device: str = field(default="auto", metadata={
        "help": "torch device for the frozen model: auto (cuda if present, else cpu), cpu, cuda, cuda:1"})
    dtype: str = field(default="float32", metadata={
        "help": "weights dtype of the frozen model: float32 (CPU), float16 or bfloat16 (GPU)"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow a local model folder's own Python code to run (off: only built-in architectures)"})

    def __post_init__(self) -> None:
        if min(self.segments, self.max_text_tokens, self.encode_batch_size, self.chunk_size) < 1:
            raise ValueError("CEGConfig: segments, max_text_tokens, encode_batch_size and chunk_size must be "
                             f">= 1, got {self.segments}, {self.max_text_tokens}, {self.encode_batch_size}, "
                             f"{self.chunk_size}")
        if self.dtype not in DTYPES:
            raise ValueError(f"CEGConfig.dtype must be one of {list(DTYPES)}, got {self.dtype!r}")


@dataclass
class LearnConfig(TrainerSettings):
    """The LEARN two-tower model (PCH user tower, one of three item towers, CVR head) and its training."""

    # --- model ------------------------------------------------------------------------------
    item_tower: str = field(default="pch", metadata={
        "help": "pch: the user tower's own weights read the item as a one-item sequence; attention: a "
                "small bidirectional self-attention encoder over the item's CEG segments; projection: "
                "the item's pooled CEG embedding through one linear layer"})
    d_model: int = field(default=128, metadata={"help": "width of the towers (CEG vectors are projected to it)"})
    n_layers: int = field(default=2, metadata={"help": "causal Transformer blocks in the PCH user tower"})
    n_heads: int = field(default=2, metadata={"help": "attention heads per block"})
    item_layers: int = field(default=1, metadata={"help": "attention item tower: encoder blocks"})
    dropout: float = field(default=0.1, metadata={"help": "dropout inside both towers"})
    max_len: int = field(default=50, metadata={
        "help": "longest history the user tower reads; longer training sequences are cut into windows "
                "and evaluation keeps the most recent events"})
    temperature: float = field(default=0.07, metadata={
        "help": "InfoNCE temperature over cosine similarities (lower = sharper)"})
    mask_user_items: bool = field(default=True, metadata={
        "help": "exclude from a position's negatives the other items of the same user's sequence "
                "(accidental hits: true positives of that user at another time)"})
    cvr_label: str = field(default="auto", metadata={
        "help": "label of the auxiliary CVR loss: rating (rating >= cvr_threshold), label (the data's "
                "0/1 label column), interaction (the true next item = 1, one in-batch negative = 0: for "
                "data with neither, e.g. the Amazon RecBole files), off, or auto (label, else rating, "
                "else off)"})
    cvr_threshold: float = field(default=4.0, metadata={"help": "rating at or above which an event converts"})
    cvr_weight: float = field(default=0.1, metadata={
        "help": "weight of the CVR loss against the InfoNCE loss (0 disables it)"})
    # --- training (the rest: llmrec.training.TrainerSettings) ---------------------------------
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_steps: float = field(default=0.05, metadata={
        "help": "linear warm-up: a number of steps, or a fraction of all steps when below 1"})
    output_dir: str = field(default="runs/learn", metadata={
        "help": "where checkpoints (safetensors) and the final model go"})

    def __post_init__(self) -> None:
        if self.item_tower not in ITEM_TOWERS:
            raise ValueError(f"LearnConfig.item_tower must be one of {list(ITEM_TOWERS)}, got {self.item_tower!r}")
        if self.cvr_label not in CVR_LABELS:
            raise ValueError(f"LearnConfig.cvr_label must be one of {list(CVR_LABELS)}, got {self.cvr_label!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"LearnConfig: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.temperature <= 0:
            raise ValueError(f"LearnConfig.temperature must be > 0, got {self.temperature}")
        if self.max_len < 1:
            raise ValueError(f"LearnConfig.max_len must be >= 1, got {self.max_len}")


@dataclass
class LearnRunConfig(LearnConfig, CEGConfig):
    """Everything the ``learn`` scorer needs: the content embeddings (CEG) and the model + training."""

    def __post_init__(self) -> None:
        CEGConfig.__post_init__(self)
        LearnConfig.__post_init__(self)

    def ceg_config(self) -> CEGConfig:
        return CEGConfig(**{f.name: getattr(self, f.name) for f in fields(CEGConfig)})

    def learn_config(self) -> LearnConfig:
        return LearnConfig(**{f.name: getattr(self, f.name) for f in fields(LearnConfig)})
