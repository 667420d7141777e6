"""A trained two-tower model as a ``llmrec.scoring.Scorer``, plus top-K retrieval for serving.

The user vector comes from the history the evaluator shows (with its ratings where the data has
them); the score is the cosine similarity of user and item vectors (``score="retrieval"``) or the
rating head's prediction (``score="rating"``, for the rating evaluator). Candidates outside the
training vocabulary get a vector from their text when the model was trained with
``text_embeddings``; otherwise they rank last (``rank_unknown_last``). With ``user_id`` the user is
looked up by the history's ``user`` attribute (``llmrec.scoring.History.user``); a history without
one, or of a user without training events, gets the unknown-user row (history only).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from llmrec.data.vocabulary import PAD, ItemVocabulary
from llmrec.registry import BuildContext, register_scorer
from llmrec.scoring import Candidates, Histories, check_scores, history_ratings, is_shared, rank_unknown_last
from llmrec.two_tower.config import SCORES, TwoTowerConfig
from llmrec.two_tower.data import history_tensors
from llmrec.two_tower.model import TwoTower


class TwoTowerScorer:
    def __init__(self, model: TwoTower, vocabulary: ItemVocabulary, name: str = "two-tower",
                 score: str = "retrieval", text_vectors: dict[str, np.ndarray] | None = None, batch_size: int = 1024):
        if model.n_items != len(vocabulary):
            raise ValueError(f"model has {model.n_items} item rows, the vocabulary {len(vocabulary)}")
        if score not in SCORES:
            raise ValueError(f"score must be one of {list(SCORES)}, got {score!r}")
        self.model = model.eval().cpu()
        self.vocabulary = vocabulary
        self.name = name
        self.mode = score
        self.text_vectors = text_vectors if model.text_proj is not None else None
        self.batch_size = batch_size
        self._user_rows = {u: k + 1 for k, u in enumerate(model.user_ids)} if model.user_emb is not None else {}
        with torch.no_grad():
            self._table = model.item_vectors(torch.arange(len(vocabulary)))  # row 0: unused

    @torch.no_grad()
    def embed_users(self, histories: Histories) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, dim) user vectors and (n,) rating offsets; history items outside the vocabulary are skipped."""
        max_history = self.model.config.max_history
        rows: list[np.ndarray] = []
        ratings: list[np.ndarray | None] = []
        for h in histories:
            r = self.vocabulary.rows(list(h))
            keep = np.flatnonzero(r != PAD)[-max_history:]
            rows.append(r[keep])
            values = history_ratings(h)
            ratings.append(np.asarray(values, dtype=np.float32)[keep] if values else None)
        ids = torch.as_tensor([self._user_rows.get(str(getattr(h, "user", None)), PAD) for h in histories],
                              dtype=torch.long)
        users, offsets = [], []
        for start in range(0, len(rows), self.batch_size):
            items, rated = history_tensors(rows[start:start + self.batch_size], ratings[start:start + self.batch_size],
                                            self.model.mean_rating)
            u, o = self.model.user_vectors(items, rated, ids[start:start + self.batch_size])
            users.append(u)
            offsets.append(o)
        if not users:
            return torch.zeros(0, self.model.config.dim), torch.zeros(0)
        return torch.cat(users), torch.cat(offsets)

    @torch.no_grad()
    def item_vectors(self, items: Sequence[str]) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Vectors of ``items``, their rows (PAD when outside the vocabulary) and whether each has a vector."""
        rows = self.vocabulary.rows([str(i) for i in items])
        vectors = self._table[torch.from_numpy(rows)].clone()
        known = rows != PAD
        if self.text_vectors is not None:
            cold = [int(k) for k in np.flatnonzero(~known) if str(items[int(k)]) in self.text_vectors]
            if cold:
                text = torch.from_numpy(np.stack([self.text_vectors[str(items[k])] for k in cold])).float()
                vectors[cold] = self.model.item_vectors(torch.zeros(len(cold), dtype=torch.long), text)
                known[cold] = True
        return vectors, rows, known

    @torch.no_grad()
    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        n = len(histories)
        users, offsets = self.embed_users(histories)
        flat = list(candidates) if is_shared(candidates) else [c for cs in candidates for c in cs]
        if not is_shared(candidates) and len(candidates) != n:
            raise ValueError(f"got {len(candidates)} candidate lists for {n} users")
        unique, inverse = np.unique(np.asarray([str(c) for c in flat], dtype=object), return_inverse=True)
        vectors, rows, known = self.item_vectors(list(unique))
        width = len(flat) if is_shared(candidates) else (len(candidates[0]) if n else 0)
        if is_shared(candidates):
            idx = np.broadcast_to(inverse, (n, width))
        else:
            idx = inverse.reshape(n, width)
        if self.mode == "retrieval":
            scores = self.model.similarity(users, vectors).numpy()
            out = np.take_along_axis(scores, idx, axis=1) if n else np.zeros((0, width))
            out = rank_unknown_last(out, known[idx])
        else:
            out = np.empty((n, width))
            t_idx = torch.from_numpy(np.array(idx))
            t_rows = torch.from_numpy(rows)
            for i in range(n):
                cand = t_idx[i]
                pred = self.model.predict_rating(users[i].expand(width, -1), offsets[i].expand(width),
                                                 t_rows[cand], vectors[cand])
                out[i] = pred.numpy()
        return check_scores(out, n, width, self.name)

    @torch.no_grad()
    def retrieve(self, histories: Histories, k: int, index: str = "brute") -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` training-vocabulary items per history by retrieval score, through an index from
        ``llmrec.embed`` ("brute": exact numpy; "flat" / "hnsw" / "ivf": FAISS). Returns (ids, scores)."""
        from llmrec.embed import make_index

        users, _ = self.embed_users(histories)
        table = torch.nn.functional.normalize(self._table[1:], dim=-1).numpy().astype(np.float32)
        search = make_index(index, table.shape[1])  # type: ignore[arg-type]
        search.add(self.vocabulary.items, table)
        queries = torch.nn.functional.normalize(users, dim=-1).numpy().astype(np.float32)
        return search.search(queries, k)


def build_two_tower(context: BuildContext, config: TwoTowerConfig) -> TwoTowerScorer:
    """Load ``context.load['two-tower']``, or train on the events known before the evaluated part."""
    from llmrec.two_tower.train import read_text_vectors, train_two_tower

    saved = context.load_dir("two-tower")
    if saved:
        model, items = TwoTower.from_pretrained(saved)
        vocabulary = ItemVocabulary(items)
        config = model.config if config is None else config
    else:
        model, vocabulary = train_two_tower(context.split, config, part=context.part)
    text = read_text_vectors(model.config.text_embeddings) if model.config.text_embeddings else None
    return TwoTowerScorer(model, vocabulary, score=config.score, text_vectors=text)


register_scorer("two-tower", build_two_tower, TwoTowerConfig,
                "two-tower retrieval (in-batch softmax, logQ correction) with a multi-task rating head (trained)",
                trains=True, tasks=("ranking", "pointwise"))
