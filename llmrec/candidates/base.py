"""What every candidate mode produces, and the label-blind seeding they share."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

CANDIDATE_MODES = ("full", "sampled", "recalled", "given")


@dataclass
class CandidateLists:
    """The candidates of every evaluation case.

    ``lists`` holds one array of catalogue indices per case, or None for full ranking (every
    catalogue item). ``label`` is what results print: "full", "sampled-100", "recalled-20",
    "given-20". ``info`` says how the lists were made (channels, de-duplication, the file).
    """

    mode: str
    label: str
    lists: list[np.ndarray] | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in CANDIDATE_MODES:
            raise ValueError(f"candidate mode must be one of {CANDIDATE_MODES}, got {self.mode!r}")
        if (self.lists is None) != (self.mode == "full"):
            raise ValueError("full ranking has no per-case lists; every other mode needs them")

    def sizes(self) -> np.ndarray:
        return np.array([len(c) for c in self.lists], dtype=np.int64) if self.lists is not None else np.zeros(0)


def case_seed(seed: int, user: str, history: Sequence[str]) -> int:
    """A stable seed for one evaluation case from what a scorer may know (user and history).

    Never from a target: a seed that mixed in the target would let anyone who can rerun the
    sampler find the one candidate that reproduces the list. Python's ``hash`` changes between
    processes; blake2b does not.
    """
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{int(seed)}\x1f{user}\x1f{len(history)}\x1e".encode())
    for item in history:
        digest.update(str(item).encode())
        digest.update(b"\x1f")
    return int.from_bytes(digest.digest(), "little")


_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def order_keys(case: int, items: np.ndarray) -> np.ndarray:
    """A pseudo-random key per (case, item) (splitmix64 of both): sorting a case's candidates by
    it gives an order in which an item's place depends on its own id and the case only, never on
    which candidate is the target."""
    with np.errstate(over="ignore"):
        z = (np.asarray(items, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(case & int(_MASK))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def shuffle_label_blind(case: int, candidates: np.ndarray) -> np.ndarray:
    """``candidates`` (catalogue indices) in the case's label-blind order."""
    return candidates[np.argsort(order_keys(case, candidates), kind="stable")]
