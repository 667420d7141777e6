"""Candidate lists for LLMRank: the paper's sampled protocol, and multi-channel recall.

* :func:`llmrank_protocol`: the ground truth plus ``n - 1`` random items, seeded per user and
  shuffled. This protocol puts the label into the candidate set *by design*: it is exactly the
  evaluator's sampled mode (``RankingEvaluator`` with ``num_negatives = n - 1``), so it is built on the
  evaluation side, once, and the scorer gets only the shuffled lists; it cannot tell which is the
  target.
* :class:`MultiChannelRecall`: each channel's top items, merged round-robin and de-duplicated.
  The ground truth is *not* forced in; :func:`recall_report` says how often the merged list holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from llmrec.data.splits import Split
from llmrec.eval import EvalConfig, RankingEvaluator
from llmrec.llmrank.recall import RecallChannel
from llmrec.scoring import Histories


@dataclass
class ProtocolCases:
    """The evaluation side of a run: who is ranked, on which candidates, and (for metrics only) the targets."""

    users: list[str]
    histories: list[list[str]]
    targets: list[list[str]]
    candidates: list[list[str]]

    def __len__(self) -> int:
        return len(self.users)


def llmrank_protocol(
    split: Split,
    part: str = "test",
    n_candidates: int = 20,
    max_users: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    show_progress: bool = True,
) -> RankingEvaluator:
    """LLMRank's protocol as the one evaluator's sampled mode: each case's target(s) plus
    ``n_candidates - 1`` uniform negatives from outside the user's history, seeded per case and
    shuffled. ``max_users`` takes a seeded subset of cases. Small ``batch_size``: LLM scorers are
    slow, and the evaluator's progress bar moves once per batch."""
    if n_candidates < 2:
        raise ValueError(f"n_candidates must be >= 2, got {n_candidates}")
    return RankingEvaluator(split, EvalConfig(part=part, mode="sampled", num_negatives=n_candidates - 1,
                                              max_cases=max_users, seed=seed, batch_size=batch_size,
                                              show_progress=show_progress))


def protocol_cases(evaluator: RankingEvaluator) -> ProtocolCases:
    """The cases a sampled-mode evaluator fixed (its candidate lists included)."""
    cases = evaluator.cases()
    if cases and "candidates" not in cases[0]:
        raise ValueError("protocol_cases needs a sampled-mode evaluator (full mode has no per-case lists)")
    return ProtocolCases(users=[c["user"] for c in cases], histories=[c["history"] for c in cases],
                         targets=[c["targets"] for c in cases], candidates=[c["candidates"] for c in cases])


def place_target(negatives: Sequence[str], target: str, position: int) -> list[str]:
    """The candidate list with the target at ``position`` (for the position-bias report)."""
    if not 0 <= position <= len(negatives):
        raise ValueError(f"position {position} outside 0..{len(negatives)}")
    items = list(negatives)
    items.insert(position, str(target))
    return items


@dataclass
class RecallResult:
    """Merged candidate lists and what merging did."""

    candidates: list[list[str]]
    channels: list[str]
    quotas: list[int]
    """Slots each channel fills before de-duplication."""
    dedup_removed: list[int]
    """Per user: slots lost because an item was recalled by an earlier channel too."""
    backfilled: list[int]
    """Per user: slots refilled from deeper in the channels' lists to keep every list ``n`` long."""
    per_channel: dict[str, list[list[str]]] = field(default_factory=dict)

    def summary(self) -> dict:
        n_users = max(1, len(self.candidates))
        return {
            "channels": self.channels,
            "quotas": self.quotas,
            "n_candidates": len(self.candidates[0]) if self.candidates else 0,
            "dedup_removed_total": int(sum(self.dedup_removed)),
            "dedup_removed_per_user": float(sum(self.dedup_removed) / n_users),
            "backfilled_per_user": float(sum(self.backfilled) / n_users),
        }


class MultiChannelRecall:
    """Merge several recall channels into one list of ``n`` items per user.

    Each channel gets a quota (``n`` split evenly, earlier channels take the remainder). Channels'
    quota items are interleaved by rank (every channel's first item, then every second ...) and
    duplicates dropped; the number of dropped slots is reported. The lists are then refilled to
    ``n`` from deeper in the channels, again round-robin, so every user has equally many candidates
    (the Scorer contract). Nothing here sees a target.
    """

    def __init__(self, channels: Sequence[RecallChannel], n_candidates: int = 20) -> None:
        if not channels:
            raise ValueError("MultiChannelRecall needs at least one channel")
        self.channels = list(channels)
        self.n = n_candidates
        c = len(self.channels)
        self.quotas = [n_candidates // c + (1 if i < n_candidates % c else 0) for i in range(c)]

    def recall(self, histories: Histories) -> RecallResult:
        recalled = {ch.name: ch.recall(histories, self.n) for ch in self.channels}
        names = [ch.name for ch in self.channels]
        merged, removed, backfilled = [], [], []
        for u in range(len(histories)):
            lists = [recalled[name][u] for name in names]
            out: list[str] = []
            seen: set[str] = set()
            dup = 0
            for rank in range(max(self.quotas)):
                for lst, quota in zip(lists, self.quotas):
                    if rank < quota and rank < len(lst):
                        if lst[rank] in seen:
                            dup += 1
                        else:
                            seen.add(lst[rank])
                            out.append(lst[rank])
            before = len(out)
            for rank in range(max(len(lst) for lst in lists)):
                if len(out) >= self.n:
                    break
                for lst, quota in zip(lists, self.quotas):
                    if quota <= rank < len(lst) and lst[rank] not in seen and len(out) < self.n:
                        seen.add(lst[rank])
                        out.append(lst[rank])
            if len(out) < self.n:
                raise ValueError(f"the channels {names} recalled only {len(out)} distinct items for user "
                                 f"#{u}; need {self.n} (add a channel with a larger vocabulary, e.g. popularity)")
            merged.append(out[: self.n])
            removed.append(dup)
            backfilled.append(len(out[: self.n]) - before)
        return RecallResult(merged, names, list(self.quotas), removed, backfilled, per_channel=recalled)


def recall_report(result: RecallResult, targets: Sequence[Sequence[str]]) -> dict:
    """Evaluation-side counts: how often the merged lists (and each channel's quota) hold a target."""
    n_users = max(1, len(targets))
    target_sets = [{str(t) for t in ts} for ts in targets]
    report = result.summary()
    report["recall@n"] = sum(bool(ts & set(c)) for ts, c in zip(target_sets, result.candidates)) / n_users
    report["channel_recall@quota"] = {
        name: sum(bool(ts & set(lists[u][:q])) for u, ts in enumerate(target_sets)) / n_users
        for (name, lists), q in zip(result.per_channel.items(), result.quotas)
    }
    return report
