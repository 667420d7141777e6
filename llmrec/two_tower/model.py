"""The two-tower model in one readable file: a user tower over the history, an item tower over the
item ID (plus an optional text embedding), an in-batch softmax retrieval loss and an MLP rating head,
mixed with per-task weights (TensorFlow Recommenders' multi-task model).

    user  = MLP([mean_h E_u[h] ; mean_h res_h E_r[h] ; rating offset ; log(1 + n) (; E_id[u])])  (B, dim)
    item  = MLP(E_i[i] + W text_i)                                                              (B, dim)
    logits[b, c] = cos(user_b, item_c) / T - log q(item_c)        (q: item's share of training events)
    logits[b, c] = -inf where item_c == item_b and c != b          (accidental hits)
    retrieval = CE(logits, b)
    rating = mu + b_i + w * offset + MLP([user ; item ; user * item]) (+ <user, item> with rating_dot)
    loss = w_retrieval * retrieval + w_rating * MSE(rating, r)

The rating offset is the user's bias in closed form, sum(r_h - mu - b_h) / (n + 5); the rating-weighted
embeddings are weighted by what is left, r_h - mu - b_h - offset. Row 0 is padding
everywhere: it is masked out of every history mean and never a target; with ``user_id`` it is also
the unknown user (a zero vector, so such a user is their history alone).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.data.vocabulary import PAD
from llmrec.two_tower.config import TwoTowerConfig
from llmrec.utils.io import write_json
from llmrec.utils.weights import load_weights, read_meta, save_module

CONFIG_NAME = "two_tower_config.json"
OFFSET_SHRINK = 5.0


def in_batch_softmax_loss(users: torch.Tensor, items: torch.Tensor, item_ids: torch.Tensor, temperature: float = 1.0,
                          log_q: torch.Tensor | None = None, remove_accidental_hits: bool = True) -> torch.Tensor:
    """Softmax over the batch's items for each user, the row's own item the positive.

    ``log_q`` (B,): log sampling probability of each column's item, subtracted from its logits.
    Accidental hits: a column holding the same item as the row's positive (another event of that
    item in the batch) is not a negative and is masked out.
    """
    logits = users @ items.T / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    if remove_accidental_hits:
        same = item_ids[:, None] == item_ids[None, :]
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, torch.finfo(logits.dtype).min)
    return F.cross_entropy(logits, torch.arange(len(users), device=users.device))


def mlp(n_in: int, hidden: int, n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))


class TwoTower(nn.Module):
    """``n_items`` rows including padding row 0; ``log_q`` (n_items,) log item popularity;
    ``text`` (n_items, text_dim) text vectors of the vocabulary rows, or None; ``n_users`` rows of the
    user-ID embedding including the unknown user 0 (used with ``config.user_id``)."""

    def __init__(self, config: TwoTowerConfig, n_items: int, mean_rating: float = 0.0,
                 log_q: torch.Tensor | None = None, text: torch.Tensor | None = None, n_users: int = 1):
        super().__init__()
        self.config = config
        self.n_items = n_items
        self.n_users = n_users
        self.user_ids: list[str] = []
        """The users of user-ID rows 1.. (with ``config.user_id``; saved with the model)."""
        self.mean_rating = float(mean_rating)
        d = config.embedding_dim
        self.item_emb = nn.Embedding(n_items, d, padding_idx=PAD)
        self.hist_emb = nn.Embedding(n_items, d, padding_idx=PAD)
        self.rated_emb = nn.Embedding(n_items, d, padding_idx=PAD)
        self.item_bias = nn.Embedding(n_items, 1, padding_idx=PAD)
        self.user_emb: nn.Embedding | None = nn.Embedding(n_users, d, padding_idx=PAD) if config.user_id else None
        self.user_tower = mlp(2 * d + 2 + (d if config.user_id else 0), config.hidden, config.dim, config.dropout)
        self.item_tower = mlp(d, config.hidden, config.dim, config.dropout)
        self.rating_head = nn.Sequential(mlp(3 * config.dim, config.hidden, config.hidden // 2, config.dropout),
                                         nn.ReLU(), nn.Linear(config.hidden // 2, 1))
        self.offset_weight = nn.Parameter(torch.ones(1))
        self.log_q: torch.Tensor
        self.register_buffer("log_q", log_q if log_q is not None else torch.zeros(n_items))
        self.text_proj: nn.Linear | None = None
        self.text: torch.Tensor | None
        self.register_buffer("text", None if text is None else text.float())
        if text is not None:
            if text.shape[0] != n_items:
                raise ValueError(f"text vectors have {text.shape[0]} rows, the vocabulary {n_items}")
            self.text_proj = nn.Linear(text.shape[1], d, bias=False)
        for emb in (self.item_emb, self.hist_emb, self.rated_emb, self.user_emb):
            if emb is None:
                continue
            nn.init.normal_(emb.weight, std=0.05)
            nn.init.zeros_(emb.weight[PAD])
        nn.init.zeros_(self.item_bias.weight)

    @property
    def text_dim(self) -> int | None:
        return None if self.text_proj is None else self.text_proj.in_features

    # --- towers ---------------------------------------------------------------------------------------
    def user_vectors(self, hist_items: torch.Tensor, hist_ratings: torch.Tensor,
                     users: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) history rows (PAD-padded) and ratings, (B,) user-ID rows (0: unknown; read with
        ``config.user_id``) -> user vectors (B, dim), rating offsets (B,)."""
        present = hist_items != PAD
        mask = present.float()
        n = mask.sum(1)
        # residual of each history rating after the global mean and the item's bias (the bias model's
        # closed-form user bias is their shrunk mean), and what is left after the user's own bias
        dev = (hist_ratings - self.mean_rating - self.item_bias(hist_items).squeeze(-1)) * mask
        offset = dev.sum(1) / (n + OFFSET_SHRINK)
        centred = dev - offset[:, None] * mask
        denom = n.clamp(min=1.0)
        # Weighted sums over the non-padding events only, as embedding bags: gathering the padded
        # (B, L, d) block and its gradient made a training step about 3x slower on the CPU.
        flat = hist_items[present]
        row = present.nonzero(as_tuple=True)[0]
        starts = torch.zeros(len(hist_items), dtype=torch.long, device=hist_items.device)
        starts[1:] = present.sum(1).cumsum(0)[:-1]
        implicit = F.embedding_bag(flat, self.hist_emb.weight, starts, mode="sum",
                                   per_sample_weights=(1.0 / denom)[row], padding_idx=PAD)
        explicit = F.embedding_bag(flat, self.rated_emb.weight, starts, mode="sum",
                                   per_sample_weights=centred[present] / denom[row], padding_idx=PAD)
        parts = [implicit, explicit, offset[:, None], torch.log1p(n)[:, None]]
        if self.user_emb is not None:
            ids = torch.zeros(len(hist_items), dtype=torch.long, device=hist_items.device) if users is None else users
            parts.append(self.user_emb(ids))
        return self.user_tower(torch.cat(parts, dim=1)), offset

    def item_vectors(self, items: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) item rows -> (B, dim). ``text`` (B, text_dim) overrides the stored text vectors (cold
        items: row PAD, so only their text contributes)."""
        x = self.item_emb(items)
        if self.text_proj is not None:
            if text is None:
                assert self.text is not None
                text = self.text[items]
            x = x + self.text_proj(text)
        return self.item_tower(x)

    def predict_rating(self, users: torch.Tensor, offset: torch.Tensor, items: torch.Tensor,
                       item_vecs: torch.Tensor) -> torch.Tensor:
        drop = self.config.rating_dropout
        users, item_vecs = F.dropout(users, drop, self.training), F.dropout(item_vecs, drop, self.training)
        product = users * item_vecs
        mixed = self.rating_head(torch.cat([users, item_vecs, product], dim=-1)).squeeze(-1)
        if self.config.rating_dot:
            mixed = mixed + product.sum(-1)
        return self.mean_rating + self.item_bias(items).squeeze(-1) + self.offset_weight * offset + mixed

    def similarity(self, users: torch.Tensor, item_vecs: torch.Tensor) -> torch.Tensor:
        """(U, dim) x (C, dim) -> (U, C) cosine similarity / temperature (the retrieval score)."""
        return F.normalize(users, dim=-1) @ F.normalize(item_vecs, dim=-1).T / self.config.temperature

    # --- training ----------------------------------------------------------------------------------------
    def forward(self, hist_items: torch.Tensor, hist_ratings: torch.Tensor, items: torch.Tensor,
                ratings: torch.Tensor, rated: torch.Tensor, users: torch.Tensor | None = None) -> dict:
        cfg = self.config
        users, offset = self.user_vectors(hist_items, hist_ratings, users)
        item_vecs = self.item_vectors(items)
        zero = users.sum() * 0.0
        retrieval = zero
        if cfg.retrieval_weight > 0:
            retrieval = in_batch_softmax_loss(F.normalize(users, dim=-1), F.normalize(item_vecs, dim=-1), items,
                                              cfg.temperature, self.log_q[items] if cfg.logq_correction else None,
                                              cfg.remove_accidental_hits)
        rating = zero
        if cfg.rating_weight > 0 and bool(rated.any()):
            pred = self.predict_rating(users, offset, items, item_vecs)
            rating = F.mse_loss(pred[rated], ratings[rated])
        loss = cfg.retrieval_weight * retrieval + cfg.rating_weight * rating
        return {"loss": loss, "retrieval_loss": retrieval.detach(), "rating_loss": rating.detach()}

    # --- persistence ----------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, vocabulary: list[str]) -> Path:
        return save_module(self, folder, CONFIG_NAME, self.describe(vocabulary))

    def save_config(self, folder: str | Path, vocabulary: list[str]) -> Path:
        """The description only, beside weights the Trainer saved."""
        return write_json(Path(folder) / CONFIG_NAME, self.describe(vocabulary))

    def describe(self, vocabulary: list[str]) -> dict:
        return {"config": self.config.to_dict(), "vocabulary": vocabulary, "mean_rating": self.mean_rating,
                "text_dim": self.text_dim, "users": self.user_ids}

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str = "cpu") -> tuple[TwoTower, list[str]]:
        meta = read_meta(folder, CONFIG_NAME)
        vocabulary = [str(v) for v in meta["vocabulary"]]
        users = [str(u) for u in meta.get("users", [])]
        n = len(vocabulary) + 1
        text = torch.zeros(n, meta["text_dim"]) if meta.get("text_dim") else None
        model = cls(TwoTowerConfig.from_dict(meta["config"]), n, meta["mean_rating"], text=text,
                    n_users=len(users) + 1)
        model.user_ids = users
        load_weights(model, folder, map_location)
        return model, vocabulary
