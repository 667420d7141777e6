"""SASRec in one readable file, nanoGPT style: item-ID embeddings + learned positions, a stack of
pre-LayerNorm causal self-attention blocks, and the item embeddings reused as the output layer.

    ids (B, T) -> item_emb * sqrt(D) + pos_emb -> [LN -> causal attention -> + ; LN -> MLP -> +] x L
               -> LN -> hidden (B, T, D) -> logits = hidden @ item_emb.T (B, T, V)

Index 0 is padding (never a target, never scored). Sequences are right-padded: with causal
attention a real position only attends to earlier positions, all real, so no padding mask is
needed and the hidden state at position t depends on inputs 0..t only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.data.vocabulary import PAD
from llmrec.sasrec.config import SASRecConfig
from llmrec.utils.io import atomic_path, write_json
from llmrec.utils.transformer import Block

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "sasrec_config.json"


class SASRec(nn.Module):
    """``n_items`` is the vocabulary size including the padding row 0."""

    def __init__(self, config: SASRecConfig, n_items: int):
        super().__init__()
        self.config = config
        self.n_items = n_items
        self.item_emb = nn.Embedding(n_items, config.d_model, padding_idx=PAD)
        self.pos_emb = nn.Embedding(config.max_len, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, causal=True) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                nn.init.zeros_(module.weight[module.padding_idx])

    def hidden(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) item indices -> (B, T, D) sequence representation after each position."""
        t = input_ids.shape[1]
        if t > self.config.max_len:
            raise ValueError(f"sequence of {t} positions is longer than max_len={self.config.max_len}")
        positions = torch.arange(t, device=input_ids.device)
        x = self.item_emb(input_ids) * math.sqrt(self.config.d_model) + self.pos_emb(positions)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor,
                negatives: torch.Tensor | None = None) -> dict:
        """``labels`` (B, T): the next item at each position, -100 at padding. ``negatives`` (B, T):
        one sampled item per position, used by the 'bce' objective only."""
        h = self.hidden(input_ids)
        real = labels != -100
        if self.config.loss == "ce":
            logits = h[real] @ self.item_emb.weight.T
            logits[:, PAD] = torch.finfo(logits.dtype).min  # padding is never the answer
            loss = F.cross_entropy(logits, labels[real])
        else:
            if negatives is None:
                raise ValueError("the 'bce' objective needs sampled negatives")
            pos = (h[real] * self.item_emb(labels[real])).sum(-1)
            neg = (h[real] * self.item_emb(negatives[real])).sum(-1)
            loss = (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                    + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))
        return {"loss": loss}

    # --- persistence -------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, vocabulary: list[str]) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        return self.save_config(folder, vocabulary)

    def save_config(self, folder: str | Path, vocabulary: list[str]) -> Path:
        """The config and the vocabulary (item id of row i + 1), beside the weights."""
        write_json(Path(folder) / CONFIG_NAME, {"config": self.config.to_dict(), "vocabulary": vocabulary})
        return Path(folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str = "cpu") -> tuple[SASRec, list[str]]:
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / CONFIG_NAME).read_text())
        vocabulary = [str(v) for v in meta["vocabulary"]]
        model = cls(SASRecConfig.from_dict(meta["config"]), len(vocabulary) + 1)
        model.load_state_dict(load_file(str(folder / WEIGHTS_NAME), device=map_location))
        return model.eval(), vocabulary
