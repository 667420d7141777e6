"""The LEARN two-tower model: a causal Transformer user tower (PCH) over content embeddings, one of
three item towers, the dense all-action InfoNCE loss and an auxiliary CVR head.

Shapes: B users, L positions, N distinct target items in the batch, C = CEG width, K = CEG segments,
D = model width. The model never sees an item id: every item enters as its frozen CEG vectors, so
an item that never occurred in training (cold start) is embedded exactly like any other.

Item towers (``LearnConfig.item_tower``):

* ``pch`` -- the user tower's own weights (input projection, positions, blocks, head) read the item
  as a one-item sequence. The paper runs the shared tower over the user's *target sequence*; we use
  one item at a time so that training and inference embed an item identically, from its text
  alone, and an item's embedding does not depend on which user's future it happened to be in.
* ``attention`` -- a small bidirectional Transformer over the item's K CEG segment vectors (its
  "content tokens") plus a summary token; empty segments of short texts are masked.
* ``projection`` -- the item's pooled CEG vector through one linear layer, nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.learn.config import LearnConfig
from llmrec.utils.io import atomic_path, write_json

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "learn_config.json"


def info_nce(queries: torch.Tensor, keys: torch.Tensor, positives: torch.Tensor, temperature: float,
             key_ids: torch.Tensor | None = None, positive_ids: torch.Tensor | None = None,
             exclude: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE of ``queries`` (P, D) against ``keys`` (N, D); row p's positive is ``keys[positives[p]]``.

    Accidental hits are masked out of the negatives: any key whose id equals the positive's id
    (``key_ids`` (N,) with ``positive_ids`` (P,), for key sets that may repeat an item), and any key
    flagged in ``exclude`` (P, N) (e.g. the same user's other items). The positive itself is never
    masked.
    """
    logits = queries @ keys.T / temperature
    rows = torch.arange(len(positives), device=logits.device)
    masked = torch.zeros_like(logits, dtype=torch.bool)
    if key_ids is not None:
        if positive_ids is None:
            positive_ids = key_ids[positives]
        masked |= key_ids[None, :] == positive_ids[:, None]
    if exclude is not None:
        masked |= exclude
    masked[rows, positives] = False
    logits = logits.masked_fill(masked, torch.finfo(logits.dtype).min)
    return F.cross_entropy(logits, positives)


def pool_segments(segments: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Token-weighted mean of CEG segments (N, K, C) -> (N, C): the plain mean over the whole text."""
    weights = counts.to(segments.dtype)[..., None]
    return (segments * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class CausalTransformer(nn.Module):
    """PCH: content vectors (B, L, C) -> a user embedding at every position (B, L, D).

    Position t attends to positions 0..t only, so with right padding the real positions never see
    the padding and no padding mask is needed.
    """

    def __init__(self, in_dim: int, d_model: int, n_layers: int, n_heads: int, max_len: int, dropout: float):
        super().__init__()
        # LayerNorm first: hidden states of decoders have very different scales per dimension.
        self.input_proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, d_model))
        self.position = nn.Embedding(max_len, d_model)
        self.dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=4 * d_model, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, d_model)
        self.max_len = max_len

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        length = content.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence of {length} positions is longer than max_len={self.max_len}")
        positions = torch.arange(length, device=content.device)
        h = self.dropout(self.input_proj(content) + self.position(positions))
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=content.device, dtype=h.dtype)
        h = self.blocks(h, mask=causal, is_causal=True)
        return self.head(self.norm(h))


class SegmentAttentionEncoder(nn.Module):
    """Item tower 'attention': a summary token plus the item's CEG segments through bidirectional
    self-attention; the summary token's output is the item embedding."""

    def __init__(self, in_dim: int, d_model: int, n_heads: int, n_layers: int, n_segments: int, dropout: float):
        super().__init__()
        self.input_proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, d_model))
        self.position = nn.Embedding(n_segments, d_model)
        self.summary = nn.Parameter(torch.zeros(1, 1, d_model))
        block = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=4 * d_model, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, d_model)

    def forward(self, segments: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        n, k, _ = segments.shape
        h = self.input_proj(segments) + self.position(torch.arange(k, device=segments.device))
        h = torch.cat([self.summary.expand(n, 1, -1), h], dim=1)
        # Empty segments (texts shorter than K tokens) are padding; the summary token is always real.
        padding = torch.cat([torch.zeros(n, 1, dtype=torch.bool, device=counts.device), counts == 0], dim=1)
        h = self.blocks(h, src_key_padding_mask=padding)
        return self.head(self.norm(h[:, 0]))


class CVRHead(nn.Module):
    """Auxiliary conversion head: an MLP over (user, item, user * item) -> one logit."""

    def __init__(self, d_model: int, dropout: float):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3 * d_model, d_model), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(d_model, 1))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([users, items, users * items], dim=-1)).squeeze(-1)


class LearnModel(nn.Module):
    """PCH user tower + item tower + CVR head; ``forward`` returns the training losses."""

    def __init__(self, config: LearnConfig, in_dim: int, n_segments: int):
        super().__init__()
        self.config = config
        self.in_dim, self.n_segments = in_dim, n_segments
        c = config
        self.user_tower = CausalTransformer(in_dim, c.d_model, c.n_layers, c.n_heads, c.max_len, c.dropout)
        # The 'pch' item tower *is* the user tower (no second module: one set of weights, one
        # state-dict entry each).
        self.item_encoder = (SegmentAttentionEncoder(in_dim, c.d_model, c.n_heads, c.item_layers, n_segments,
                                                     c.dropout) if c.item_tower == "attention" else None)
        self.item_projection = nn.Linear(in_dim, c.d_model) if c.item_tower == "projection" else None
        self.cvr_head = CVRHead(c.d_model, c.dropout) if c.cvr_weight > 0 and c.cvr_label != "off" else None

    # --- the towers ------------------------------------------------------------------------------
    def embed_users(self, history: torch.Tensor) -> torch.Tensor:
        """(B, L, C) pooled CEG vectors of each history -> L2-normalised user embeddings (B, L, D)."""
        return F.normalize(self.user_tower(history), dim=-1)

    def embed_items(self, segments: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """(N, K, C) CEG segments and (N, K) token counts -> L2-normalised item embeddings (N, D)."""
        tower = self.config.item_tower
        if tower == "pch":
            out = self.user_tower(pool_segments(segments, counts)[:, None, :])[:, 0]
        elif tower == "attention" and self.item_encoder is not None:
            out = self.item_encoder(segments, counts)
        elif self.item_projection is not None:
            out = self.item_projection(pool_segments(segments, counts))
        else:  # __init__ builds the module the configured tower needs; this cannot happen
            raise RuntimeError(f"item tower {tower!r} has no module")
        return F.normalize(out, dim=-1)

    # --- training ----------------------------------------------------------------------------------
    def forward(self, history: torch.Tensor, target_segments: torch.Tensor, target_counts: torch.Tensor,
                target_index: torch.Tensor, user_items: torch.Tensor | None = None,
                cvr_key: torch.Tensor | None = None, cvr_label: torch.Tensor | None = None) -> dict:
        """Dense all-action loss: every real position of every history predicts the next item.

        ``history`` (B, L, C); ``target_segments``/``target_counts`` the batch's N distinct target
        items; ``target_index`` (B, L) which of them follows each position (-1: padding);
        ``user_items`` (B, N) True where key n belongs to user b's sequence (masked as accidental
        hits); ``cvr_key``/``cvr_label`` (B, L, M) CVR pairs per position (key -1: none).
        """
        users = self.embed_users(history)
        items = self.embed_items(target_segments, target_counts)
        real = target_index >= 0
        batch_row = torch.arange(len(history), device=history.device)[:, None].expand_as(target_index)[real]
        exclude = user_items[batch_row] if (user_items is not None and self.config.mask_user_items) else None
        nce = info_nce(users[real], items, target_index[real], self.config.temperature, exclude=exclude)
        out = {"loss": nce, "info_nce": nce.detach()}
        if self.cvr_head is not None and cvr_key is not None and cvr_label is not None and (cvr_key >= 0).any():
            has = cvr_key >= 0
            position_users = users[:, :, None, :].expand(*cvr_key.shape, users.shape[-1])[has]
            logits = self.cvr_head(position_users, items[cvr_key[has]])
            cvr = F.binary_cross_entropy_with_logits(logits, cvr_label[has].float())
            out["loss"] = nce + self.config.cvr_weight * cvr
            out["cvr"] = cvr.detach()
        return out

    # --- persistence -------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, extra: dict | None = None) -> Path:
        """``model.safetensors`` + ``learn_config.json`` (model config, input sizes, ``extra``)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        return self.save_config(folder, extra)

    def save_config(self, folder: str | Path, extra: dict | None = None) -> Path:
        write_json(Path(folder) / CONFIG_NAME, {"config": self.config.to_dict(), "in_dim": self.in_dim,
                                                "n_segments": self.n_segments, **(extra or {})})
        return Path(folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str = "cpu") -> LearnModel:
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / CONFIG_NAME).read_text())
        model = cls(LearnConfig.from_dict(meta["config"]), meta["in_dim"], meta["n_segments"])
        model.load_state_dict(load_file(str(folder / WEIGHTS_NAME), device=map_location))
        return model.eval()

    @staticmethod
    def saved_metadata(folder: str | Path) -> dict:
        return json.loads((Path(folder) / CONFIG_NAME).read_text())
