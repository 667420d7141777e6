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


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_every_atomic_writer_gives_new_files_the_mode_open_would(tmp_path, mask):
    old = os.umask(mask)
    try:
        with atomic_write(tmp_path / "a.txt") as fh:
            fh.write("x")
        with atomic_path(tmp_path / "model.safetensors") as tmp:
            tmp.write_bytes(b"x")
        write_json(tmp_path / "config.json", {"a": 1})
        with open(tmp_path / "plain.txt", "w") as fh:  # the neighbour written the ordinary way
            fh.write("x")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["a.txt", "model.safetensors", "config.json", "plain.txt"], 0o666 & ~mask)


def test_replacing_a_file_keeps_its_mode_as_open_does(tmp_path):
    private = tmp_path / "secret.json"
    private.write_text("{}")
    private.chmod(0o600)
    write_json(private, {"token": "x"})
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    with atomic_write(script) as fh:
        fh.write("#!/bin/sh\necho hi\n")
    assert stat.S_IMODE(script.stat().st_mode) == 0o755


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux reads the umask from /proc")
def test_reading_the_umask_never_opens_a_window_with_mask_zero(tmp_path, monkeypatch):
    # Setting the umask to 0 "to read it" would give files other threads create meanwhile mode 0666.
    calls = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real(mask))
    with atomic_write(tmp_path / "a.txt") as fh:
        fh.write("x")
    assert calls == []
