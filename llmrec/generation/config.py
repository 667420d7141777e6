"""Settings of the embedding ranker (the generation paradigm's simplest member)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmrec.embed.cache import DEFAULT_CACHE_DIR
from llmrec.embed.encoder import DEFAULT_MODEL


@dataclass
class EmbeddingRankerConfig:
    model: str = field(default=DEFAULT_MODEL, metadata={
        "help": "sentence-transformers model name or folder; the default is the packaged all-MiniLM-L6-v2 (offline)"})
    batch_size: int = field(default=64, metadata={"help": "texts per encoder batch"})
    cache_dir: str | None = field(default=DEFAULT_CACHE_DIR, metadata={
        "help": "embedding cache folder, keyed by model and text hash; None encodes every time"})
    recency_decay: float | None = field(default=None, metadata={
        "help": "half-life in events for a recency-weighted mean of the history (None: plain mean); "
                "with 5, the item 5 events before the latest counts half as much"})
    template: str | None = field(default=None, metadata={
        "help": "text template rendering an item (see llmrec.data.text); None uses the data set's default"})
    fields: list[str] | None = field(default=None, metadata={
        "help": "item columns rendered into the text (None: every text column)"})
    show_progress: bool = field(default=True, metadata={"help": "show a progress bar while encoding"})
    device: str | None = field(default=None, metadata={"help": "torch device for the encoder (None: automatic)"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow a model folder's own Python code to run (only for models you trust)"})

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.recency_decay is not None and not self.recency_decay > 0:
            raise ValueError(f"recency_decay must be a positive half-life in events or None, got {self.recency_decay}")
