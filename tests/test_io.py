"""Atomic outputs: all or nothing, with ordinary file permissions."""

from __future__ import annotations

import os
import stat

import pytest

from llmrec.utils.io import atomic_path, atomic_write, write_json


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"ndcg@10": 0.5})
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write('{"ndcg@10": ')
            raise RuntimeError("crash mid-write")
    assert target.read_text().strip().endswith("}")
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_atomic_path_publishes_with_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.npy") as tmp:
            assert tmp.suffix == ".npy"
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.npy").stat().st_mode)
    assert mode == 0o644
