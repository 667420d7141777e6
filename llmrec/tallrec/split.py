"""Leak-free splits of TALLRec examples, overlap removal against an evaluation file, and the leak check.

A TALLRec prompt lists the user's earlier items with their labels (liked under "User Preference",
disliked under "User Unpreference"). Shuffling a user's examples into parts (the old
``by="example"`` default) therefore puts test targets, with their labels, into training prompts:
on ML-100K ~98% of the test examples had their target shown in some training prompt, and the
Yes/No twins of ``sequence_examples`` (same history) could land on opposite sides, where a test
label is one minus its twin's. The two splits here are leak-free by construction:

* ``by="user"`` (default): each user's examples all go to one part;
* ``by="time"``: by the target's timestamp; every training target is earlier than every valid
  target, which is earlier than every test target (ties go to the later part), so a training
  prompt, which holds only events before its own target, never shows a later part's target, and
  twins (one timestamp) stay together.

:func:`leaked_examples` is the check the tests and the benchmarks run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from llmrec.data.loaders.tallrec import TallRecExample
from llmrec.tallrec.data import InstructionExample

SPLIT_BY = ("user", "time")
_REMOVED = {"example": "it shuffles a user's examples, so training prompts list test targets under 'User Preference' "
                       "/ 'User Unpreference' with their labels (~98% of ML-100K test examples) and Yes/No twins land "
                       "on opposite sides"}


def split_examples(examples: Sequence[InstructionExample], ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                   by: str = "user", seed: int = 42) -> dict[str, list[InstructionExample]]:
    """Train / valid / test, 8:1:1 by default, by user (seeded) or by the target's time (see the module
    docstring). Parts keep the examples' order."""
    if by in _REMOVED:
        raise ValueError(f"split by {by!r} was removed because {_REMOVED[by]}; split by one of {list(SPLIT_BY)}")
    if by not in SPLIT_BY:
        raise ValueError(f"split by must be one of {list(SPLIT_BY)}, got {by!r}")
    if len(ratios) != 3 or min(ratios) < 0 or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")

    def n_first(n: int) -> tuple[int, int]:  # sizes of train and of train + valid among n keys
        return int(round(ratios[0] * n)), int(round((ratios[0] + ratios[1]) * n))

    if by == "time":
        if any(e.timestamp is None for e in examples):
            raise ValueError("split by time needs every example's timestamp (examples read from TALLRec's own "
                             "JSON have none); split by user instead")
        times = np.array([e.timestamp for e in examples], dtype=np.float64)
        order = np.sort(times)
        cuts = [order[k] if k < len(order) else np.inf for k in n_first(len(order))]
        # Ties at a cut go to the later part: a cut never separates events of one timestamp (twins).
        part_of = [0 if t < cuts[0] else 1 if t < cuts[1] else 2 for t in times]
    else:
        if any(not e.user_id for e in examples):
            raise ValueError("split by user needs every example's user id (examples read from TALLRec's own "
                             "JSON have none)")
        users = np.array(sorted({e.user_id for e in examples}))
        users = users[np.random.default_rng(seed).permutation(len(users))]
        n_train, n_train_valid = n_first(len(users))
        rank = {u: i for i, u in enumerate(users)}
        part_of = [0 if rank[e.user_id] < n_train else 1 if rank[e.user_id] < n_train_valid else 2 for e in examples]
    out: dict[str, list[InstructionExample]] = {"train": [], "valid": [], "test": []}
    names = list(out)
    for e, part in zip(examples, part_of, strict=True):
        out[names[part]].append(e)
    return out


def prompt_key(example: TallRecExample) -> str:
    """What identifies an example's question: its input text with whitespace normalised."""
    return " ".join(example.input.split())


def users_of(exclude: Iterable[TallRecExample], examples: Iterable[InstructionExample]) -> set[str]:
    """Users whose questions are in ``exclude``: its own user ids where it has them, else found by
    matching its questions to the built ``examples`` (TALLRec's files carry no user id)."""
    exclude = list(exclude)
    users = {e.user_id for e in exclude if isinstance(e, InstructionExample) and e.user_id}
    banned = {prompt_key(e) for e in exclude}
    return users | {e.user_id for e in examples if e.user_id and prompt_key(e) in banned}


def remove_overlap(examples: Iterable[InstructionExample], exclude: Iterable[TallRecExample],
                   users: Iterable[str] = ()) -> tuple[list[InstructionExample], int]:
    """Drop examples whose question (history + target text) also appears in ``exclude``, and every
    example of ``users`` (the users of an evaluation file, whose other examples would show its
    targets with their labels); returns the kept examples and how many were dropped."""
    banned = {prompt_key(e) for e in exclude}
    users = set(users)
    kept, dropped = [], 0
    for e in examples:
        if prompt_key(e) in banned or (e.user_id and e.user_id in users):
            dropped += 1
        else:
            kept.append(e)
    return kept, dropped


def leaked_examples(train: Iterable[InstructionExample], held: Iterable[InstructionExample]
                    ) -> list[InstructionExample]:
    """Training examples that show a held-out example's answer: their prompt lists a held-out
    target of the same user (with its label), or they are a held-out example's twin (same user,
    history and time, another target). Empty for a leak-free split."""
    held = list(held)
    targets = {(e.user_id, e.item_id) for e in held}
    twins = {(e.user_id, e.history, e.timestamp) for e in held}
    return [e for e in train
            if any((e.user_id, item) in targets for item in e.history) or (e.user_id, e.history, e.timestamp) in twins]


def exclude_evaluation(parts: dict[str, list[InstructionExample]], exclude: Sequence[TallRecExample],
                       examples: Iterable[InstructionExample]) -> dict[str, int]:
    """Remove an evaluation file's questions, and every example of its users (found through the built
    ``examples``), from the parts a model learns from or is selected on: train and valid (the
    early-stopping set). Changes ``parts`` in place; returns how many were dropped per part, and
    how many users the file has."""
    users = users_of(exclude, examples)
    counts = {"users": len(users)}
    for name in ("train", "valid"):
        parts[name], counts[name] = remove_overlap(parts[name], exclude, users)
    return counts
