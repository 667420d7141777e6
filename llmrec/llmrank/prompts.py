"""LLMRank prompts: jinja2 templates under ``prompts/llmrank/`` filled with quoted item text.

Item text is untrusted (a title may say "ignore the instructions", hold newlines or fake
numbering, or spell a chat control token). :func:`quote_item` turns any text into one line in
double quotes, so the prompt's structure (one candidate per line, the identifiers we parse) cannot
be changed by an item. Templates receive only quoted text.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM, TIME, USER
from llmrec.llm.base import Prompt
from llmrec.llm.sanitize import clean_catalogue_text

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts" / "llmrank"

#: noun -> (past participle, base form) used by the templates: "I've played ...", "like to play next".
DOMAIN_VERBS: dict[str, tuple[str, str]] = {
    "game": ("played", "play"),
    "movie": ("watched", "watch"),
    "product": ("purchased", "purchase"),
    "news": ("read", "read"),
    "book": ("read", "read"),
    "job": ("viewed", "apply for"),
    "item": ("interacted with", "try"),
}

#: First-token mode labels: one character each, so each is a single token in every tokenizer we ship.
LETTERS = string.ascii_uppercase + string.ascii_lowercase

def quote_item(text: object, max_chars: int = 120) -> str:
    """One safe line for an item, JSON-quoted (inner quotes and backslashes escaped): the text goes
    through ``llmrec.llm.sanitize.clean_catalogue_text``, shared by every prompt that carries
    catalogue text (chat markers such as ``<|im_start|>``, ``[INST]``, ``<<SYS>>`` neutralised)."""
    return json.dumps(clean_item_text(text, max_chars), ensure_ascii=False)


def clean_item_text(text: object, max_chars: int = 120) -> str:
    """The unquoted single-line form of an item's text (what scoring mode asks the model to write,
    and what the parser matches titles against): the same cleaning as :func:`quote_item`."""
    return clean_catalogue_text(text, max_chars)


@dataclass
class Demonstration:
    """A worked example for few-shot prompts, built from a training sequence (never a test target)."""

    history: list[str]
    candidates: list[str]
    answer: str
    """The item id that really came next in the training sequence."""


def labels_for(mode: str, n: int) -> list[str]:
    """Candidate identifiers: letters for first-token mode (one token each), numbers otherwise."""
    if mode == "first-token":
        if n > len(LETTERS):
            raise ValueError(f"first-token mode labels candidates with single letters; {n} candidates "
                             f"exceed the {len(LETTERS)} available (use fewer candidates)")
        return list(LETTERS[:n])
    return [str(i + 1) for i in range(n)]


class PromptBuilder:
    """Renders one LLMRank prompt for a user's history and an ordered candidate list."""

    def __init__(
        self,
        item_text: Mapping[str, str] | Callable[[str], str],
        *,
        prompt: str = "sequential",
        domain: str = "item",
        max_history: int = 20,
        max_item_chars: int = 120,
        template_dir: str | Path = PROMPTS_DIR,
    ) -> None:
        self._lookup = item_text
        self.domain = domain
        self.max_history = max_history
        self.max_item_chars = max_item_chars
        self.verb, self.verb_base = DOMAIN_VERBS.get(domain, DOMAIN_VERBS["item"])
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(template_dir)),
            # Plain-text prompts: HTML escaping would garble titles; safety comes from quote_item.
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
        )
        try:
            self.template = env.get_template(f"{prompt}.j2")
        except jinja2.TemplateNotFound:
            raise FileNotFoundError(f"prompt template {prompt}.j2 not found in {template_dir}") from None
        self.prompt_name = prompt

    # --- item text ---------------------------------------------------------------------------
    def raw_text(self, item: str) -> str:
        text = self._lookup(item) if callable(self._lookup) else self._lookup.get(item)
        return f"{self.domain} {item}" if text is None or str(text).strip() == "" else str(text)

    def display_text(self, item: str) -> str:
        """The unquoted line an answer would name (scoring mode's continuation, the parser's titles)."""
        return clean_item_text(self.raw_text(item), self.max_item_chars)

    def quoted(self, item: str) -> str:
        return quote_item(self.raw_text(item), self.max_item_chars)

    # --- rendering ---------------------------------------------------------------------------
    def render(
        self,
        history: Sequence[str],
        candidates: Sequence[str],
        mode: str,
        demonstrations: Sequence[Demonstration] = (),
        include_history: bool = True,
        plain: bool = False,
    ) -> str:
        """The prompt text. ``include_history=False`` gives the history-free prompt that calibrated
        scoring uses for each candidate's unconditional likelihood. ``plain=True`` (a model without
        a chat template) ends the text with an answer cue: ``"Answer:"`` then a newline for a
        written ranking, a space for a single answer (the backend moves that space onto the answer)."""
        hist = list(history)[-self.max_history:] if include_history else []
        demos = [self._demo_context(d, mode) for d in demonstrations] if include_history else []
        text = self.template.render(
            noun=self.domain,
            verb=self.verb,
            verb_base=self.verb_base,
            mode=mode,
            history=[self.quoted(i) for i in hist],
            candidates=self._candidate_context(candidates, mode),
            demonstrations=demos,
            plain=plain,
        ).strip()
        if plain:
            return text + ("\n" if mode == "generate" else " ")
        return text + "\n"

    def prompt(self, history: Sequence[str], candidates: Sequence[str], mode: str,
               demonstrations: Sequence[Demonstration] = (), include_history: bool = True,
               chat: bool = True) -> Prompt:
        """Chat messages (one user turn) for a model with a chat template, else the plain text."""
        text = self.render(history, candidates, mode, demonstrations, include_history, plain=not chat)
        return [{"role": "user", "content": text}] if chat else text

    def _candidate_context(self, candidates: Sequence[str], mode: str) -> list[dict]:
        labels = labels_for(mode, len(candidates))
        if mode == "first-token":
            opener, closer = "", "."
        else:
            opener, closer = "[", "]"
        return [{"label": lab, "label_open": opener, "label_close": closer, "text": self.quoted(item)}
                for lab, item in zip(labels, candidates)]

    def _demo_context(self, demo: Demonstration, mode: str) -> dict:
        labels = labels_for(mode, len(demo.candidates))
        pos = demo.candidates.index(demo.answer)
        if mode == "generate":
            order = [pos] + [i for i in range(len(demo.candidates)) if i != pos]
            answer = "\n".join(f"[{labels[i]}]" for i in order)
        elif mode == "first-token":
            answer = labels[pos]
        else:
            answer = self.display_text(demo.answer)
        return {
            "history": [self.quoted(i) for i in demo.history[-self.max_history:]],
            "candidates": self._candidate_context(demo.candidates, mode),
            "answer": answer,
        }


def build_demonstrations(train: pd.DataFrame, k: int, n_candidates: int = 5, max_history: int = 10,
                         seed: int = 0) -> list[Demonstration]:
    """``k`` worked examples from training interactions only: a random user's training sequence,
    its last training item as the answer, and ``n_candidates - 1`` random training items beside it.

    Test targets are not in ``train`` (the split guarantees it), so no label reaches a prompt.
    """
    if k <= 0:
        return []
    rng = np.random.default_rng(seed)
    ordered = train.sort_values([USER, TIME], kind="stable")
    sequences = [g for g in ordered.groupby(USER, sort=True)[ITEM].agg(list) if len(g) >= 2]
    if not sequences:
        return []
    items = ordered[ITEM].unique()
    demos: list[Demonstration] = []
    for u in rng.choice(len(sequences), size=min(k, len(sequences)), replace=False):
        seq = [str(i) for i in sequences[int(u)]]
        history, answer = seq[:-1][-max_history:], seq[-1]
        taken = set(seq)
        negatives: list[str] = []
        for idx in rng.permutation(len(items)):
            item = str(items[idx])
            if item not in taken:
                negatives.append(item)
                taken.add(item)
            if len(negatives) >= n_candidates - 1:
                break
        cands = negatives + [answer]
        cands = [cands[i] for i in rng.permutation(len(cands))]
        demos.append(Demonstration(history=history, candidates=cands, answer=answer))
    return demos
