"""Settings of item-based collaborative filtering."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ItemCFConfig:
    recency_decay: float | None = field(default=5.0, metadata={
        "help": "half-life in events of a history item's weight (recent items count more); None: all equal"})

    def __post_init__(self) -> None:
        if self.recency_decay is not None and not self.recency_decay > 0:
            raise ValueError(f"recency_decay must be a positive half-life or None, got {self.recency_decay}")
