"""Features from other scorers, and the learning-to-rank models that combine them.

Each feature scorer gives three features per (user, candidate): its raw score (comparable across
lists for global signals such as popularity), its z-score within the list and its rank within the
list in [0, 1] (comparable across users for scorers whose scale depends on the history, such as
item-CF sums or LLM log-likelihoods). The history length is one more feature, so the model can
learn when collaborative signals are reliable. Nothing here sees a label except ``fit``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata
from tqdm.auto import tqdm

from llmrec.ltr.config import LTRConfig
from llmrec.scoring import Candidates, Histories, Scorer, check_scores, per_user_candidates
from llmrec.utils.io import atomic_write, write_json

KINDS = ("raw", "z", "rank")
CONTEXT_FEATURES = ["history_len"]


def feature_names(scorers: Sequence[str]) -> list[str]:
    return [f"{s}:{k}" for s in scorers for k in KINDS] + CONTEXT_FEATURES


def list_features(scores: np.ndarray) -> np.ndarray:
    """(n, c) scores of one scorer -> (n, c, 3): raw, z-score and rank within each list."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    z = np.divide(scores - mean, std, out=np.zeros_like(scores), where=std > 0)
    c = scores.shape[1]
    rank = (rankdata(scores, axis=1, method="average") - 1) / max(c - 1, 1)
    return np.stack([scores, z, rank], axis=-1)


def compute_features(scorers: Sequence[Scorer], histories: Histories, candidates: Sequence[Sequence[str]],
                     batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
    """(n, c, n_features) for per-user candidate lists, every scorer called on the same batches."""
    n = len(histories)
    c = len(candidates[0]) if n else 0
    out = np.zeros((n, c, 3 * len(scorers) + len(CONTEXT_FEATURES)))
    for j, scorer in enumerate(scorers):
        desc = f"ltr feature {scorer.name}"
        for start in tqdm(range(0, n, batch_size), desc=desc, disable=not show_progress):
            stop = min(start + batch_size, n)
            raw = check_scores(scorer.score(histories[start:stop], candidates[start:stop]), stop - start, c,
                               scorer.name)
            out[start:stop, :, 3 * j:3 * j + 3] = list_features(raw)
    out[:, :, -1] = np.log1p([len(h) for h in histories])[:, None]
    return out


@dataclass
class FitData:
    """The fitting lists as features, kept so an ablation refits without rescoring."""

    features: np.ndarray  # (n_lists, c, n_features)
    labels: np.ndarray  # (n_lists, c)
    names: list[str]

    def without(self, scorers: Sequence[str]) -> FitData:
        keep = [i for i, n in enumerate(self.names) if n.split(":")[0] not in scorers]
        return FitData(self.features[:, :, keep], self.labels, [self.names[i] for i in keep])


class Ranker:
    """LambdaMART (LightGBM) or a logistic blend over the features; saved as text / JSON, no pickle."""

    def __init__(self, kind: str, names: list[str]) -> None:
        self.kind = kind
        self.names = list(names)
        self.booster: Any = None  # a lightgbm.Booster once fitted or loaded (lightgbm is imported lazily)
        self.linear: dict | None = None
        self.report: dict = {}

    def fit(self, data: FitData, config: LTRConfig) -> Ranker:
        n, c, f = data.features.shape
        order = np.random.default_rng(config.seed).permutation(n)
        n_stop = max(1, int(round(config.early_stopping_share * n)))
        held, train = np.sort(order[:n_stop]), np.sort(order[n_stop:])
        x, y = data.features.reshape(n * c, f), data.labels.reshape(n * c)
        rows = (np.arange(n * c).reshape(n, c))
        tr, ho = rows[train].ravel(), rows[held].ravel()
        if self.kind == "lambdamart":
            import lightgbm

            model = lightgbm.LGBMRanker(objective="lambdarank", n_estimators=config.n_estimators,
                                        learning_rate=config.learning_rate, num_leaves=config.num_leaves,
                                        min_child_samples=config.min_child_samples, random_state=config.seed,
                                        n_jobs=1, deterministic=True, force_col_wise=True, verbose=-1)
            model.fit(x[tr], y[tr], group=[c] * len(train), eval_X=(x[ho],), eval_y=(y[ho],),
                      eval_group=[[c] * len(held)], eval_at=[10], feature_name=[_safe(nm) for nm in self.names],
                      callbacks=[lightgbm.early_stopping(30, verbose=False)])
            self.booster = model.booster_
            self.report = {"best_iteration": int(model.best_iteration_ or config.n_estimators),
                           "heldout_ndcg@10": float(model.best_score_["valid_0"]["ndcg@10"])}
        else:
            from sklearn.linear_model import LogisticRegression

            mean, scale = x[tr].mean(axis=0), x[tr].std(axis=0)
            scale[scale == 0] = 1.0
            model = LogisticRegression(C=1.0, max_iter=2000).fit((x[tr] - mean) / scale, y[tr])
            self.linear = {"mean": mean.tolist(), "scale": scale.tolist(), "coef": model.coef_[0].tolist(),
                           "intercept": float(model.intercept_[0])}
            self.report = {}
        self.report.update({"fit_lists": int(len(train)), "stop_lists": int(len(held)), "list_size": int(c)})
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        n, c, f = features.shape
        if f != len(self.names):
            raise ValueError(f"the ranking model takes {len(self.names)} features, got {f}")
        x = features.reshape(n * c, f)
        if self.booster is not None:
            out = self.booster.predict(x, num_iteration=self.report.get("best_iteration"))
        elif self.linear is not None:
            lin = self.linear
            out = ((x - np.asarray(lin["mean"])) / np.asarray(lin["scale"])) @ np.asarray(lin["coef"])
        else:
            raise RuntimeError("the ranking model is not fitted")
        return np.asarray(out, dtype=np.float64).reshape(n, c)

    def importances(self) -> dict[str, float]:
        """Share of the model's importance per feature scorer (gain for LambdaMART, |coefficient| on
        standardised features for the logistic blend), so each signal's contribution is visible."""
        if self.booster is not None:
            values = np.asarray(self.booster.feature_importance(importance_type="gain"), dtype=np.float64)
        elif self.linear is not None:
            values = np.abs(np.asarray(self.linear["coef"]))
        else:
            return {}
        per: dict[str, float] = {}
        for name, v in zip(self.names, values, strict=True):
            per[name.split(":")[0]] = per.get(name.split(":")[0], 0.0) + float(v)
        total = sum(per.values()) or 1.0
        return {k: round(v / total, 4) for k, v in per.items()}

    # --- files --------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        meta = {"kind": self.kind, "names": self.names, "report": self.report, "linear": self.linear}
        if self.booster is not None:
            with atomic_write(folder / "ltr_model.txt") as handle:
                handle.write(self.booster.model_to_string())
        write_json(folder / "ltr_ranker.json", meta)

    @classmethod
    def load(cls, folder: str | Path) -> Ranker:
        folder = Path(folder)
        path = folder / "ltr_ranker.json"
        if not path.is_file():
            raise FileNotFoundError(f"{folder} holds no trained ltr model (ltr_ranker.json); train one with "
                                    f"`llmrec ltr train --output-dir {folder}`")
        meta = json.loads(path.read_text())
        ranker = cls(meta["kind"], meta["names"])
        ranker.report, ranker.linear = meta.get("report", {}), meta.get("linear")
        if ranker.kind == "lambdamart":
            import lightgbm

            ranker.booster = lightgbm.Booster(model_str=(folder / "ltr_model.txt").read_text())
        return ranker


def _safe(name: str) -> str:
    """LightGBM feature names may not hold ':' in some versions' JSON dumps; keep them plain."""
    return name.replace(":", "__").replace("-", "_").replace(".", "_")


def first_stage_top(scores: np.ndarray, histories: Histories, lists: Sequence[Sequence[str]],
                    k: int) -> list[np.ndarray]:
    """Per user, the positions of the ``k`` best first-stage candidates outside the history (stable
    order; every row cut to the shortest, so the reranked lists are one width)."""
    tops = []
    for row, history, cands in zip(scores, histories, lists, strict=True):
        seen = set(history)
        masked = np.where([c in seen for c in cands], -np.inf, row)
        take = min(k, int(np.isfinite(masked).sum()))
        tops.append(np.argsort(-masked, kind="stable")[:max(take, 1)])
    width = min(len(t) for t in tops)
    return [t[:width] for t in tops]


class LTRScorer:
    """A ``Scorer``: the feature scorers' opinions of each candidate, combined by the ranking model."""

    def __init__(self, scorers: Sequence[Scorer], ranker: Ranker, feature_scorers: Sequence[str], name: str = "ltr",
                 fit_data: FitData | None = None, report: dict | None = None, first_stage: Scorer | None = None,
                 rerank_top: int = 20) -> None:
        if len(scorers) != len(feature_scorers):
            raise ValueError(f"{len(scorers)} scorers for {len(feature_scorers)} feature names")
        self.first_stage = first_stage
        self.rerank_top = rerank_top
        self.scorers = list(scorers)
        self.feature_scorers = list(feature_scorers)
        self.ranker = ranker
        self.name = name
        self.fit_data = fit_data
        self.report = dict(report or {})

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        lists = per_user_candidates(candidates, len(histories))
        n_cand = len(lists[0]) if lists else 0
        if self.first_stage is not None and n_cand > self.rerank_top:
            return self._rerank_top(histories, candidates, lists)
        features = compute_features(self.scorers, histories, lists, batch_size=max(1, len(histories)))
        return check_scores(self.ranker.predict(features), len(histories), n_cand, self.name)

    def _rerank_top(self, histories: Histories, candidates: Candidates, lists: list) -> np.ndarray:
        """The first stage's top ``rerank_top`` (history excluded, as the evaluator excludes it) reranked
        by the model and placed above the rest, which keep the first stage's order."""
        assert self.first_stage is not None
        base = check_scores(self.first_stage.score(histories, candidates), len(histories), len(lists[0]), self.name)
        tops = first_stage_top(base, histories, lists, self.rerank_top)
        sub = [[cands[j] for j in top] for cands, top in zip(lists, tops, strict=True)]
        pred = self.ranker.predict(compute_features(self.scorers, histories, sub, batch_size=max(1, len(sub))))
        out = base - base.max(axis=1, keepdims=True) - 1.0  # <= -1: below every reranked candidate
        for i, top in enumerate(tops):
            out[i, top] = pred[i] - pred[i].min()  # >= 0
        return out

    def without(self, drop: Sequence[str], config: LTRConfig, name: str | None = None) -> LTRScorer:
        """The same hybrid refitted on the same fitting lists without the ``drop`` feature scorers
        (the ablation rows: how much each signal adds)."""
        if self.fit_data is None:
            raise ValueError("an ablation needs the fitting features: build the ltr scorer by training, not loading")
        keep = [i for i, s in enumerate(self.feature_scorers) if s not in drop]
        data = self.fit_data.without(drop)
        ranker = Ranker(self.ranker.kind, data.names).fit(data, config)
        return LTRScorer([self.scorers[i] for i in keep], ranker, [self.feature_scorers[i] for i in keep],
                         name=name or f"{self.name} -{'-'.join(drop)}", fit_data=data,
                         report={**self.report, "importances": ranker.importances(), "ranker": ranker.report},
                         first_stage=self.first_stage, rerank_top=self.rerank_top)

    def diagnostics(self) -> dict:
        return {"importances": self.ranker.importances(), "ranker": self.ranker.report,
                **{k: v for k, v in self.report.items() if k not in ("importances", "ranker")}}
