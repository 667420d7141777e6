"""Given candidates: one list per user from a file (JSON lines), e.g. another system's recall.

Format, one object per line: ``{"user": "42", "candidates": ["i1", "i2", ...]}``. A user with
several evaluation cases ranks the same list in each. Items missing from the catalogue are an
error (naming the line), so a list can never silently shrink.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llmrec.candidates.base import CandidateLists
from llmrec.errors import DataFormatError
from llmrec.utils.io import atomic_write


def read_candidate_file(path: str | Path, users: Sequence[str], catalog: Sequence[str]) -> CandidateLists:
    """Candidate lists for the cases' ``users`` (in case order) from a JSON-lines file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"candidate file not found: {path}")
    position = {item: i for i, item in enumerate(catalog)}
    by_user: dict[str, np.ndarray] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFormatError(path, "a JSON object per line", line=line_no, got=str(err)) from None
            if not isinstance(row, dict) or "user" not in row or not isinstance(row.get("candidates"), list):
                raise DataFormatError(path, '{"user": ..., "candidates": [...]}', line=line_no, got=line.strip()[:80])
            items = [str(i) for i in row["candidates"]]
            missing = [i for i in items if i not in position]
            if missing:
                raise DataFormatError(path, "candidate ids from the catalogue", field="candidates", line=line_no,
                                      got=missing[0])
            if len(set(items)) != len(items) or not items:
                raise DataFormatError(path, "a non-empty list of distinct ids", field="candidates", line=line_no,
                                      got=f"{len(items)} ids, {len(set(items))} distinct")
            by_user[str(row["user"])] = np.array([position[i] for i in items], dtype=np.int64)
    absent = [u for u in users if u not in by_user]
    if absent:
        raise DataFormatError(path, "a candidate list for every evaluated user", field="user",
                              got=f"{len(absent)} users without one, e.g. {absent[0]!r}")
    lists = [by_user[u] for u in users]
    sizes = {len(c) for c in lists}
    label = f"given-{sizes.pop()}" if len(sizes) == 1 else "given"
    return CandidateLists("given", label, lists, info={"file": str(path)})


def write_candidate_file(path: str | Path, users: Sequence[str], lists: Sequence[Sequence[str]]) -> Path:
    """Write candidate lists in the format ``read_candidate_file`` reads (atomically)."""
    path = Path(path)
    with atomic_write(path) as handle:
        for user, items in zip(users, lists, strict=True):
            handle.write(json.dumps({"user": str(user), "candidates": [str(i) for i in items]}) + "\n")
    return path
