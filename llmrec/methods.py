"""Every scorer the ``evaluate`` command can build, registered in one place.

A builder takes the split (so it can learn from ``split.train`` only, never from test events) and
keyword options, and returns a :class:`llmrec.scoring.Scorer`. Method modules are imported lazily so
``llmrec evaluate --scorers popularity`` does not pay for importing sentence-transformers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmrec.data.splits import Split
from llmrec.scoring import Scorer

ScorerBuilder = Callable[..., Scorer]


def _popularity(split: Split, part: str = "test", **_: Any) -> Scorer:
    from llmrec.popularity import PopularityScorer

    # Popularity may count everything known before the evaluated part (train, + valid for test).
    return PopularityScorer(split.known(part))


def _embedding(split: Split, **options: Any) -> Scorer:
    from llmrec.generation import EmbeddingRanker, EmbeddingRankerConfig

    fields = {k: v for k, v in options.items() if k in EmbeddingRankerConfig.__dataclass_fields__}
    return EmbeddingRanker(split.dataset.items, EmbeddingRankerConfig(**fields))


SCORERS: dict[str, ScorerBuilder] = {
    "popularity": _popularity,
    "embedding": _embedding,
}


def build_scorer(name: str, split: Split, **options: Any) -> Scorer:
    try:
        builder = SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; choose from {sorted(SCORERS)}") from None
    return builder(split, **options)
