"""Recalled candidates: several recall channels, merged round-robin and de-duplicated.

A channel is any scorer (popularity, item-CF, BM25, the embedding ranker, SASRec, ...): it scores
the whole catalogue for each history and its top items, history excluded, are its recall. Each
channel gets a quota (``n`` split evenly, earlier channels take the remainder); quota items are
interleaved by rank (every channel's first item, then every second, ...) with duplicates dropped
and counted, then the lists are refilled to ``n`` from deeper in the channels, again round-robin,
so every case has ``n`` candidates. Nothing here sees a target: a target that no channel recalls
is simply not in the list, and the evaluator counts it as a miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from llmrec.candidates.base import CandidateLists
from llmrec.scoring import Histories, Scorer


def top_k_excluding(scores: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best scores, skipping ``exclude``; ties broken by index (stable)."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
    allowed = int(np.isfinite(scores).sum())
    take = min(k, allowed)
    if take <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, take - 1)[:take] if take < len(scores) else np.arange(len(scores))
    part = part[np.isfinite(scores[part])]
    return part[np.lexsort((part, -scores[part]))][:take]


@dataclass
class RecallResult:
    """Merged lists (catalogue indices) and what merging did."""

    candidates: list[np.ndarray]
    channels: list[str]
    quotas: list[int]
    dedup_removed: list[int]
    """Per case: slots lost because an earlier channel had recalled the item too."""
    backfilled: list[int]
    """Per case: slots refilled from deeper in the channels' lists to keep every list ``n`` long."""
    per_channel: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def summary(self) -> dict:
        n = max(1, len(self.candidates))
        return {"channels": self.channels, "quotas": self.quotas,
                "n_candidates": int(len(self.candidates[0])) if self.candidates else 0,
                "dedup_removed_total": int(sum(self.dedup_removed)),
                "dedup_removed_per_case": round(sum(self.dedup_removed) / n, 4),
                "backfilled_per_case": round(sum(self.backfilled) / n, 4)}


class MultiChannelRecall:
    """Merge the channels' recalls into ``n_candidates`` distinct items per case."""

    def __init__(self, channels: Sequence[Scorer], n_candidates: int = 20, block: int = 256) -> None:
        if not channels:
            raise ValueError("multi-channel recall needs at least one channel")
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"recall channels must have distinct names, got {names}")
        self.channels = list(channels)
        self.n = n_candidates
        self.block = block
        c = len(self.channels)
        self.quotas = [n_candidates // c + (1 if i < n_candidates % c else 0) for i in range(c)]

    def channel_recall(self, channel: Scorer, histories: Histories, history_items: Sequence[np.ndarray],
                       catalog: list[str]) -> list[np.ndarray]:
        """The channel's top ``n`` catalogue indices per case, its history excluded."""
        out: list[np.ndarray] = []
        for start in range(0, len(histories), self.block):
            chunk = histories[start:start + self.block]
            scores = np.asarray(channel.score(chunk, list(catalog)), dtype=np.float64)
            if scores.shape != (len(chunk), len(catalog)):
                raise ValueError(f"recall channel {channel.name!r} returned shape {scores.shape}, "
                                 f"expected {(len(chunk), len(catalog))}")
            out += [top_k_excluding(s, history_items[start + j], self.n) for j, s in enumerate(scores)]
        return out

    def recall(self, histories: Histories, history_items: Sequence[np.ndarray], catalog: list[str]) -> RecallResult:
        names = [ch.name for ch in self.channels]
        recalled = {ch.name: self.channel_recall(ch, histories, history_items, catalog) for ch in self.channels}
        merged, removed, backfilled = [], [], []
        for case in range(len(histories)):
            lists = [recalled[name][case] for name in names]
            out: list[int] = []
            seen: set[int] = set()
            dup = 0
            for rank in range(max(self.quotas)):
                for lst, quota in zip(lists, self.quotas):
                    if rank < quota and rank < len(lst):
                        item = int(lst[rank])
                        if item in seen:
                            dup += 1
                        else:
                            seen.add(item)
                            out.append(item)
            before = len(out)
            for rank in range(max(len(lst) for lst in lists)):
                for lst, quota in zip(lists, self.quotas):
                    if len(out) < self.n and quota <= rank < len(lst) and int(lst[rank]) not in seen:
                        seen.add(int(lst[rank]))
                        out.append(int(lst[rank]))
            if len(out) < self.n:
                raise ValueError(f"the channels {names} recalled only {len(out)} distinct items for case #{case}; "
                                 f"need {self.n} (add a channel that scores every item, e.g. popularity)")
            merged.append(np.asarray(out[: self.n], dtype=np.int64))
            removed.append(dup)
            backfilled.append(len(out[: self.n]) - before)
        return RecallResult(merged, names, list(self.quotas), removed, backfilled, per_channel=recalled)

    def candidates(self, histories: Histories, history_items: Sequence[np.ndarray], catalog: list[str]
                   ) -> tuple[CandidateLists, RecallResult]:
        result = self.recall(histories, history_items, catalog)
        return CandidateLists("recalled", f"recalled-{self.n}", result.candidates, info=result.summary()), result
