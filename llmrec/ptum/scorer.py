"""A pretrained (optionally next-item fine-tuned) PTUM as a ``llmrec.scoring.Scorer``.

A user is the attention-pooled user vector of their most recent ``max_len`` history items; a score
is its dot product with the candidate's item vector (the same vectors the pretraining tasks score
against). History items outside the vocabulary are skipped; candidates outside it (cold items)
get the row's lowest score minus one: finite and ranked last.
"""

from __future__ import annotations

import numpy as np
import torch

from llmrec.ptum.config import PTUMConfig
from llmrec.ptum.data import ItemVocabulary, pad_rows
from llmrec.ptum.model import PAD, PTUM
from llmrec.registry import BuildContext, register_scorer
from llmrec.scoring import Candidates, Histories, check_scores, is_shared


class PTUMScorer:
    def __init__(self, model: PTUM, vocabulary: ItemVocabulary, name: str = "ptum", batch_size: int = 512,
                 device: str | torch.device | None = None):
        if model.n_items != len(vocabulary):
            raise ValueError(f"model has {model.n_items} item rows, the vocabulary {len(vocabulary)}")
        self.model = model.eval()
        self.vocabulary = vocabulary
        self.name = name
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)

    @torch.no_grad()
    def embed_users(self, histories: Histories) -> torch.Tensor:
        """(n, D) user vectors; empty (or all-unknown) histories give zeros."""
        max_len = self.model.config.max_len
        rows = [r[r != PAD][-max_len:] for r in (self.vocabulary.rows(list(h)) for h in histories)]
        out = torch.zeros(len(rows), self.model.config.d_model)
        order = np.argsort([len(r) for r in rows], kind="stable")  # similar lengths share a batch
        for start in range(0, len(order), self.batch_size):
            idx = [int(i) for i in order[start:start + self.batch_size] if len(rows[i])]
            if idx:
                out[idx] = self.model.user_vector(pad_rows([rows[i] for i in idx]).to(self.device)).cpu()
        return out

    @torch.no_grad()
    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        users = self.embed_users(histories)
        table = self.model.all_item_vectors().cpu()
        n = len(histories)
        if is_shared(candidates):
            cols = self.vocabulary.rows([str(c) for c in candidates])
            scores = (users @ table[torch.from_numpy(cols)].T).numpy().astype(np.float64)
            known = np.broadcast_to(cols != PAD, scores.shape)
        else:
            if len(candidates) != n:
                raise ValueError(f"got {len(candidates)} candidate lists for {n} users")
            width = len(candidates[0]) if n else 0
            cols = np.stack([self.vocabulary.rows(list(c)) for c in candidates]) if n else np.zeros((0, 0), np.int64)
            cols = cols.reshape(n, width)
            scores = torch.einsum("nd,ncd->nc", users, table[torch.from_numpy(cols)]).numpy().astype(np.float64)
            known = cols != PAD
        if not known.all() and scores.size:
            floor = np.where(known, scores, np.inf).min(axis=1, keepdims=True)
            floor = np.where(np.isfinite(floor), floor, 0.0)
            scores = np.where(known, scores, floor - 1.0)
        return check_scores(scores, n, scores.shape[1], self.name)


def build_ptum(context: BuildContext, config: PTUMConfig) -> PTUMScorer:
    """Load ``context.load['ptum']`` or pretrain on the known events; then, when
    ``config.next_item_epochs`` > 0, fine-tune on next-item prediction before scoring."""
    from llmrec.ptum.train import finetune_next_item, pretrain_ptum

    saved = context.load_dir("ptum")
    if saved:
        model, items = PTUM.from_pretrained(saved)
        vocabulary = ItemVocabulary(items)
    else:
        model, vocabulary = pretrain_ptum(context.split, config, part=context.part)
    if config.next_item_epochs > 0:
        model = finetune_next_item(context.split, model, vocabulary, config, part=context.part)
    return PTUMScorer(model, vocabulary)


register_scorer("ptum", build_ptum, PTUMConfig,
                "PTUM: user model pretrained by masked and next-K behaviour prediction (trained)", trains=True)
