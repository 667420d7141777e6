"""The next-title prompt and continuation texts, and the scorer that reads each candidate's
log-likelihood as the continuation of its user's prompt.

Scoring goes through the LLM layer's ``HFCausalLM.loglikelihood``: the prompt runs once per user
and every candidate's continuation is scored against its cached state. Training tokenises prompt
and continuation with the same ``HFCausalLM.split_boundary``, so the tuned tokens are the scored ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from llmrec.llm.item_prompts import ItemPromptTemplate
from llmrec.scoring import Candidates, Histories, check_scores, per_user_candidates


class TitlePrompter(ItemPromptTemplate):
    """Renders ``prompts/nexttitle/<template>.j2`` for a history, and an item's continuation text."""

    def __init__(self, item_text: Mapping[str, str], template: str = "next", domain: str = "item",
                 history_len: int = 8, max_item_chars: int = 60, evidence: str = "none",
                 popularity: Mapping[str, int] | None = None) -> None:
        super().__init__("nexttitle", template, item_text, domain, history_len, max_item_chars, evidence, popularity)

    def prompt(self, history: Sequence[str]) -> str:
        shown = [str(i) for i in history][-self.history_len:]
        # The continuation brings its own leading space, so the prompt never ends in one.
        return self.template.render(history=[self.text(i) for i in shown], noun=self.domain, verb=self.verb,
                                    evidence=self.evidence).rstrip()

    def hint(self, item: str) -> str:
        """The continuation's evidence prefix: `` [pop B]`` with evidence=popularity, else empty."""
        return f" [pop {self.popularity.get(str(item), 0)}]" if self.evidence == "popularity" else ""

    def continuation(self, item: str) -> str:
        """``<hint> <title>\\n`` (the newline ends the title, so a title is not scored as a prefix of a longer one)."""
        return f"{self.hint(item)} {self.text(str(item))}\n"


def combine(parts: dict[str, np.ndarray], score: str, title_weight: float = 0.1) -> np.ndarray:
    """A candidate score from the log-likelihood parts of ``NextTitleScorer.parts`` (see NextTitleConfig.score)."""
    if score == "sum":
        return parts["full"]
    if score == "mean":
        return parts["full"] / parts["tokens"]
    if score == "pmi":
        return parts["full"] - parts["full0"]
    if score == "hint+pmi":
        title_pmi = (parts["full"] - parts["hint"]) - (parts["full0"] - parts["hint0"])
        return parts["hint"] + title_weight * title_pmi
    raise ValueError(f"nexttitle: unknown score {score!r}")


class NextTitleScorer:
    """A ``Scorer``: each candidate's continuation log-likelihood given the prompt, combined by ``score``."""

    def __init__(self, lm: Any, prompter: TitlePrompter, score: str = "sum", title_weight: float = 0.1,
                 name: str = "nexttitle", show_progress: bool = False, info: dict | None = None) -> None:
        self.lm = lm  # an llmrec.llm.hf.HFCausalLM over the tuned (or base) model
        self.prompter = prompter
        self.score_name = score
        self.title_weight = title_weight
        self.name = name
        self.show_progress = show_progress
        self.info = dict(info or {})
        self.prompts = 0
        self.continuations = 0
        self._lengths: dict[str, int] = {}
        self._unconditional: dict[str, tuple[float, float]] = {}  # item -> (full, hint) given no history

    def _length(self, text: str) -> int:
        if text not in self._lengths:
            self._lengths[text] = max(1, self.lm.token_count(text))
        return self._lengths[text]

    def _given_no_history(self, items: Sequence[str], with_hint: bool) -> tuple[np.ndarray, np.ndarray]:
        """Each item's continuation (and hint) log-likelihood after the empty-history prompt, cached per
        item: it depends on the item alone, never on the user."""
        missing = list(dict.fromkeys(i for i in items if i not in self._unconditional))
        if missing:
            empty = self.prompter.prompt([])
            full = self.lm.loglikelihood(empty, [self.prompter.continuation(i) for i in missing])
            hint = (self.lm.loglikelihood(empty, [self.prompter.hint(i) for i in missing]) if with_hint
                    else np.zeros(len(missing)))
            self.prompts += 1
            self._unconditional.update({i: (float(f), float(h)) for i, f, h in zip(missing, full, hint, strict=True)})
        values = np.asarray([self._unconditional[i] for i in items], dtype=np.float64).reshape(len(items), 2)
        return values[:, 0], values[:, 1]

    def parts(self, history: Sequence[str], candidates: Sequence[str], needed: str | None = None) -> dict:
        """Log-likelihood parts of each candidate's continuation: ``full`` and ``tokens`` always; ``hint``
        (the evidence prefix), ``full0`` and ``hint0`` (given an empty history) where ``needed`` (a score
        name; None: every part) uses them."""
        items = [str(c) for c in candidates]
        texts = [self.prompter.continuation(c) for c in items]
        prompt = self.prompter.prompt(history)
        out = {"full": np.asarray(self.lm.loglikelihood(prompt, texts), dtype=np.float64),
               "tokens": np.asarray([self._length(t) for t in texts], dtype=np.float64)}
        self.prompts += 1
        self.continuations += len(texts)
        with_hint = self.prompter.evidence != "none" and needed in (None, "hint+pmi")
        if with_hint:
            out["hint"] = np.asarray(self.lm.loglikelihood(prompt, [self.prompter.hint(c) for c in items]))
        else:
            out["hint"] = np.zeros(len(items))
        if needed in (None, "pmi", "hint+pmi"):
            out["full0"], out["hint0"] = self._given_no_history(items, with_hint)
        return out

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        rows = [[str(c) for c in r] for r in per_user_candidates(candidates, len(histories))]
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            raise ValueError(f"nexttitle: per-user candidate lists must have equal lengths, got {sorted(widths)}")
        width = widths.pop() if widths else 0
        scores = np.zeros((len(rows), width), dtype=np.float64)
        for u, (history, row) in enumerate(tqdm(list(zip(histories, rows, strict=True)), desc=self.name,
                                               disable=not self.show_progress, leave=False)):
            scores[u] = combine(self.parts(history, row, self.score_name), self.score_name, self.title_weight)
        return check_scores(scores, len(rows), width, self.name)

    def diagnostics(self) -> dict:
        usage = getattr(self.lm, "usage", None)
        out = {**self.info, "prompts_scored": self.prompts, "continuations_scored": self.continuations,
               "score": self.score_name, "title_weight": self.title_weight}
        if usage is not None:
            out["usage"] = dataclasses.asdict(usage)
        return out
