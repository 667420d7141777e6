"""Recall channels for multi-channel candidate generation, each also a Scorer.

A channel answers two questions about a user's history: which ``k`` items should be recalled
(``recall``: best first, history items left out) and how good is each of these candidates
(``score``: the Scorer protocol, so every channel is also a baseline the evaluator can rank with).

Channels learn only from what the split says a model may know (``split.known(part)``) and from item
text; none sees an evaluation target.

* ``popularity``: interaction counts.
* ``itemcf``: item-to-item co-occurrence within users' known sequences, cosine-normalised
  (``|U_i ∩ U_j| / sqrt(|U_i| |U_j|)``), summed over the history.
* ``bm25``: BM25 (bm25s) over item text, the query being the text of the most recent history items.
* ``embedding``: the generation paradigm's embedding ranker (mean history embedding, cosine).

Trained recallers (SASRec and the like) arrive later: anything that is a Scorer becomes a channel
through :class:`ScorerChannel` (it scores the whole item vocabulary), registered under a name with
:func:`register_channel`::

    register_channel("sasrec", lambda ctx, **kw: ScorerChannel("sasrec", train_sasrec(ctx.train), ctx.vocabulary))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import sparse

from llmrec.data.schema import ITEM, USER
from llmrec.scoring import Candidates, Histories, Scorer, per_user_candidates

logger = logging.getLogger(__name__)


@runtime_checkable
class RecallChannel(Protocol):
    """A candidate source: ``recall`` returns each user's top ``k`` items (history excluded)."""

    name: str

    def recall(self, histories: Histories, k: int) -> list[list[str]]: ...

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray: ...


@dataclass
class RecallContext:
    """What channels may learn from: known interactions and the item catalogue with its text."""

    train: pd.DataFrame
    """Interactions known before the evaluated part (``split.known(part)``): never its targets."""
    items: pd.DataFrame
    """The catalogue, indexed by item id."""
    item_text: Mapping[str, str]
    """Item id -> the text channels read (BM25, embeddings)."""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def vocabulary(self) -> list[str]:
        """Every catalogue item (text-based channels can recall items nobody has touched yet)."""
        return [str(i) for i in self.items.index]


def _top_k_excluding(scores: np.ndarray, ids: np.ndarray, exclude: set[str], k: int) -> list[str]:
    """The ``k`` best ids by score, skipping ``exclude``; ties broken by id order (stable)."""
    take = min(len(ids), k + len(exclude))
    if take <= 0:
        return []
    part = np.argpartition(-scores, take - 1)[:take] if take < len(ids) else np.arange(len(ids))
    part = part[np.lexsort((part, -scores[part]))]
    out = [str(ids[i]) for i in part if str(ids[i]) not in exclude]
    return out[:k]


class _VectorChannel:
    """Shared code for channels that produce one score per vocabulary item for each user."""

    name = "vector"

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = np.asarray([str(i) for i in ids], dtype=object)
        self.position = {item: i for i, item in enumerate(self.ids)}

    def user_scores(self, history: Sequence[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    #: score of a candidate the channel has never seen (lower than any real score it gives)
    unknown_score: float = -1.0

    def recall(self, histories: Histories, k: int) -> list[list[str]]:
        return [_top_k_excluding(self.user_scores(h), self.ids, {str(i) for i in h}, k) for h in histories]

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        rows = per_user_candidates(candidates, len(histories))
        out = np.empty((len(histories), len(rows[0]) if rows else 0), dtype=np.float64)
        for u, (hist, cands) in enumerate(zip(histories, rows)):
            full = self.user_scores(hist)
            pos = np.array([self.position.get(str(c), -1) for c in cands], dtype=np.int64)
            out[u] = np.where(pos >= 0, full[np.maximum(pos, 0)], self.unknown_score)
        return out


class PopularityChannel(_VectorChannel):
    """Most interacted-with items among the known interactions."""

    name = "popularity"
    unknown_score = 0.0

    def __init__(self, train: pd.DataFrame) -> None:
        counts = train[ITEM].astype(str).value_counts()
        super().__init__(counts.index)
        self.counts = counts.to_numpy(dtype=np.float64)

    def user_scores(self, history: Sequence[str]) -> np.ndarray:
        return self.counts


class ItemCFChannel(_VectorChannel):
    """Item-based collaborative filtering from co-occurrence in users' known histories.

    ``recency_decay`` (half-life in events, None = off) lets recent history items count more.
    """

    name = "itemcf"
    unknown_score = 0.0

    def __init__(self, train: pd.DataFrame, recency_decay: float | None = 5.0) -> None:
        users = pd.Categorical(train[USER].astype(str))
        items = pd.Categorical(train[ITEM].astype(str))
        super().__init__(items.categories)
        x = sparse.csr_matrix((np.ones(len(train)), (users.codes, items.codes)),
                              shape=(len(users.categories), len(items.categories)))
        x.data[:] = 1.0  # the constructor sums repeated (user, item) pairs; each counts once
        co = (x.T @ x).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        norm = 1.0 / np.sqrt(np.maximum(np.asarray(x.sum(axis=0)).ravel(), 1.0))
        self.similarity = sparse.diags(norm) @ co @ sparse.diags(norm)
        self.similarity = self.similarity.tocsr()
        self.recency_decay = recency_decay

    def user_scores(self, history: Sequence[str]) -> np.ndarray:
        pos = [self.position.get(str(i), -1) for i in history]
        weights = np.ones(len(pos)) if self.recency_decay is None else \
            0.5 ** (np.arange(len(pos))[::-1] / self.recency_decay)
        known = [(p, w) for p, w in zip(pos, weights) if p >= 0]
        if not known:
            return np.zeros(len(self.ids))
        rows = np.array([p for p, _ in known])
        w = np.array([wt for _, wt in known])
        return np.asarray(self.similarity[rows].T @ w).ravel()


class BM25Channel(_VectorChannel):
    """BM25 over item text; the query is the text of the user's ``query_items`` most recent items."""

    name = "bm25"
    unknown_score = 0.0

    def __init__(self, item_text: Mapping[str, str], query_items: int = 5, show_progress: bool = False) -> None:
        import bm25s

        # bm25s sets its own logger to DEBUG, which would print index-building chatter on every run
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        ids = list(item_text)
        super().__init__(ids)
        self._bm25s = bm25s
        self.texts = [str(item_text[i] or "") for i in ids]
        self.query_items = query_items
        corpus = bm25s.tokenize(self.texts, stopwords="en", return_ids=False, show_progress=show_progress)
        self.retriever = bm25s.BM25()
        self.retriever.index(corpus, show_progress=show_progress)

    def user_scores(self, history: Sequence[str]) -> np.ndarray:
        recent = [self.texts[self.position[str(i)]] for i in history if str(i) in self.position]
        recent = recent[-self.query_items:]
        tokens = self._bm25s.tokenize(" ".join(recent), stopwords="en", return_ids=False, show_progress=False)
        query = tokens[0] if tokens else []
        query = [t for t in query if t]
        if not query:
            return np.zeros(len(self.ids))
        return np.asarray(self.retriever.get_scores(query), dtype=np.float64)


class ScorerChannel(_VectorChannel):
    """Any Scorer as a recall channel: it scores the whole ``vocabulary`` for each user.

    The slot for trained recallers (SASRec, two-tower, ...): train them on known interactions, wrap.
    """

    def __init__(self, name: str, scorer: Scorer, vocabulary: Sequence[str]) -> None:
        super().__init__(vocabulary)
        self.name = name
        self.scorer = scorer

    def user_scores(self, history: Sequence[str]) -> np.ndarray:
        return np.asarray(self.scorer.score([list(history)], list(self.ids))[0], dtype=np.float64)

    def recall(self, histories: Histories, k: int) -> list[list[str]]:
        # One batched score call over the vocabulary, in blocks of users to bound memory.
        out: list[list[str]] = []
        block = max(1, 2_000_000 // max(1, len(self.ids)))
        for start in range(0, len(histories), block):
            chunk = [list(h) for h in histories[start:start + block]]
            scores = np.asarray(self.scorer.score(chunk, list(self.ids)), dtype=np.float64)
            out += [_top_k_excluding(s, self.ids, {str(i) for i in h}, k) for s, h in zip(scores, chunk)]
        return out

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        return self.scorer.score(histories, candidates)


class EmbeddingChannel(ScorerChannel):
    """The embedding ranker (llmrec.generation) as a channel: cosine of mean history embedding."""

    def __init__(self, ranker: Any) -> None:
        super().__init__("embedding", ranker, list(ranker.item_ids))

    def recall(self, histories: Histories, k: int) -> list[list[str]]:
        users = self.scorer.user_vectors(histories)
        out: list[list[str]] = []
        block = 1024
        for start in range(0, len(histories), block):
            sims = users[start:start + block] @ self.scorer.item_vectors.T
            for s, h in zip(sims, histories[start:start + block]):
                out.append(_top_k_excluding(np.asarray(s, dtype=np.float64), self.ids, {str(i) for i in h}, k))
        return out


# --- registry --------------------------------------------------------------------------------

ChannelFactory = Callable[..., RecallChannel]


def _popularity(ctx: RecallContext, **_: Any) -> RecallChannel:
    return PopularityChannel(ctx.train)


def _itemcf(ctx: RecallContext, recency_decay: float | None = 5.0, **_: Any) -> RecallChannel:
    return ItemCFChannel(ctx.train, recency_decay=recency_decay)


def _bm25(ctx: RecallContext, query_items: int = 5, **_: Any) -> RecallChannel:
    return BM25Channel(ctx.item_text, query_items=query_items)


def _embedding(ctx: RecallContext, encoder: Any = None, **options: Any) -> RecallChannel:
    from llmrec.generation.config import EmbeddingRankerConfig
    from llmrec.generation.model import EmbeddingRanker

    fields = {k: v for k, v in options.items() if k in EmbeddingRankerConfig.__dataclass_fields__}
    return EmbeddingChannel(EmbeddingRanker(ctx.items, EmbeddingRankerConfig(**fields), encoder=encoder))


CHANNELS: dict[str, ChannelFactory] = {
    "popularity": _popularity,
    "itemcf": _itemcf,
    "bm25": _bm25,
    "embedding": _embedding,
}


def register_channel(name: str, factory: ChannelFactory) -> None:
    """Make a recall channel available by name (e.g. a trained SASRec wrapped in ScorerChannel)."""
    CHANNELS[name] = factory


def build_channel(name: str, ctx: RecallContext, **options: Any) -> RecallChannel:
    try:
        factory = CHANNELS[name]
    except KeyError:
        raise ValueError(f"unknown recall channel {name!r}; choose from {sorted(CHANNELS)}") from None
    return factory(ctx, **options)


__all__ = [
    "BM25Channel", "CHANNELS", "EmbeddingChannel", "ItemCFChannel", "PopularityChannel", "RecallChannel",
    "RecallContext", "ScorerChannel", "build_channel", "register_channel",
]
