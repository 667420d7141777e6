"""The CEG chunk cache resumes chunk by chunk (tests/test_learn.py kills a run mid-way) and never
trusts a chunk whose arrays do not match its list of text hashes."""

from __future__ import annotations

import json
import logging

import numpy as np
from safetensors.numpy import save_file

from llmrec.learn.ceg import _ChunkCache


def test_a_chunk_whose_rows_do_not_match_its_hashes_is_ignored(tmp_path, caplog):
    cache = _ChunkCache(tmp_path)
    good = cache.write(["h1", "h2"], np.ones((2, 3, 4), np.float32), np.full((2, 3), 5, np.int32))
    # Three hashes but two rows: reading row 2 would fail, or give a wrong vector if reordered.
    save_file({"segments": np.zeros((2, 3, 4), np.float32), "counts": np.zeros((2, 3), np.int32)},
              str(tmp_path / "chunk-bad.safetensors"), metadata={"hashes": json.dumps(["h3", "h4", "h5"])})
    with caplog.at_level(logging.WARNING, logger="llmrec.learn.ceg"):
        found = cache.load({"h1", "h2", "h3", "h4", "h5"})
    assert sorted(found) == ["h1", "h2"] and good.exists()
    np.testing.assert_array_equal(found["h2"][1], np.full(3, 5))
    assert "chunk-bad.safetensors" in caplog.text and "3 hashes" in caplog.text
