"""A trained DIEN as a ``llmrec.scoring.Scorer``: the click probability of each candidate given the
history (pointwise: AUC / log loss; ranking: candidates ordered by it).

History items outside the training vocabulary are skipped. A candidate outside it enters as the
padding row with its catalogue category, as such items enter training (as sampled negatives), so a
cold item gets the model's learnt score for "never clicked, this category, this history".
"""

from __future__ import annotations

import numpy as np
import torch

from llmrec.data.vocabulary import PAD, ItemVocabulary
from llmrec.dien.config import DIENConfig
from llmrec.dien.model import DIEN
from llmrec.registry import BuildContext, register_scorer
from llmrec.scoring import Candidates, Histories, check_scores, per_user_candidates


class DIENScorer:
    def __init__(self, model: DIEN, vocabulary: ItemVocabulary, categories: dict[str, int], name: str = "dien",
                 batch_pairs: int = 8192):
        if model.n_items != len(vocabulary):
            raise ValueError(f"model has {model.n_items} item rows, the vocabulary {len(vocabulary)}")
        self.model = model.eval().cpu()
        self.vocabulary = vocabulary
        self.categories = categories
        self.name = name
        self.batch_pairs = batch_pairs

    def _cats(self, items: list[str]) -> np.ndarray:
        return np.fromiter((self.categories.get(str(i), PAD) for i in items), dtype=np.int64, count=len(items))

    @torch.no_grad()
    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        n = len(histories)
        lists = per_user_candidates(candidates, n)
        width = len(lists[0]) if n else 0
        max_len = self.model.config.max_len
        out = np.zeros((n, width))
        per_batch = max(1, self.batch_pairs // max(1, width))
        for start in range(0, n, per_batch):
            idx = range(start, min(n, start + per_batch))
            hist = []
            for i in idx:
                items = [str(x) for x in histories[i]]
                rows = self.vocabulary.rows(items)
                keep = np.flatnonzero(rows != PAD)[-max_len:]
                hist.append((rows[keep], self._cats([items[k] for k in keep])))
            length = max([len(r) for r, _ in hist] + [1])
            h_items = torch.zeros(len(hist), length, dtype=torch.long)
            h_cats = torch.zeros(len(hist), length, dtype=torch.long)
            for j, (rows, cats) in enumerate(hist):
                h_items[j, : len(rows)] = torch.from_numpy(rows)
                h_cats[j, : len(cats)] = torch.from_numpy(cats)
            cands = [[str(c) for c in lists[i]] for i in idx]
            c_items = torch.from_numpy(np.stack([self.vocabulary.rows(c) for c in cands]).reshape(len(cands), width))
            c_cats = torch.from_numpy(np.stack([self._cats(c) for c in cands]).reshape(len(cands), width))
            logits = self.model.score_candidates(h_items, h_cats, c_items, c_cats)
            out[start:start + len(cands)] = torch.sigmoid(logits.double()).numpy()
        return check_scores(out, n, width, self.name)


def build_dien(context: BuildContext, config: DIENConfig) -> DIENScorer:
    """Load ``context.load['dien']``, or train on the events known before the evaluated part."""
    from llmrec.dien.train import train_dien

    saved = context.load_dir("dien")
    if saved:
        model, items, categories = DIEN.from_pretrained(saved)
        return DIENScorer(model, ItemVocabulary(items), categories)
    model, vocabulary, categories = train_dien(context.split, config, part=context.part)
    return DIENScorer(model, vocabulary, categories)


register_scorer("dien", build_dien, DIENConfig,
                "DIEN: GRU interest extractor + attention-gated interest evolution, click probability (trained)",
                trains=True, tasks=("pointwise", "ranking"))
