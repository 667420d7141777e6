"""A trained LEARN model as a ``llmrec.scoring.Scorer``.

Every item with a CEG row (the whole catalogue, cold-start items included) is embedded once from
its text by the item tower; a user is embedded by the PCH tower over the most recent ``max_len``
history items; a score is the cosine of the two. Shared candidates (full ranking) cost one matrix
product. Items without a CEG row (no text at all) get the row's lowest score minus one: finite,
ranked last.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from llmrec.learn.ceg import ContentEmbeddings
from llmrec.learn.config import LearnRunConfig
from llmrec.learn.model import LearnModel
from llmrec.registry import BuildContext, register_scorer
from llmrec.scoring import Candidates, Histories, check_scores, is_shared


class LearnScorer:
    def __init__(self, model: LearnModel, content: ContentEmbeddings, name: str | None = None,
                 batch_size: int = 512, device: str | torch.device | None = None):
        if model.in_dim != content.dim or model.n_segments != content.n_segments:
            raise ValueError(f"the model reads CEG vectors of width {model.in_dim} in {model.n_segments} segments, "
                             f"the content embeddings have width {content.dim} in {content.n_segments}: use the "
                             "text model and CEG settings the model was trained with")
        self.model = model.eval()
        self.content = content
        self.name = name or f"learn-{model.config.item_tower}"
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self._rows = content.index()
        self._pooled = torch.from_numpy(content.pooled())
        self.item_embeddings = self._embed_all_items()

    @torch.no_grad()
    def _embed_all_items(self) -> torch.Tensor:
        seg, cnt = torch.from_numpy(self.content.segments), torch.from_numpy(self.content.counts)
        parts = [self.model.embed_items(seg[i:i + self.batch_size].to(self.device),
                                        cnt[i:i + self.batch_size].to(self.device)).cpu()
                 for i in range(0, len(seg), self.batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0, self.model.config.d_model)

    def embed_items(self, item_ids: Sequence[str]) -> np.ndarray:
        """Item-tower embeddings (from text alone) of ``item_ids``; unknown ids raise KeyError."""
        return self.item_embeddings[[self._rows[i] for i in item_ids]].numpy()

    @torch.no_grad()
    def embed_users(self, histories: Histories) -> torch.Tensor:
        """User embeddings (n, D) after each history; an empty history (or one of items without
        text) gives the zero vector, hence score 0 for every item."""
        max_len = self.model.config.max_len
        rows = [[self._rows[i] for i in h if i in self._rows][-max_len:] for h in histories]
        out = torch.zeros(len(rows), self.model.config.d_model)
        order = np.argsort([len(r) for r in rows], kind="stable")  # similar lengths per batch
        for start in range(0, len(order), self.batch_size):
            idx = [int(i) for i in order[start:start + self.batch_size] if rows[i]]
            if not idx:
                continue
            length = max(len(rows[i]) for i in idx)
            batch = torch.zeros(len(idx), length, dtype=torch.long)
            last = torch.tensor([len(rows[i]) - 1 for i in idx])
            for j, i in enumerate(idx):
                batch[j, : len(rows[i])] = torch.tensor(rows[i])
            users = self.model.embed_users(self._pooled[batch].to(self.device)).cpu()
            out[idx] = users[torch.arange(len(idx)), last]
        return out

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        users = self.embed_users(histories)
        n = len(histories)
        if is_shared(candidates):
            cols = np.array([self._rows.get(str(c), -1) for c in candidates], dtype=np.int64)
            known = cols >= 0
            scores = np.zeros((n, len(cols)))
            scores[:, known] = (users @ self.item_embeddings[cols[known]].T).numpy()
        else:
            if len(candidates) != n:
                raise ValueError(f"got {len(candidates)} candidate lists for {n} users")
            width = len(candidates[0]) if n else 0
            cols = np.array([[self._rows.get(c, -1) for c in cands] for cands in candidates],
                            dtype=np.int64).reshape(n, width)
            known = cols >= 0
            items = self.item_embeddings[torch.from_numpy(np.where(known, cols, 0))]
            scores = torch.einsum("nd,ncd->nc", users, items).numpy().astype(np.float64)
        if not known.all() and scores.size:
            floor = np.where(known, scores, np.inf).min(axis=1, keepdims=True)
            floor = np.where(np.isfinite(floor), floor, 0.0)
            scores = np.where(known, scores, floor - 1.0)
        return check_scores(scores, n, scores.shape[1] if scores.ndim == 2 else 0, self.name)


def build_learn(context: BuildContext, config: LearnRunConfig) -> LearnScorer:
    """Content embeddings of every catalogue item (cached), then load ``context.load['learn']`` or
    train on the events known before the evaluated part."""
    from llmrec.data.text import learn_item_text
    from llmrec.learn.ceg import ContentEmbeddingGenerator
    from llmrec.learn.train import train_learn

    ceg_config = config.ceg_config()
    content = ContentEmbeddingGenerator(ceg_config)(learn_item_text(context.dataset).to_dict(),
                                                    progress=context.show_progress)
    saved = context.load_dir("learn")
    if saved:
        model = LearnModel.from_pretrained(saved)
    else:
        model = train_learn(context.split, content, config.learn_config(), part=context.part, ceg_config=ceg_config)
    return LearnScorer(model, content)


register_scorer("learn", build_learn, LearnRunConfig,
                "LEARN: frozen-LLM content embeddings + causal user tower, InfoNCE (trained)", trains=True)
