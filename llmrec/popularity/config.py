"""Settings of the popularity folder's scorers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ItemPriorConfig:
    prior_weight: float = field(default=5.0, metadata={
        "help": "pseudo-ratings at the global mean added to every item (shrinks items with few ratings)"})


@dataclass
class NewestConfig:
    column: str = field(default="release_date", metadata={"help": "catalogue column holding the release date"})
