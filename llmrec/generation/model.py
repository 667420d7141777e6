"""The embedding ranker: a user is the mean of their history's text embeddings; rank by cosine.

No training and no interaction counts: an item needs only its text, so items nobody has touched
yet (cold start) rank as easily as popular ones. Every catalogue item is embedded once, through
the on-disk embedding cache, when the ranker is built.

Choices worth knowing:
* The user vector is the mean of the history items' vectors, or with ``recency_decay`` a weighted
  mean where the item ``t`` events before the latest weighs ``0.5 ** (t / recency_decay)``.
  Scores are cosines, so only the direction of the mean matters.
* History items missing from the catalogue have no text and are skipped (counted in a log line).
* A user with an empty history (or none of whose items are known) has no direction: every
  catalogue candidate scores 0, so the ranking is left to the evaluator's tie rule.
* A candidate missing from the catalogue scores ``UNKNOWN_SCORE`` (-1, the lowest cosine).
* An item whose text renders empty is embedded as the empty string: it still gets a vector (the
  model's encoding of no words), which sits near other empty items and far from real text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from llmrec.embed.cache import EmbeddingCache
from llmrec.embed.encoder import Encoder, load_sentence_encoder
from llmrec.embed.files import render_item_texts
from llmrec.generation.config import EmbeddingRankerConfig
from llmrec.scoring import Candidates, Histories, is_shared

logger = logging.getLogger(__name__)


class EmbeddingRanker:
    """Scorer: cosine between a user's (recency-weighted) mean history embedding and each candidate.

    ``items`` is the catalogue (a DataFrame indexed by ``item_id``, or a ``Dataset``). Pass
    ``encoder`` to reuse a loaded one (or a test model); otherwise ``config.model`` is loaded.
    """

    name = "embedding"
    UNKNOWN_SCORE = -1.0

    def __init__(self, items, config: EmbeddingRankerConfig | None = None, *, encoder: Encoder | None = None):
        self.config = config or EmbeddingRankerConfig()
        self.encoder = encoder or load_sentence_encoder(
            self.config.model, device=self.config.device, trust_remote_code=self.config.trust_remote_code)
        self._cache = (EmbeddingCache(self.config.cache_dir, self.encoder, batch_size=self.config.batch_size,
                                      show_progress=self.config.show_progress)
                       if self.config.cache_dir is not None else None)
        texts = render_item_texts(items, self.config.template, self.config.fields)
        if texts.index.has_duplicates:
            raise ValueError(f"duplicate item id {texts.index[texts.index.duplicated()][0]!r} in the catalogue")
        self.item_ids = pd.Index(texts.index, name="item_id")
        self.item_texts = texts
        self.item_vectors = self.embed_items(list(texts), ids=list(texts.index))
        empty = int((texts.str.strip() == "").sum())
        if empty:
            logger.warning("%d of %d items have no text; they are embedded as the empty string", empty, len(texts))

    @property
    def cache_stats(self) -> dict[str, int]:
        if self._cache is None:
            return {"hits": 0, "misses": len(self.item_ids), "encoded": len(self.item_ids)}
        return {"hits": self._cache.hits, "misses": self._cache.misses, "encoded": self._cache.encoded}

    def embed_items(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
        """Unit vectors for item texts (e.g. cold-start items not in the catalogue), via the cache."""
        texts = [str(t) for t in texts]
        if self._cache is None:
            return self.encoder.encode(texts, batch_size=self.config.batch_size,
                                       show_progress=self.config.show_progress)
        return self._cache.embed(list(ids) if ids is not None else [f"text-{i}" for i in range(len(texts))],
                                 texts)

    def add_items(self, items) -> None:
        """Add new items (e.g. cold-start arrivals) so they can be candidates; their text is enough."""
        texts = render_item_texts(items, self.config.template, self.config.fields)
        clash = texts.index.intersection(self.item_ids)
        if len(clash):
            raise ValueError(f"item {clash[0]!r} is already in the catalogue")
        vectors = self.embed_items(list(texts), ids=list(texts.index))
        self.item_ids = self.item_ids.append(pd.Index(texts.index, name="item_id"))
        self.item_texts = pd.concat([self.item_texts, texts])
        self.item_vectors = np.concatenate([self.item_vectors, vectors])

    def user_vectors(self, histories: Histories) -> np.ndarray:
        """``(n_users, dim)`` unit vectors of the users' histories; all-zero rows for empty ones."""
        rows, cols, weights = [], [], []
        unknown = 0
        half_life = self.config.recency_decay
        for user, history in enumerate(histories):
            if len(history) == 0:
                continue
            positions = self.item_ids.get_indexer([str(i) for i in history])
            if half_life is None:
                w = np.ones(len(positions))
            else:
                # Histories are oldest first: the last event has age 0.
                age = np.arange(len(positions))[::-1]
                w = 0.5 ** (age / half_life)
            known = positions >= 0
            unknown += int((~known).sum())
            rows.append(np.full(int(known.sum()), user))
            cols.append(positions[known])
            weights.append(w[known])
        if unknown:
            logger.info("%d history events name items missing from the catalogue; skipped", unknown)
        n_users = len(histories)
        if rows:
            matrix = sparse.csr_matrix(
                (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                shape=(n_users, len(self.item_ids)))
            users = np.asarray(matrix @ self.item_vectors, dtype=np.float32)
        else:
            users = np.zeros((n_users, self.item_vectors.shape[1]), dtype=np.float32)
        norms = np.linalg.norm(users, axis=1, keepdims=True)
        return np.divide(users, norms, out=np.zeros_like(users), where=norms > 0)

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        users = self.user_vectors(histories)
        if is_shared(candidates):
            positions = self.item_ids.get_indexer([str(c) for c in candidates])
            scores = users @ self.item_vectors[np.maximum(positions, 0)].T
            scores[:, positions < 0] = self.UNKNOWN_SCORE
            return scores
        if len(candidates) != len(histories):
            raise ValueError(f"got {len(candidates)} candidate lists for {len(histories)} users")
        lengths = {len(c) for c in candidates}
        if len(lengths) > 1:
            raise ValueError(f"per-user candidate lists must have equal length, got lengths {sorted(lengths)}")
        width = lengths.pop() if lengths else 0
        flat = [str(c) for per_user in candidates for c in per_user]
        positions = self.item_ids.get_indexer(flat).reshape(len(candidates), width)
        scores = np.empty((len(candidates), width), dtype=np.float32)
        # Gathering (users, width, dim) at once can take gigabytes; ~32 MB blocks are plenty fast.
        block = max(1, (32 << 20) // max(1, width * self.item_vectors.shape[1] * 4))
        for start in range(0, len(candidates), block):
            pos = positions[start:start + block]
            gathered = self.item_vectors[np.maximum(pos, 0)]
            scores[start:start + block] = np.einsum("ud,ucd->uc", users[start:start + block], gathered)
        scores[positions < 0] = self.UNKNOWN_SCORE
        return scores
