"""The LlamaRec verbalizer: one prompt per (user, candidate order), one forward pass, and each
candidate's score read from its letter's logit at the first answer position.

Letters are single tokens of the tokenizer as they follow the prompt (" A" after raw text, "A"
after a chat template's assistant turn); training appends exactly that token to exactly the prompt
tokens scoring uses, so the two never disagree on where the answer starts. A score is the
log-softmax over the list's letters, so it says how the model splits its belief among these
candidates and nothing else.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from llmrec.llm.item_prompts import ItemPromptTemplate
from llmrec.scoring import Candidates, Histories, check_scores, per_user_candidates

LETTERS = string.ascii_uppercase


def letters_for(n: int) -> list[str]:
    """The labels of ``n`` candidates; more candidates than letters is an error, never a silent cut."""
    if n > len(LETTERS):
        raise ValueError(f"llamarec labels candidates with single letters A-Z: {n} candidates exceed the "
                         f"{len(LETTERS)} letters. Rerank at most {len(LETTERS)} (e.g. --num-negatives "
                         f"{len(LETTERS) - 1} or a recalled list of {len(LETTERS)})")
    return list(LETTERS[:n])


class PromptRenderer(ItemPromptTemplate):
    """Renders the reranking prompt (``prompts/llamarec/<template>.j2``) for a history and a list."""

    def __init__(self, item_text: Mapping[str, str], template: str = "rerank", domain: str = "item",
                 history_len: int = 10, max_item_chars: int = 60, evidence: str = "none",
                 popularity: Mapping[str, int] | None = None) -> None:
        super().__init__("llamarec", template, item_text, domain, history_len, max_item_chars, evidence, popularity)

    def render(self, history: Sequence[str], candidates: Sequence[str]) -> str:
        labels = letters_for(len(candidates))
        shown = [str(i) for i in history][-self.history_len:] if self.history_len else []
        rows = [{"label": lab, "text": self.text(str(c)), "popularity": self.popularity.get(str(c), 0)}
                for lab, c in zip(labels, candidates, strict=True)]
        # The answer token brings its own leading space, so the prompt never ends in one.
        return self.template.render(history=[self.text(i) for i in shown], candidates=rows, noun=self.domain,
                                    verb=self.verb, evidence=self.evidence).rstrip()


class LetterRanker:
    """Token ids of prompts and letters for one tokenizer, and batched letter logits from a model."""

    def __init__(self, model: Any, tokenizer: Any, renderer: PromptRenderer, chat_template: bool = False,
                 batch_size: int = 8, max_length: int = 2048) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.renderer = renderer
        self.chat = bool(chat_template)
        if self.chat and not getattr(tokenizer, "chat_template", None):
            raise ValueError("chat_template=True but the tokenizer has no chat template")
        self.batch_size = batch_size
        self.max_length = max_length
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad) if pad is not None else 0
        self.letter_ids = self._letter_ids()

    def _letter_ids(self) -> list[int]:
        lead = "" if self.chat else " "
        ids = []
        for letter in LETTERS:
            tokens = self.tokenizer(lead + letter, add_special_tokens=False)["input_ids"]
            if len(tokens) != 1:
                raise ValueError(f"llamarec needs single-token letters; {lead + letter!r} is {len(tokens)} tokens "
                                 "with this tokenizer")
            ids.append(int(tokens[0]))
        if len(set(ids)) != len(ids):
            raise ValueError("llamarec: two letters share a token with this tokenizer")
        return ids

    def prompt_ids(self, history: Sequence[str], candidates: Sequence[str]) -> list[int]:
        text = self.renderer.render(history, candidates)
        if self.chat:
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True)
        ids = list(self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"])
        if len(ids) > self.max_length:
            raise ValueError(f"llamarec: a prompt of {len(ids)} tokens exceeds max length {self.max_length}; "
                             "lower history_len or max_item_chars")
        return ids

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def letter_logits(self, prompts: Sequence[list[int]], n: int, show_progress: bool = False) -> np.ndarray:
        """(len(prompts), n) logits of letters A.. at each prompt's answer position."""
        was_training = self.model.training
        self.model.eval()
        out = np.zeros((len(prompts), n), dtype=np.float64)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # little padding per batch
        columns = torch.tensor(self.letter_ids[:n])
        try:
            for s in tqdm(range(0, len(order), self.batch_size), desc="llamarec", disable=not show_progress,
                          leave=False):
                rows = order[s:s + self.batch_size]
                batch = left_pad([prompts[i] for i in rows], self.pad_id)
                logits = self.model(**{k: v.to(self.device) for k, v in batch.items()}, logits_to_keep=1).logits
                out[rows] = logits[:, -1, :].index_select(-1, columns.to(logits.device)).double().cpu().numpy()
        finally:
            if was_training:
                self.model.train()
        return out


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded ids, mask and positions: every answer position is last, and explicit positions keep
    each row as if unpadded, so a batched score equals the single-prompt score."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for r, seq in enumerate(sequences):
        ids[r, width - len(seq):] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[r, width - len(seq):] = 1
    return {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}


def log_softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def bootstrap_orders(history: Sequence[str], candidates: Sequence[str], copies: int, seed: int) -> list[np.ndarray]:
    """``copies`` orders of a list: the given one first, then shuffles seeded on the seed, the history and
    the candidate ids (so label-blind, and the same in every batch and run)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{int(seed)}\x1e{chr(31).join(map(str, history))}\x1e{chr(31).join(map(str, candidates))}".encode())
    rng = np.random.default_rng(int.from_bytes(digest.digest(), "little"))
    n = len(candidates)
    return [np.arange(n)] + [rng.permutation(n) for _ in range(copies - 1)]


class LlamaRecScorer:
    """A ``Scorer``: each candidate's letter log-softmax, averaged over ``bootstrap`` orders."""

    def __init__(self, ranker: LetterRanker, bootstrap: int = 1, seed: int = 0, name: str = "llamarec",
                 show_progress: bool = False, info: dict | None = None) -> None:
        self.ranker = ranker
        self.bootstrap = bootstrap
        self.seed = seed
        self.name = name
        self.show_progress = show_progress
        self.info = dict(info or {})
        self.prompts = 0
        self.prompt_tokens = 0

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        rows = [[str(c) for c in r] for r in per_user_candidates(candidates, len(histories))]
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            raise ValueError(f"llamarec: per-user candidate lists must have equal lengths, got {sorted(widths)}")
        n = widths.pop() if widths else 0
        letters_for(n)  # more candidates than letters fails here, before any model call
        scores = np.zeros((len(rows), n), dtype=np.float64)
        if n == 0:
            return scores
        jobs = [(u, order) for u, (h, r) in enumerate(zip(histories, rows, strict=True))
                for order in bootstrap_orders(h, r, self.bootstrap, self.seed)]
        prompts = [self.ranker.prompt_ids(histories[u], [rows[u][i] for i in order]) for u, order in jobs]
        self.prompts += len(prompts)
        self.prompt_tokens += sum(len(p) for p in prompts)
        values = log_softmax(self.ranker.letter_logits(prompts, n, self.show_progress))
        for (u, order), row in zip(jobs, values, strict=True):
            scores[u, order] += row / self.bootstrap  # shown position -> the item's place in the given list
        return check_scores(scores, len(rows), n, self.name)

    def diagnostics(self) -> dict:
        return {**self.info, "prompts_scored": self.prompts, "prompt_tokens": self.prompt_tokens,
                "bootstrap": self.bootstrap}
