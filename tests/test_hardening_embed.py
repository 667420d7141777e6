"""``llmrec embed`` survives kill -9: the cache is written shard by shard while encoding, and a
re-run encodes only what the killed run had not stored, giving the vectors of a clean run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from llmrec.cli import main
from llmrec.embed import EmbeddingCache, load_sentence_encoder, read_embedding_folder
from llmrec.embed.encoder import TextEncoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_ITEMS, SHARD, STORED_BEFORE_KILL = 40, 8, 2

# Runs the real command in a subprocess. Its encoder reports on stdout when two shards are stored
# (the third piece is about to be encoded), then waits on stdin, where the test kills it with
# SIGKILL: a deterministic "middle of the run", no timing guesswork.
HOOK = r"""
import sys
from llmrec.embed.encoder import TextEncoder

real, calls = TextEncoder.encode, []

def encode(self, texts, batch_size=64, show_progress=True):
    calls.append(len(texts))
    if len(calls) == {stored} + 1:
        print("STORED", flush=True)
        sys.stdin.read()
    return real(self, texts, batch_size=batch_size, show_progress=show_progress)

TextEncoder.encode = encode
from llmrec.cli import main
sys.exit(main(["embed", *sys.argv[1:]]))
""".replace("{stored}", str(STORED_BEFORE_KILL))


@pytest.fixture
def items_file(tmp_path):
    path = tmp_path / "items.csv"
    rows = [f"m{n:03d},Movie number {n} about {'space ' * (n % 5)}and {'time ' * (n % 3)},Genre {n % 4}"
            for n in range(N_ITEMS)]
    path.write_text("item_id,title,genre\n" + "\n".join(rows) + "\n")
    return path


def embed_args(items, out, cache, model) -> list[str]:
    return ["--items", str(items), "--out", str(out), "--model", str(model), "--cache-dir", str(cache),
            "--batch-size", "4", "--shard-size", str(SHARD), "--no-progress"]


def test_kill_9_mid_run_then_rerun_encodes_only_the_rest(tmp_path, items_file, tiny_sentence_model, capsys,
                                                         monkeypatch):
    cache = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-c", HOOK, *embed_args(items_file, tmp_path / "killed", cache,
                                                                      tiny_sentence_model)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    watchdog = threading.Timer(120, proc.kill)  # bounds the test if the child hangs or never reports
    watchdog.start()
    try:
        line = proc.stdout.readline()
        assert line.strip() == "STORED", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        watchdog.cancel()
        proc.kill()
        proc.communicate(timeout=30)

    # What the killed run stored survived: two shards in the index, no output folder yet.
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    assert len(json.loads((folder / "index.json").read_text())["shards"]) == STORED_BEFORE_KILL
    assert not (tmp_path / "killed" / "meta.json").exists()

    # The re-run encodes exactly the texts the killed run had not stored.
    asked: list[str] = []
    real = TextEncoder.encode

    def recording(self, texts, batch_size=64, show_progress=True):
        asked.extend(texts)
        return real(self, texts, batch_size=batch_size, show_progress=show_progress)

    monkeypatch.setattr(TextEncoder, "encode", recording)
    assert main(["embed", *embed_args(items_file, tmp_path / "resumed", cache, tiny_sentence_model)]) == 0
    stored = SHARD * STORED_BEFORE_KILL
    assert f"cache {stored} hits, {N_ITEMS - stored} misses, {N_ITEMS - stored} encoded" in capsys.readouterr().out
    assert len(asked) == N_ITEMS - stored
    assert not [p.name for p in folder.iterdir() if ".tmp" in p.name]

    # A clean run (its own cache) gives the same ids and vectors.
    monkeypatch.setattr(TextEncoder, "encode", real)
    assert main(["embed", *embed_args(items_file, tmp_path / "clean", tmp_path / "clean-cache",
                                      tiny_sentence_model)]) == 0
    ids, vectors, _ = read_embedding_folder(tmp_path / "resumed")
    clean_ids, clean_vectors, _ = read_embedding_folder(tmp_path / "clean")
    assert ids == clean_ids and len(ids) == N_ITEMS
    np.testing.assert_allclose(vectors, clean_vectors, rtol=0, atol=1e-6)


def test_leftovers_of_a_killed_writer_are_swept(tmp_path, tiny_sentence_model):
    encoder = load_sentence_encoder(str(tiny_sentence_model), device="cpu")
    cache = EmbeddingCache(tmp_path, encoder, show_progress=False, shard_size=2)
    cache.embed(["a", "b", "c"], ["one", "two", "three"])
    assert len(list(cache.folder.glob("shard-*.npy"))) == 2  # written as it went: 2 + 1
    # What kill -9 can leave: a temporary file mid-write, a shard written but never indexed.
    (cache.folder / ".shard-0123456789ab.x1y2.tmp.npy").write_bytes(b"\x93NUMPY")
    (cache.folder / "shard-ba9876543210.npy").write_bytes(b"\x93NUMPY")
    again = EmbeddingCache(tmp_path, encoder, show_progress=False)
    again.embed(["d"], ["four"])
    names = sorted(p.name for p in again.folder.iterdir())
    assert not [n for n in names if ".tmp" in n or n.startswith("shard-ba98")]
    assert len(again) == 4 and len([n for n in names if n.endswith(".npy")]) == 3


def test_embed_says_how_many_item_texts_are_empty(tmp_path, tiny_sentence_model, capsys):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n1,Star Wars\n2,\n3,\n4,Heat\n")
    assert main(["embed", "--items", str(items), "--out", str(tmp_path / "o"), "--model", str(tiny_sentence_model),
                 "--no-cache", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 of 4 item texts are empty" in out
    assert read_embedding_folder(tmp_path / "o")[2]["text"]["empty_texts"] == 2
