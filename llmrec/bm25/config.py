"""Settings of the BM25 text scorer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BM25Config:
    query_items: int = field(default=5, metadata={
        "help": "the query is the text of the user's most recent this many history items"})

    def __post_init__(self) -> None:
        if self.query_items < 1:
            raise ValueError(f"query_items must be >= 1, got {self.query_items}")
