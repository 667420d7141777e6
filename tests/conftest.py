"""Shared fixtures. Real data comes from LLMREC_DATA_DIR (CI points it at ../shared/data).

Tests that need a data set take the ``data_dir`` fixture (or ``require_data``) and are skipped
with the reason spelled out when the files are absent; they never pass without data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach a model hub: a missing local file must fail fast, not wait on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path | None:
    env = os.environ.get("LLMREC_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("real data not found: set LLMREC_DATA_DIR to the folder holding ml-100k/, amazon-scientific/, ...")
    return root


@pytest.fixture(scope="session")
def require_data(data_dir: Path):
    """``require_data("ml-100k", "u.data")`` returns the path or skips naming the missing file."""

    def need(*parts: str) -> Path:
        path = data_dir.joinpath(*parts)
        if not path.exists():
            pytest.skip(f"real data file missing: {path} (set LLMREC_DATA_DIR)")
        return path

    return need
