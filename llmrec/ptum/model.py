"""PTUM in one readable file, nanoGPT style: a behaviour encoder pretrained with two self-supervised
tasks, then reused (with a small head) for tasks that have few labels.

    ids (B, T) -> item vector (ID table, or frozen text vector @ W) + pos_emb; [MASK] rows -> mask_emb
               -> [LN -> bidirectional attention (key-padding mask) -> + ; LN -> MLP -> +] x L -> LN
               -> hidden (B, T, D) -> attention pooling -> user vector (B, D)

* Masked behaviour prediction (MBP): a share of a window's behaviours is replaced by the [MASK] id
  (the collator writes it, so the hidden item never reaches the model); the hidden state at each
  masked position scores the true item against sampled negatives: softmax cross-entropy over the
  1 + N dot products with item vectors.
* Next-K behaviour prediction (NBP): the user vector of the window without its last K behaviours
  scores each of those K items against its own sampled negatives, the same way.

Where this differs from the paper, and why:
* Behaviours are items of a recommendation log (an ID table, or frozen MiniLM vectors of the item
  text with a learned projection), not search queries and web pages read by a text encoder trained
  end to end: the public data here are item logs with titles, and training a text encoder on the
  CPU is out of reach. The frozen text vectors keep the paper's idea that a behaviour is content.
* Both tasks score with a plain dot product against the same item vectors that feed the encoder
  (tied, no extra dense layer per task), so the pretrained user vector is directly a next-item
  query for the recommendation scorer. One user vector scores all K next behaviours (no per-offset
  head): which items come next, not in which order.
* Pre-LayerNorm blocks with learned positions (as this repository's SASRec) instead of the paper's
  exact Transformer variant; the choice only matters for training stability.

Index 0 is padding (never a target, never attended to); the [MASK] id is ``n_items`` (one past the
vocabulary), embedded as the learned ``mask_emb``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.data.vocabulary import PAD
from llmrec.ptum.config import PTUMConfig
from llmrec.utils.io import atomic_path, write_json
from llmrec.utils.transformer import Block

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "ptum_config.json"


class PTUM(nn.Module):
    """``n_items``: vocabulary rows including padding row 0. ``text_dim``: width of the frozen text
    vectors (item_encoder='text'); ``item_vectors`` fills them (else zeros, e.g. before loading)."""

    def __init__(self, config: PTUMConfig, n_items: int, text_dim: int | None = None,
                 item_vectors: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        self.n_items = n_items
        self.mask_id = n_items
        d = config.d_model
        self.item_emb: nn.Embedding | None = None
        self.item_proj: nn.Linear | None = None
        if config.item_encoder == "id":
            self.item_emb = nn.Embedding(n_items, d, padding_idx=PAD)
        else:
            if item_vectors is not None:
                text_dim = item_vectors.shape[1]
            if text_dim is None:
                raise ValueError("item_encoder='text' needs item_vectors or text_dim")
            vectors = item_vectors if item_vectors is not None else torch.zeros(n_items, text_dim)
            if vectors.shape[0] != n_items:
                raise ValueError(f"got {vectors.shape[0]} item vectors for {n_items} vocabulary rows")
            # A buffer, not a parameter: frozen, yet saved with the weights so a loaded model needs no encoder.
            self.register_buffer("item_vectors", vectors.float().clone())
            self.item_proj = nn.Linear(text_dim, d)
        self.mask_emb = nn.Parameter(torch.zeros(d))
        self.pos_emb = nn.Embedding(config.max_len, d)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, causal=False) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d)
        # Attention pooling (the paper's user-vector readout): a = softmax(q . tanh(W h + b)).
        self.pool_proj = nn.Linear(d, d)
        self.pool_query = nn.Linear(d, 1, bias=False)
        self.apply(self._init_weights)
        nn.init.normal_(self.mask_emb, mean=0.0, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                nn.init.zeros_(module.weight[module.padding_idx])

    def item_vectors_of(self, rows: torch.Tensor) -> torch.Tensor:
        """(...) vocabulary rows -> (..., D) item vectors (used as encoder input and as scoring targets)."""
        if self.item_emb is not None:
            return self.item_emb(rows)
        assert self.item_proj is not None
        out = self.item_proj(self.get_buffer("item_vectors")[rows])
        return out.masked_fill((rows == PAD).unsqueeze(-1), 0.0)  # padding is the zero vector, as in the ID table

    def all_item_vectors(self) -> torch.Tensor:
        """(n_items, D): every vocabulary row, padding included."""
        return self.item_vectors_of(torch.arange(self.n_items, device=self.pos_emb.weight.device))

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) rows (PAD = 0, [MASK] = n_items), right-padded -> (B, T, D) hidden states."""
        t = input_ids.shape[1]
        if t > self.config.max_len:
            raise ValueError(f"sequence of {t} positions is longer than max_len={self.config.max_len}")
        masked = input_ids == self.mask_id
        x = self.item_vectors_of(input_ids.masked_fill(masked, PAD))
        x = torch.where(masked.unsqueeze(-1), self.mask_emb.expand_as(x), x)
        x = self.dropout(x + self.pos_emb(torch.arange(t, device=input_ids.device)))
        keep = input_ids != PAD
        for block in self.blocks:
            x = block(x, keep)
        return self.ln_f(x)

    def pool(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T, D) hidden states -> (B, D) user vector, attention-weighted over real positions."""
        scores = self.pool_query(torch.tanh(self.pool_proj(hidden))).squeeze(-1)
        weights = scores.masked_fill(input_ids == PAD, float("-inf")).softmax(dim=-1)
        return (weights.unsqueeze(-1) * hidden).sum(dim=1)

    def user_vector(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.pool(self.encode(input_ids), input_ids)

    @staticmethod
    def _sampled_softmax(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of candidate 0 (the true item) against the rest, by dot product."""
        logits = torch.einsum("md,mcd->mc", queries, candidates)
        return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))

    def forward(self, input_ids: torch.Tensor | None = None, mask_candidates: torch.Tensor | None = None,
                prefix_ids: torch.Tensor | None = None, next_candidates: torch.Tensor | None = None) -> dict:
        """MBP: ``input_ids`` (B, T) with [MASK] ids, ``mask_candidates`` (B, T, 1 + N): true item then
        negatives at masked positions. NBP: ``prefix_ids`` (B, T'), ``next_candidates`` (B, K, 1 + N).
        The loss is the sum of the tasks present in the batch."""
        out: dict[str, torch.Tensor] = {}
        if input_ids is not None and mask_candidates is not None:
            masked = input_ids == self.mask_id
            hidden = self.encode(input_ids)[masked]
            out["masked_loss"] = self._sampled_softmax(hidden, self.item_vectors_of(mask_candidates[masked]))
        if prefix_ids is not None and next_candidates is not None:
            users = self.user_vector(prefix_ids)
            k = next_candidates.shape[1]
            real = next_candidates[..., 0] != PAD
            queries = users.unsqueeze(1).expand(-1, k, -1)[real]
            out["next_loss"] = self._sampled_softmax(queries, self.item_vectors_of(next_candidates[real]))
        if not out:
            raise ValueError("PTUM.forward got no task: pass input_ids + mask_candidates and/or "
                             "prefix_ids + next_candidates")
        out["loss"] = sum(out.values())  # type: ignore[assignment]
        return out

    # --- persistence -------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, vocabulary: list[str]) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        return self.save_config(folder, vocabulary)

    def save_config(self, folder: str | Path, vocabulary: list[str]) -> Path:
        """The config, the vocabulary (item id of row i + 1) and the text width, beside the weights."""
        text_dim = self.item_proj.in_features if self.item_proj is not None else None
        write_json(Path(folder) / CONFIG_NAME,
                   {"config": self.config.to_dict(), "vocabulary": vocabulary, "text_dim": text_dim})
        return Path(folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str = "cpu") -> tuple[PTUM, list[str]]:
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / CONFIG_NAME).read_text())
        vocabulary = [str(v) for v in meta["vocabulary"]]
        model = cls(PTUMConfig.from_dict(meta["config"]), len(vocabulary) + 1, text_dim=meta.get("text_dim"))
        model.load_state_dict(load_file(str(folder / WEIGHTS_NAME), device=map_location))
        return model.eval(), vocabulary


class PTUMClassifier(nn.Module):
    """A (pretrained or fresh) PTUM encoder with a linear head on the user vector, for user-level
    labels such as demographics. ``freeze_encoder``: only the head learns (a linear probe); the
    encoder stays in eval mode, so dropout does not blur the fixed user vectors either."""

    def __init__(self, encoder: PTUM, n_classes: int, freeze_encoder: bool = False):
        super().__init__()
        self.encoder = encoder
        self.freeze_encoder = freeze_encoder
        self.head = nn.Linear(encoder.config.d_model, n_classes)
        if freeze_encoder:
            encoder.requires_grad_(False)
            encoder.eval()

    def train(self, mode: bool = True) -> PTUMClassifier:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        logits = self.head(self.encoder.user_vector(input_ids))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out
