"""DIEN in one readable file (Zhou et al., AAAI 2019), in the paper's notation.

    e_t = [item_emb(i_t) ; cat_emb(c_t)]                     behaviour embeddings, (B, T, 2E)
    h_t = GRU(e_1..e_t)                                      interest extractor (masked: lengths)
    aux = BCE(g(h_t, e_{t+1}), 1) + BCE(g(h_t, ê_{t+1}), 0)  ê: a sampled non-clicked item
    a_t = softmax_t(MLP([h_t, e_a, h_t - e_a, h_t * e_a]))   attention on the target e_a (DIN's local
                                                             activation unit), padding masked out
    evolution:  gru    h'_t = GRU(h_t);            interest = sum_t a_t h'_t
                aigru  h'_t = GRU(a_t * h_t);      interest = h'_T
                agru   u'_t = a_t;                 interest = h'_T
                augru  u'_t = a_t * u_t;           interest = h'_T
    p = sigmoid(MLP([e_a, mean_t e_t, e_a * mean_t e_t, interest]));  loss = BCE(p, y) + w * aux

One GRU step (:class:`InterestCell`), x the input and h the previous state:

    u = sigmoid(W_u x + U_u h + b_u)        update gate (AGRU: u = a; AUGRU: u = a * u)
    r = sigmoid(W_r x + U_r h + b_r)        reset gate
    h~ = tanh(W_h x + r * (U_h h) + b_h)
    h' = (1 - u) * h + u * h~

Histories are right-padded; a padded step leaves the state unchanged and its output is zero, so the
state after the loop is the state at each history's last real event. Row 0 (items and categories)
is padding.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.data.vocabulary import PAD
from llmrec.dien.config import DIENConfig
from llmrec.utils.io import write_json
from llmrec.utils.weights import load_weights, read_meta, save_module

CONFIG_NAME = "dien_config.json"


class InterestCell(nn.Module):
    """One GRU / AGRU / AUGRU step (``mode``), the paper's equations (see the module docstring)."""

    def __init__(self, n_in: int, n_hidden: int, mode: str = "gru"):
        super().__init__()
        if mode not in ("gru", "agru", "augru"):
            raise ValueError(f"InterestCell mode must be gru, agru or augru, got {mode!r}")
        self.mode = mode
        self.x2h = nn.Linear(n_in, 3 * n_hidden)               # W_u, W_r, W_h and the biases
        self.h2h = nn.Linear(n_hidden, 3 * n_hidden, bias=False)  # U_u, U_r, U_h

    def forward(self, x: torch.Tensor, h: torch.Tensor, att: torch.Tensor | None = None) -> torch.Tensor:
        xu, xr, xh = self.x2h(x).chunk(3, dim=-1)
        hu, hr, hh = self.h2h(h).chunk(3, dim=-1)
        u = torch.sigmoid(xu + hu)
        r = torch.sigmoid(xr + hr)
        h_tilde = torch.tanh(xh + r * hh)
        if self.mode != "gru":
            if att is None:
                raise ValueError(f"the {self.mode} cell needs attention scores")
            u = att[:, None].expand_as(u) if self.mode == "agru" else att[:, None] * u
        return (1 - u) * h + u * h_tilde


def run_cell(cell: InterestCell, x: torch.Tensor, mask: torch.Tensor, att: torch.Tensor | None = None,
             n_hidden: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``cell`` over (B, T, D) inputs; ``mask`` (B, T) True at real steps. Returns the outputs
    (B, T, H), zero at padding, and the state after the last real step (B, H)."""
    hidden = n_hidden or cell.h2h.in_features
    h = x.new_zeros(x.shape[0], hidden)
    outputs = []
    for t in range(x.shape[1]):
        step = cell(x[:, t], h, None if att is None else att[:, t])
        keep = mask[:, t, None]
        h = torch.where(keep, step, h)
        outputs.append(h * keep)
    return torch.stack(outputs, dim=1) if outputs else x.new_zeros(x.shape[0], 0, hidden), h


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the real steps only; a row without one gets all zeros (never NaN)."""
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * mask.any(dim=-1, keepdim=True)


def mlp(sizes: list[int], activation: type[nn.Module] = nn.PReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(n_in, n_out), activation()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class DIEN(nn.Module):
    """``n_items`` / ``n_categories`` rows including padding row 0."""

    def __init__(self, config: DIENConfig, n_items: int, n_categories: int):
        super().__init__()
        self.config = config
        self.n_items, self.n_categories = n_items, n_categories
        e = config.embedding_dim
        d = 2 * e  # behaviour embedding = extractor hidden width, so states and targets compare
        self.d = d
        self.item_emb = nn.Embedding(n_items, e, padding_idx=PAD)
        self.cat_emb = nn.Embedding(n_categories, e, padding_idx=PAD)
        self.extractor = nn.GRU(d, d, batch_first=True)
        self.attention = mlp([4 * d, config.attention_hidden, config.attention_hidden // 2 or 1, 1], nn.Sigmoid)
        self.aux_net = mlp([2 * d, 100, 50, 1], nn.Sigmoid)
        if config.evolution in ("gru", "aigru"):
            self.evolver: nn.Module = nn.GRU(d, d, batch_first=True)
        else:
            self.evolver = InterestCell(d, d, config.evolution)
        self.head = mlp([4 * d, *config.mlp, 1])

    def embed(self, items: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.item_emb(items), self.cat_emb(cats)], dim=-1)

    def extract(self, hist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, d) behaviour embeddings -> extractor states (B, T, d), zero at padding."""
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(hist, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.extractor(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=hist.shape[1])
        return states * mask[..., None]

    def attend(self, states: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights (B, T) of each state on the target embedding (B, d)."""
        t = target[:, None].expand_as(states)
        scores = self.attention(torch.cat([states, t, states - t, states * t], dim=-1)).squeeze(-1)
        return masked_softmax(scores, mask)

    def evolve(self, states: torch.Tensor, att: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The final interest (B, d) from the extractor states and the attention weights."""
        mode = self.config.evolution
        if mode in ("gru", "aigru"):
            inputs = states if mode == "gru" else states * att[..., None]
            lengths = mask.sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
            out, last = self.evolver(packed)
            if mode == "aigru":
                return last[0]
            evolved, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=states.shape[1])
            return (att[..., None] * evolved).sum(1)
        assert isinstance(self.evolver, InterestCell)
        return run_cell(self.evolver, states, mask, att)[1]

    def logits(self, hist: torch.Tensor, states: torch.Tensor, mask: torch.Tensor,
               target: torch.Tensor) -> torch.Tensor:
        att = self.attend(states, target, mask)
        interest = self.evolve(states, att, mask)
        m = mask[..., None].float()
        mean = (hist * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(torch.cat([target, mean, target * mean, interest], dim=-1)).squeeze(-1)

    def auxiliary_loss(self, states: torch.Tensor, hist: torch.Tensor, negatives: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
        """State t must score the next clicked behaviour e_{t+1} above a sampled one (B, T, d)."""
        valid = mask[:, 1:]
        if not bool(valid.any()):
            return states.sum() * 0.0
        h = states[:, :-1][valid]
        pos = self.aux_net(torch.cat([h, hist[:, 1:][valid]], dim=-1)).squeeze(-1)
        neg = self.aux_net(torch.cat([h, negatives[:, 1:][valid]], dim=-1)).squeeze(-1)
        return (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))

    def forward(self, hist_items: torch.Tensor, hist_cats: torch.Tensor, target_item: torch.Tensor,
                target_cat: torch.Tensor, labels: torch.Tensor | None = None,
                neg_items: torch.Tensor | None = None, neg_cats: torch.Tensor | None = None) -> dict:
        """(B, T) right-padded history rows and categories, (B,) targets; ``labels`` (B,) 1 click, 0 not;
        ``neg_items`` / ``neg_cats`` (B, T): the sampled non-clicked behaviour of each step (aux loss)."""
        mask = hist_items != PAD
        hist = self.embed(hist_items, hist_cats)
        states = self.extract(hist, mask)
        logits = self.logits(hist, states, mask, self.embed(target_item, target_cat))
        out: dict = {"logits": logits}
        if labels is not None:
            loss = F.binary_cross_entropy_with_logits(logits, labels.float())
            out["ctr_loss"] = loss.detach()
            if self.config.aux_loss and neg_items is not None and neg_cats is not None:
                aux = self.auxiliary_loss(states, hist, self.embed(neg_items, neg_cats), mask)
                out["aux_loss"] = aux.detach()
                loss = loss + self.config.aux_weight * aux
            out["loss"] = loss
        return out

    @torch.no_grad()
    def score_candidates(self, hist_items: torch.Tensor, hist_cats: torch.Tensor, cand_items: torch.Tensor,
                         cand_cats: torch.Tensor) -> torch.Tensor:
        """(B, T) histories and (B, C) candidates -> (B, C) click logits; the extractor runs once per history."""
        mask = hist_items != PAD
        hist = self.embed(hist_items, hist_cats)
        states = self.extract(hist, mask)
        b, c = cand_items.shape
        rep = lambda x: x.repeat_interleave(c, dim=0)  # noqa: E731
        logits = self.logits(rep(hist), rep(states), rep(mask), self.embed(cand_items, cand_cats).reshape(b * c, -1))
        return logits.reshape(b, c)

    # --- persistence ----------------------------------------------------------------------------------
    def describe(self, vocabulary: list[str], categories: dict[str, int]) -> dict:
        return {"config": self.config.to_dict(), "vocabulary": vocabulary, "categories": categories,
                "n_categories": self.n_categories}

    def save_pretrained(self, folder: str | Path, vocabulary: list[str], categories: dict[str, int]) -> Path:
        return save_module(self, folder, CONFIG_NAME, self.describe(vocabulary, categories))

    def save_config(self, folder: str | Path, vocabulary: list[str], categories: dict[str, int]) -> Path:
        return write_json(Path(folder) / CONFIG_NAME, self.describe(vocabulary, categories))

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str = "cpu"
                        ) -> tuple[DIEN, list[str], dict[str, int]]:
        meta = read_meta(folder, CONFIG_NAME)
        vocabulary = [str(v) for v in meta["vocabulary"]]
        model = cls(DIENConfig.from_dict(meta["config"]), len(vocabulary) + 1, int(meta["n_categories"]))
        load_weights(model, folder, map_location)
        return model, vocabulary, {str(k): int(v) for k, v in meta["categories"].items()}
