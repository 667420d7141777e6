"""A trained P5 model as a ``llmrec.scoring.Scorer``.

Each user's prompt is the sequential family's phrasing ``prompt`` (a trained one, or ``held_out``)
over their most recent history items. ``likelihood`` decoding scores every candidate by the
log-probability of its ID, so full ranking covers the whole catalogue; ``beam`` decoding scores the
items of the top ``num_beams`` beams by beam score and ranks every other candidate last (below the
lowest beam), which is how P5 is usually evaluated. With ``constrained=False`` beams may name no
item; ``diagnostics()`` counts them.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from llmrec.p5.config import P5Config
from llmrec.p5.model import P5Model, check_trained_for
from llmrec.p5.prompts import default_prompts, history_text
from llmrec.registry import BuildContext, register_scorer
from llmrec.scoring import Candidates, Histories, check_scores, per_user_candidates, rank_unknown_last


class P5Scorer:
    def __init__(self, p5: P5Model, name: str = "p5", prompt: str | None = None, decoding: str | None = None,
                 num_beams: int | None = None, constrained: bool | None = None, show_progress: bool = True):
        config = p5.config
        self.p5, self.name = p5, name
        self.prompt = prompt or config.prompt
        self.decoding = decoding or config.decoding
        self.num_beams = num_beams or config.num_beams
        self.constrained = config.constrained if constrained is None else constrained
        self.show_progress = show_progress
        self.prompts = default_prompts()
        self.prompts.render("sequential", self.prompt, history="")  # an unknown phrasing fails here, not mid-run
        self._beams = self._invalid = self._top1 = self._top1_invalid = 0

    def prompt_for(self, history: list[str]) -> str:
        items = list(history)[-self.p5.config.max_history:]
        return self.prompts.render("sequential", self.prompt, history=history_text(self.p5.index, items))

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        lists = per_user_candidates(candidates, len(histories))
        width = len(lists[0]) if lists else 0
        scores = np.zeros((len(histories), width))
        prompts = [self.prompt_for(list(h)) for h in histories]
        if self.decoding == "likelihood":
            for u in tqdm(range(len(prompts)), desc=f"{self.name} likelihood", disable=not self.show_progress,
                          leave=False):
                items = [str(c) for c in lists[u]]
                known = np.fromiter((i in self.p5.index for i in items), bool, len(items))
                row = np.full(len(items), np.nan)
                row[known] = self.p5.log_likelihoods(prompts[u], [i for i, k in zip(items, known) if k])
                scores[u] = self._floor(row)
        else:
            batch = self.p5.config.score_batch_size
            for start in range(0, len(prompts), batch):
                beams = self.p5.generate(prompts[start:start + batch], self.num_beams, self.constrained)
                for u, found in enumerate(beams, start=start):
                    self._count(found)
                    best: dict[str, float] = {}
                    for item, value in found:
                        if item is not None and item not in best:
                            best[item] = value
                    scores[u] = self._floor(np.array([best.get(str(c), np.nan) for c in lists[u]]))
        return check_scores(scores, len(histories), width, self.name)

    @staticmethod
    def _floor(row: np.ndarray) -> np.ndarray:
        """Candidates without a score (NaN: not in the index, or outside the beams) rank last, finitely."""
        return rank_unknown_last(np.nan_to_num(row, nan=0.0)[None], ~np.isnan(row)[None])[0]

    def _count(self, found: list[tuple[str | None, float]]) -> None:
        self._beams += len(found)
        self._invalid += sum(item is None for item, _ in found)
        self._top1 += 1
        self._top1_invalid += int(found[0][0] is None)

    def diagnostics(self) -> dict:
        out = {"index": self.p5.index.name, "leaky": self.p5.index.leaky, "prompt": self.prompt,
               "decoding": self.decoding}
        if self._beams:
            out.update(constrained=self.constrained, beams=self._beams, invalid_beams=self._invalid,
                       invalid_rate=round(self._invalid / self._beams, 4),
                       top1_invalid_rate=round(self._top1_invalid / self._top1, 4))
        return out


def build_p5(context: BuildContext, config: P5Config) -> P5Scorer:
    """Load ``context.load['p5']``, or train on the events known before the evaluated part."""
    from llmrec.p5.train import train_p5

    saved = context.load_dir("p5")
    if saved:
        p5 = P5Model.load(saved)
        check_trained_for(p5.trained_for, context.split, context.part, saved)
    else:
        p5 = train_p5(context.split, config, part=context.part)
    name = f"p5 ({p5.index.name})" if not p5.index.leaky else "p5 (original, LEAKY)"
    return P5Scorer(p5, name=name, prompt=config.prompt, decoding=config.decoding, num_beams=config.num_beams,
                    constrained=config.constrained, show_progress=context.show_progress)


register_scorer("p5", build_p5, P5Config, "P5: prompted text-to-text recommendation by item ID (trained; "
                "random / sequential / collaborative / semantic indexing, trie-constrained decoding)", trains=True)
