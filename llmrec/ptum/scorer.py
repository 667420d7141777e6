"""A pretrained (optionally next-item fine-tuned) PTUM as a ``llmrec.scoring.Scorer``.

A user is the attention-pooled user vector of their most recent ``max_len`` history items; a score
is its dot product with the candidate's item vector (the same vectors the pretraining tasks score
against). History items outside the vocabulary are skipped; candidates outside it (cold items)
get the row's lowest score minus one: finite and ranked last.
"""

from __future__ import annotations

import numpy as np
import torch

from llmrec.data.vocabulary import PAD, ItemVocabulary
from llmrec.ptum.config import PTUMConfig
from llmrec.ptum.data import pad_rows
from llmrec.ptum.model import PTUM
from llmrec.registry import BuildContext, register_scorer
from llmrec.scoring import Candidates, Histories, check_scores, rank_unknown_last


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
        cols = self.vocabulary.candidate_rows(candidates, n)
        vectors = table[torch.from_numpy(cols)]
        scores = (users @ vectors.T if cols.ndim == 1 else torch.einsum("nd,ncd->nc", users, vectors)).numpy()
        scores = rank_unknown_last(scores.reshape(n, -1), cols != PAD)
        return check_scores(scores, n, scores.shape[1], self.name)


def build_ptum(context: BuildContext, config: PTUMConfig) -> PTUMScorer:
    """Load ``context.load['ptum']``, or pretrain on the known events (``config.pretrain=False``: a
    random encoder); then, when ``config.next_item_epochs`` > 0, fine-tune on next-item prediction
    before scoring."""
    from llmrec.ptum.train import finetune_next_item, new_encoder, pretrain_ptum

    saved = context.load_dir("ptum")
    if saved:
        model, items = PTUM.from_pretrained(saved)
        vocabulary = ItemVocabulary(items)
    elif config.pretrain:
        model, vocabulary = pretrain_ptum(context.split, config, part=context.part)
    else:
        vocabulary = ItemVocabulary.from_split(context.split, context.part)
        model = new_encoder(context.split, config, vocabulary)
    if config.next_item_epochs > 0:
        model = finetune_next_item(context.split, model, vocabulary, config, part=context.part)
    return PTUMScorer(model, vocabulary)


register_scorer("ptum", build_ptum, PTUMConfig,
                "PTUM: user model pretrained by masked and next-K behaviour prediction (trained)", trains=True)
