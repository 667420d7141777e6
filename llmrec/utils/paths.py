"""Where llmrec keeps what it computes once and reuses (converted models, embeddings)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$LLMREC_CACHE_DIR`` or ``~/.cache/llmrec``."""
    env = os.environ.get("LLMREC_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "llmrec"
