"""Registers ``girl``: a generator writes the item a user's history calls for; candidates are scored
by the similarity of their text to that generation (sentence encoder, inner product).

On the one path (``llmrec evaluate --scorers popularity girl --load girl=runs/girl/ml-100k``) a
scorer sees histories, which carry their user's id (``History.user``). On job-views the profile is
the applicant's, built from the data set's user table (experience rows, positions of interest: user
features, never a label) as the stages train on it; for a user without one, and on MovieLens, it is
built from the history: the latest ``history_len`` history items' texts (``Liked movies: ...`` /
``Viewed jobs: ...``), rendered with the same prompt the stages train on. ``--load girl=FOLDER``
names a work folder holding ``sft/`` (and ``rl/``, used when present); without it the untrained
``policy`` generates (zero-shot). The scorer never
trains: training is ``llmrec girl sft | reward | rl``; ``llmrec girl ground`` evaluates the
trained generators on the held-out side of GIRL's user split.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.girl.config import GirlConfig
from llmrec.girl.model import check_generation, generate, render_prompt
from llmrec.registry import BuildContext, register_scorer
from llmrec.scoring import Candidates, Histories, check_scores, history_user, is_shared, per_user_candidates

logger = logging.getLogger(__name__)
HISTORY_LABEL = {"movie": "Liked movies", "job": "Viewed jobs"}


class GirlScorer:
    """A ``Scorer``: generate once per history, embed, score candidates by inner product."""

    def __init__(self, model: Any, tokenizer: Any, encoder: Any, item_text: Mapping[str, str], domain: str,
                 config: GirlConfig, name: str = "girl", info: dict | None = None,
                 profiles: Mapping[str, str] | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.item_text = item_text
        self.domain = domain
        self.config = config
        self.name = name
        self.info = dict(info or {})
        self.profiles = dict(profiles or {})
        self.statuses = {"ok": 0, "empty": 0, "echo": 0}
        self._item_vectors: dict[str, np.ndarray] = {}

    def profile(self, history: Sequence[str]) -> str:
        user = history_user(history)
        if user is not None and user in self.profiles:
            return self.profiles[user]
        shown = [self.item_text.get(str(i), "") for i in list(history)[-self.config.history_len:]]
        text = "; ".join(t for t in shown if t)
        label = HISTORY_LABEL.get(self.domain, "History")
        return (f"{label}: {text}" if text else f"{label}: none")[: self.config.max_profile_chars]

    def generations(self, histories: Histories) -> list[str]:
        profiles = [self.profile(h) for h in histories]
        prompts = [render_prompt(p, "movie" if self.domain == "movie" else "job") for p in profiles]
        raw = generate(self.model, self.tokenizer, prompts, self.config.max_new_tokens, do_sample=False,
                       batch_size=self.config.gen_batch_size, max_prompt_tokens=self.config.max_prompt_tokens)
        out = []
        for text, profile in zip(raw, profiles, strict=True):
            cleaned, status = check_generation(text, profile)
            self.statuses[status] += 1
            out.append(cleaned if status == "ok" else "")
        return out

    def _vectors(self, items: list[str]) -> np.ndarray:
        missing = [i for i in dict.fromkeys(items) if i not in self._item_vectors]
        if missing:
            vectors = self.encoder.encode([self.item_text.get(i, "") for i in missing], show_progress=False)
            self._item_vectors.update(zip(missing, vectors, strict=True))
        return np.stack([self._item_vectors[i] for i in items])

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        texts = self.generations(histories)
        queries = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        todo = [i for i, t in enumerate(texts) if t]
        if todo:
            queries[todo] = self.encoder.encode([texts[i] for i in todo], show_progress=False)
        if is_shared(candidates):
            scores = queries @ self._vectors([str(c) for c in candidates]).T
        else:
            rows = per_user_candidates(candidates, len(histories))
            scores = np.stack([self._vectors([str(c) for c in row]) @ queries[r] for r, row in enumerate(rows)])
        width = len(candidates) if is_shared(candidates) else len(per_user_candidates(candidates, len(histories))[0])
        return check_scores(scores, len(histories), width, self.name)

    def diagnostics(self) -> dict:
        return {**self.info, "generations": dict(self.statuses)}


def build_girl(context: BuildContext, config: GirlConfig) -> GirlScorer:
    from llmrec.embed import load_sentence_encoder
    from llmrec.girl.data import job_profiles
    from llmrec.girl.model import load_causal_lm
    from llmrec.girl.train import load_rl, load_sft

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    saved = context.load_dir("girl")
    if saved:
        model, tokenizer = load_sft(Path(saved) / "sft", config.device)
        mode = "sft"
        if (Path(saved) / "rl").is_dir():
            model, mode = load_rl(Path(saved) / "rl", model), "rl"
    else:
        model, tokenizer = load_causal_lm(config.policy, config.device)
        mode = "zero-shot"
    domain = context.dataset.domain
    profiles = job_profiles(context.dataset, config.max_profile_chars)[0] if domain == "job" else {}
    return GirlScorer(model, tokenizer, load_sentence_encoder(config.encoder), context.item_text(), domain, config,
                      info={"mode": mode, "folder": saved, "user_profiles": len(profiles)}, profiles=profiles)


register_scorer("girl", build_girl, GirlConfig,
                "GIRL: a (SFT + RLOO tuned) causal LM writes the item the history calls for; candidates scored by "
                "embedding similarity to it (load a work folder with --load girl=FOLDER; train with `llmrec girl`)",
                trains=True, uses_llm=True, tasks=("ranking",))
