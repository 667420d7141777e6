"""The pre-LayerNorm Transformer block shared by the sequence models (SASRec: causal; PTUM:
bidirectional with a key-padding mask), nanoGPT style. Parameter names are SASRec's, so models
saved before the block was shared load unchanged.

    x -> x + attention(LN(x)) -> x + MLP(LN(x))
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


class BlockSettings(Protocol):
    d_model: int
    n_heads: int
    dropout: float


class SelfAttention(nn.Module):
    """Multi-head self-attention: causal (each position sees itself and earlier ones), or over the
    real keys only (``keep`` (B, T) True at real positions)."""

    def __init__(self, config: BlockSettings, causal: bool):
        super().__init__()
        self.n_heads = config.n_heads
        self.causal = causal
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        # (B, T, C) -> (B, heads, T, C / heads)
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in (q, k, v))
        mask = None if keep is None else keep[:, None, None, :]  # (B, 1, 1, T): every query, real keys
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal and mask is None,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, config: BlockSettings):
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model)
        self.proj = nn.Linear(4 * config.d_model, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, config: BlockSettings, causal: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config, causal)
        self.ln_2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), keep)
        return x + self.mlp(self.ln_2(x))
