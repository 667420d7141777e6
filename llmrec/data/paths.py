"""Where real data sets live on disk.

The data are never shipped with llmrec (most licences forbid redistribution), so every loader
takes a folder: an explicit argument wins, then ``LLMREC_DATA_DIR``, then a per-user cache.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "LLMREC_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/llmrec/data")


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The root folder holding one sub-folder per data set (``ml-100k/``, ``amazon-scientific/``...).

    Order: ``data_dir`` argument > ``$LLMREC_DATA_DIR`` > ``~/.cache/llmrec/data``. The folder need
    not exist yet (a download creates it).
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_DIR.expanduser()
