"""A trained SASRec as a ``llmrec.scoring.Scorer``.

A user is the hidden state after the last of their (most recent ``max_len``) history items; a score
is its dot product with the candidate's item embedding. History items outside the training
vocabulary are skipped (an ID model has nothing for them). Candidates outside it (cold-start
items) get the row's lowest score minus one: finite and ranked last, which is the honest answer of
an ID model that has never seen them.
"""

from __future__ import annotations

import numpy as np
import torch

from llmrec.registry import BuildContext, register_scorer
from llmrec.sasrec.config import SASRecConfig
from llmrec.sasrec.data import ItemVocabulary
from llmrec.sasrec.model import PAD, SASRec
from llmrec.scoring import Candidates, Histories, check_scores, rank_unknown_last


class SASRecScorer:
    def __init__(self, model: SASRec, vocabulary: ItemVocabulary, name: str = "sasrec", batch_size: int = 512,
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
        """(n, D) hidden state after each history; empty (or all-unknown) histories give zeros."""
        max_len = self.model.config.max_len
        rows = [[r for r in self.vocabulary.rows(list(h)) if r != PAD][-max_len:] for h in histories]
        out = torch.zeros(len(rows), self.model.config.d_model)
        order = np.argsort([len(r) for r in rows], kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = [int(i) for i in order[start:start + self.batch_size] if rows[i]]
            if not idx:
                continue
            batch = torch.zeros(len(idx), max(len(rows[i]) for i in idx), dtype=torch.long)
            for j, i in enumerate(idx):
                batch[j, : len(rows[i])] = torch.as_tensor(rows[i])
            last = torch.tensor([len(rows[i]) - 1 for i in idx])
            hidden = self.model.hidden(batch.to(self.device)).cpu()
            out[idx] = hidden[torch.arange(len(idx)), last]
        return out

    @torch.no_grad()
    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        users = self.embed_users(histories)
        table = self.model.item_emb.weight.detach().cpu()
        n = len(histories)
        cols = self.vocabulary.candidate_rows(candidates, n)
        vectors = table[torch.from_numpy(cols)]
        scores = (users @ vectors.T if cols.ndim == 1 else torch.einsum("nd,ncd->nc", users, vectors)).numpy()
        scores = rank_unknown_last(scores.reshape(n, -1), cols != PAD)
        return check_scores(scores, n, scores.shape[1], self.name)


def build_sasrec(context: BuildContext, config: SASRecConfig) -> SASRecScorer:
    """Load ``context.load['sasrec']``, or train on the events known before the evaluated part."""
    from llmrec.sasrec.train import train_sasrec

    saved = context.load_dir("sasrec")
    if saved:
        model, items = SASRec.from_pretrained(saved)
        return SASRecScorer(model, ItemVocabulary(items))
    model, vocabulary = train_sasrec(context.split, config, part=context.part)
    return SASRecScorer(model, vocabulary)


register_scorer("sasrec", build_sasrec, SASRecConfig, "SASRec: causal self-attention over item ids (trained)",
                trains=True)
