"""A collaborative prior for TALLRec, added to the LLM's answer as a logit offset.

CoLLM (Zhang et al., 2023) and LLaRA show that a small LLM only matches collaborative filtering on
rating prediction when collaborative information reaches it. CoLLM maps ID embeddings into the
token space; with 16 to 256 labelled examples such a mapping cannot be learnt, so llmrec brings the
collaborative signal in where it needs no learning: as an offset on the answer's logit,

    P(like) = sigmoid(prior(item stats, user stats) + logit(Yes) - logit(No)),

and LoRA is trained with that offset in place (``train.OffsetYesNoTrainer``), so the few shots teach
the LLM what the prior gets wrong instead of what it already knows. With an untrained LLM the
offset is the prior plus the base model's zero-shot opinion.

The prior is a logistic regression (scikit-learn) on six numbers of the evidence statistics
(``llmrec.tallrec.evidence.Stats``): the item's and the user's share of likes and mean rating, each
shrunk toward the global values by ``SHRINK`` ratings, the item's log number of ratings, and how
far above the items' means the user rates (each rating minus its item's mean when it was rated,
shrunk toward 0). It is
fitted on the training part of the examples built from the known events, each example's
statistics taken from events strictly before its own target (``items_before`` / ``user_before``):
the same statistics the scored pairs get from the events known before the evaluated part. Like the
item prior baseline, it uses every known rating; the LLM sees only its ``shots``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from llmrec.tallrec.evidence import Stats

PRIORS = ("none", "evidence")
#: Pseudo-ratings at the global values that every share and mean is shrunk with (a cold item or
#: user then sits exactly at the global value).
SHRINK = 5.0
FEATURES = ("item share liked (logit, shrunk)", "user share liked (logit, shrunk)", "item mean rating (shrunk)",
            "user mean rating (shrunk)", "item log(1 + ratings)", "user rating minus item mean (shrunk)")


def check_prior(mode: str) -> str:
    if mode not in PRIORS:
        raise ValueError(f"TALLRec prior must be one of {list(PRIORS)}, got {mode!r}")
    return mode


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


@dataclass
class CollaborativePrior:
    """Logistic-regression coefficients over :data:`FEATURES` and the global values they shrink to."""

    coef: list[float]
    intercept: float
    like_rate: float
    mean_rating: float

    def features(self, item: Stats | None, user: Stats | None) -> list[float]:
        def shrunk(stats: Stats | None) -> tuple[float, float]:
            n = 0 if stats is None else stats.count
            if stats is None or n == 0:
                return self.like_rate, self.mean_rating
            return ((stats.liked * n + self.like_rate * SHRINK) / (n + SHRINK),
                    (stats.mean * n + self.mean_rating * SHRINK) / (n + SHRINK))

        (item_liked, item_mean), (user_liked, user_mean) = shrunk(item), shrunk(user)
        # How much more generous than others the user is (a bias model's user term), shrunk toward 0.
        generosity = 0.0 if user is None else user.residual / (user.residual_count + SHRINK)
        return [_logit(item_liked), _logit(user_liked), item_mean - self.mean_rating, user_mean - self.mean_rating,
                math.log1p(0 if item is None else item.count), generosity]

    def logit(self, item: Stats | None, user: Stats | None) -> float:
        return float(np.dot(self.coef, self.features(item, user)) + self.intercept)

    @classmethod
    def fit(cls, stats: Sequence[tuple[Stats | None, Stats | None]], labels: Sequence[int]) -> CollaborativePrior:
        """Fit on (item stats, user stats) of training examples and their answers (1 liked, 0 not)."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(labels, dtype=int)
        if len(stats) != len(y):
            raise ValueError(f"prior: {len(stats)} statistics for {len(y)} labels")
        if len(set(y.tolist())) < 2:
            raise ValueError("prior: the training examples need both answers (liked and not liked) to fit on")
        known = [s for pair in stats for s in pair if s is not None and s.count > 0]
        weight = sum(s.count for s in known)
        # Global values: the examples' own answers give the like rate; the mean rating comes from the
        # statistics (count-weighted), both known before any scored pair.
        like_rate = float(y.mean())
        mean_rating = float(sum(s.mean * s.count for s in known) / weight) if weight else 3.0
        prior = cls([0.0] * len(FEATURES), 0.0, like_rate, mean_rating)
        x = np.array([prior.features(item, user) for item, user in stats])
        model = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
        prior.coef, prior.intercept = [float(c) for c in model.coef_[0]], float(model.intercept_[0])
        return prior

    def to_dict(self) -> dict:
        return {"coef": self.coef, "intercept": self.intercept, "like_rate": self.like_rate,
                "mean_rating": self.mean_rating, "features": list(FEATURES), "shrink": SHRINK}

    @classmethod
    def from_dict(cls, values: dict, source: str = "tallrec.json") -> CollaborativePrior:
        missing = [k for k in ("coef", "intercept", "like_rate", "mean_rating") if k not in values]
        if missing:
            raise ValueError(f"{source}: prior field(s) {missing} missing (expected the dict of "
                             f"CollaborativePrior.to_dict)")
        if (list(values.get("features", FEATURES)) != list(FEATURES) or len(values["coef"]) != len(FEATURES)
                or float(values.get("shrink", SHRINK)) != SHRINK):
            raise ValueError(f"{source}: the prior was fitted on features {values.get('features')}, this llmrec "
                             f"computes {list(FEATURES)}")
        return cls([float(c) for c in values["coef"]], float(values["intercept"]), float(values["like_rate"]),
                   float(values["mean_rating"]))


def with_offsets(examples: Sequence[Any], prior: CollaborativePrior) -> list[Any]:
    """``examples`` (built with ``with_stats``) carrying the prior's logit as their ``offset``."""
    out = []
    for e in examples:
        if e.stats is None:
            raise ValueError("prior: an example has no rating statistics; build the examples with with_stats=True")
        out.append(replace(e, offset=prior.logit(*e.stats)))
    return out


def fit_prior(examples: Sequence[Any]) -> CollaborativePrior:
    """The prior fitted on training examples built with ``with_stats`` (their statistics and answers)."""
    if any(e.stats is None for e in examples):
        raise ValueError("prior: examples without rating statistics; build them with with_stats=True")
    return CollaborativePrior.fit([e.stats for e in examples], [e.label for e in examples])
