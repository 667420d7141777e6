"""P5 training examples from the events a model may know, and their collator.

Every example is (prompt text, answer text) rendered from ``split.known(part)`` only: sequential
(the next item after a history), direct yes/no (the true next item or a sampled item the user never
interacted with), direct pick (the true next item among sampled ones, in a seeded random order),
rating (the user's star rating of an item, where the data has ratings) and explanation (the review
text, where the data has a ``review`` column). Negatives are drawn from items outside the user's
*known* events with a seeded generator, so the examples are a function of the known events and the
seed alone: the evaluated events cannot change them (``tests/test_p5.py`` checks this).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from llmrec.data.schema import ITEM, RATING, TIME, USER
from llmrec.data.splits import Split
from llmrec.p5.config import P5Config
from llmrec.p5.indexing import ItemIndex
from llmrec.p5.prompts import PromptSet, history_text, item_text

log = logging.getLogger(__name__)
REVIEW = "review"


@dataclass(frozen=True)
class P5Example:
    user: str
    family: str
    phrasing: str
    source: str
    target: str


def user_sequences(events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each user's events in time order (ties keep the table's order)."""
    ordered = events.sort_values([USER, TIME], kind="stable")
    return {str(u): g for u, g in ordered.groupby(USER, sort=True)}


def _negatives(rng: np.random.Generator, items: np.ndarray, exclude: set[str], k: int) -> list[str]:
    """``k`` distinct items not in ``exclude`` (fewer when the catalogue is too small)."""
    out: list[str] = []
    tries = 0
    while len(out) < k and tries < 20 * k + 100:
        item = str(items[rng.integers(len(items))])
        tries += 1
        if item not in exclude and item not in out:
            out.append(item)
    return out


def build_examples(split: Split, index: ItemIndex, config: P5Config, prompts: PromptSet,
                   part: str = "test") -> list[P5Example]:
    """The mixed-family training examples for evaluating ``part`` (``split.known(part)`` only)."""
    rng = np.random.default_rng(config.seed)
    events = split.known(part)
    items = np.asarray(index.items())
    has_rating = RATING in events.columns and events[RATING].notna().any()
    has_review = REVIEW in events.columns
    families = [f for f in config.families
                if not (f == "rating" and not has_rating) and not (f == "explanation" and not has_review)]
    skipped = sorted(set(config.families) - set(families))
    if skipped:
        log.info("P5: no %s in the data; skipping the families %s", "ratings/reviews", skipped)
    seen = {f: prompts.phrasings(f, seen=True) for f in families}

    def example(user: str, family: str, target: str, **fields: object) -> P5Example:
        phrasing = str(seen[family][rng.integers(len(seen[family]))])
        return P5Example(user, family, phrasing, prompts.render(family, phrasing, **fields), target)

    out: list[P5Example] = []
    for user, group in user_sequences(events).items():
        seq = [str(i) for i in group[ITEM]]
        known = set(seq)
        positions = list(range(1, len(seq)))
        if config.targets_per_user > 0:
            positions = positions[-config.targets_per_user:]
        if not positions:
            continue
        histories = {t: history_text(index, seq[max(0, t - config.max_history):t]) for t in positions}
        if "sequential" in families:
            out.extend(example(user, "sequential", item_text(index, seq[t]), history=histories[t]) for t in positions)
        n_other = max(1, round(config.family_share * len(positions)))
        for family in families:
            if family == "sequential":
                continue
            for t in rng.choice(positions, size=min(n_other, len(positions)), replace=False):
                t = int(t)
                history = histories[t]
                if family == "direct_yesno":
                    positive = rng.random() < 0.5
                    negatives = [] if positive else _negatives(rng, items, known, 1)
                    candidate = seq[t] if positive or not negatives else negatives[0]
                    out.append(example(user, family, "yes" if candidate == seq[t] else "no", history=history,
                                       candidate=item_text(index, candidate)))
                elif family == "direct_pick":
                    listed = [seq[t], *_negatives(rng, items, known, config.pick_candidates - 1)]
                    rng.shuffle(listed)
                    out.append(example(user, family, item_text(index, seq[t]), history=history,
                                       candidates=" ; ".join(item_text(index, i) for i in listed)))
                elif family == "rating":
                    rating = group[RATING].iloc[t]
                    if pd.notna(rating):
                        out.append(example(user, family, str(int(round(float(rating)))), history=history,
                                           candidate=item_text(index, seq[t])))
                elif family == "explanation":
                    review = group[REVIEW].iloc[t]
                    rating = group[RATING].iloc[t] if has_rating else ""
                    if isinstance(review, str) and review.strip():
                        out.append(example(user, family, " ".join(review.split()), history=history,
                                           candidate=item_text(index, seq[t]),
                                           rating="" if pd.isna(rating) else str(int(round(float(rating))))))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


class P5Dataset(torch.utils.data.Dataset):
    """Tokenised examples: ``input_ids`` of the prompt and ``labels`` of the answer (+ EOS)."""

    def __init__(self, examples: list[P5Example], tokenizer, max_source_tokens: int = 512):
        self.examples = examples
        eos = tokenizer.eos_token_id
        sources = tokenizer([e.source for e in examples], add_special_tokens=False)["input_ids"]
        targets = tokenizer([e.target for e in examples], add_special_tokens=False)["input_ids"]
        self.rows = [(s[-max_source_tokens:], [*t, eos]) for s, t in zip(sources, targets)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        source, target = self.rows[i]
        return {"source": source, "target": target}


@dataclass
class P5Collator:
    """Right-padded batches. Encoder-decoder: ``input_ids`` = prompt, ``labels`` = answer. Decoder-only:
    ``input_ids`` = prompt + answer, ``labels`` = -100 over the prompt so only the answer is learned."""

    pad_token_id: int
    causal: bool = False

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        if self.causal:
            rows = [(b["source"] + b["target"], [-100] * len(b["source"]) + b["target"]) for b in batch]
            return self._pad(rows, "input_ids", "labels", label_pad=-100)
        inputs = self._pad([(b["source"], b["target"]) for b in batch], "input_ids", "labels", label_pad=-100)
        return inputs

    def _pad(self, rows: list[tuple[list[int], list[int]]], first: str, second: str, label_pad: int) -> dict:
        width_a = max(len(a) for a, _ in rows)
        width_b = max(len(b) for _, b in rows)
        a = torch.full((len(rows), width_a), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width_a), dtype=torch.long)
        b = torch.full((len(rows), width_b), label_pad, dtype=torch.long)
        for i, (x, y) in enumerate(rows):
            a[i, : len(x)] = torch.as_tensor(x)
            mask[i, : len(x)] = 1
            b[i, : len(y)] = torch.as_tensor(y)
        return {first: a, "attention_mask": mask, second: b}
