"""On-disk cache of model answers, so a rerun (or a crashed run resumed) does not pay twice.

One sqlite file; each entry is keyed by the sha256 of a canonical JSON of (model name, prompt,
parameters, and for a server the base URL it was asked at) and holds the answer as JSON. The base
URL is part of the key because one model name served by two servers (a local vLLM and a hosted
API, two fine-tunes behind one name) gives different answers: a shared cache file must not answer
one server's request with another's reply. sqlite makes every write one atomic transaction, and
several processes can share the file (WAL journal, busy timeout). Credentials never enter a key:
callers pass only the model name, the prompt and generation parameters.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmrec.llm.base import Prompt


def cache_key(
    model: str, prompt: Prompt | Sequence[Prompt], params: dict[str, Any], *, base_url: str | None = None
) -> str:
    """sha256 hex of the canonical JSON of the request (sorted keys, no whitespace variation).

    ``base_url`` (HTTP backends) joins the key; local backends pass none and keep their old keys.
    """
    request: dict[str, Any] = {"model": model, "prompt": prompt, "params": params}
    if base_url is not None:
        request["base_url"] = base_url
    canonical = json.dumps(
        request,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """A persistent ``key -> JSON value`` store for model responses."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # check_same_thread=False + our lock: one backend may be called from worker threads.
        self._conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
            "value TEXT NOT NULL, created REAL NOT NULL)"
        )

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    def get(
        self, model: str, prompt: Prompt | Sequence[Prompt], params: dict[str, Any], *, base_url: str | None = None
    ) -> Any | None:
        """The stored answer, or None on a miss."""
        key = cache_key(model, prompt, params, base_url=base_url)
        with self._lock:
            row = self._conn.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(
        self,
        model: str,
        prompt: Prompt | Sequence[Prompt],
        params: dict[str, Any],
        value: Any,
        *,
        base_url: str | None = None,
    ) -> None:
        key = cache_key(model, prompt, params, base_url=base_url)
        payload = json.dumps(value, ensure_ascii=False)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, model, value, created) VALUES (?, ?, ?, ?)",
                (key, model, payload, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
