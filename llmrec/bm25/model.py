"""BM25 (bm25s) over item text; the query is the text of the user's most recent history items.

A lexical baseline that needs no interactions: cold-start items are found through their words.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from llmrec.scoring import Candidates, Histories, is_shared, per_user_candidates


class BM25Scorer:
    name = "bm25"

    def __init__(self, item_text: Mapping[str, str], query_items: int = 5, show_progress: bool = False) -> None:
        import bm25s

        # bm25s sets its own logger to DEBUG, which would print index-building chatter on every run.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._bm25s = bm25s
        self.items = pd.Index([str(i) for i in item_text])
        self.texts = [str(item_text[i] or "") for i in item_text]
        self.query_items = query_items
        corpus = bm25s.tokenize(self.texts, stopwords="en", return_ids=False, show_progress=show_progress)
        self.retriever = bm25s.BM25()
        self.retriever.index(corpus, show_progress=show_progress)

    def user_scores(self, history: Sequence[str]) -> np.ndarray:
        """BM25 score of every catalogue item for the history's query (zeros for an empty query)."""
        pos = [p for p in self.items.get_indexer([str(i) for i in history]) if p >= 0][-self.query_items:]
        tokens = self._bm25s.tokenize(" ".join(self.texts[p] for p in pos), stopwords="en", return_ids=False,
                                      show_progress=False)
        query = [t for t in (tokens[0] if tokens else []) if t]
        if not query:
            return np.zeros(len(self.items))
        return np.asarray(self.retriever.get_scores(query), dtype=np.float64)

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        n = len(histories)
        rows = per_user_candidates(candidates, n)
        width = len(rows[0]) if rows else 0
        shared_pos = self.items.get_indexer([str(c) for c in candidates]) if is_shared(candidates) else None
        out = np.zeros((n, width), dtype=np.float64)
        for u, (history, cands) in enumerate(zip(histories, rows)):
            full = self.user_scores(history)
            pos = shared_pos if shared_pos is not None else self.items.get_indexer([str(c) for c in cands])
            out[u] = np.where(pos >= 0, full[np.maximum(pos, 0)], 0.0)
        return out
