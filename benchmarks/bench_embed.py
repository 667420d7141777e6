"""Embedding throughput: plain ``SentenceTransformer.encode`` vs the ``llmrec embed`` path.

On the 4,385 Amazon Scientific items (text as given in ``Scientific.text``), with the packaged
all-MiniLM-L6-v2 loaded once (loading is not timed) and the same batch size everywhere:

1. plain ``SentenceTransformer.encode(texts, batch_size)``;
2. the ``llmrec embed --items Scientific.text`` path with a cold (empty) cache: hashing, encoding,
   normalising, writing the cache shard and the embedding folder;
3. the same again over the now-filled cache (nothing is encoded).

Ratios: llmrec cold / plain (the overhead of the cache and the files) and warm / cold (what the
cache saves). Records ``benchmarks/results/embed_throughput.json`` and rebuilds RESULTS.md.

    python benchmarks/bench_embed.py --data-dir ../shared/data          # the recorded run
    python benchmarks/bench_embed.py --limit 300 --no-record            # a quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model needs no network; never wait on it

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._record import markdown_table, record  # noqa: E402
from llmrec.data.paths import resolve_data_dir  # noqa: E402
from llmrec.embed import export_embeddings, load_sentence_encoder, read_embedding_folder, read_item_table  # noqa: E402

ID_COLUMN, TEXT_COLUMN = "item_id:token", "text:token_seq"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None,
                        help="folder holding amazon-scientific/ (default: $LLMREC_DATA_DIR)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="first N items only (quick checks)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); 1 can be faster on a busy shared CPU")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats; the minimum time is kept")
    parser.add_argument("--no-record", action="store_true", help="print the numbers, do not record them")
    args = parser.parse_args(argv)

    path = resolve_data_dir(args.data_dir) / "amazon-scientific" / "Scientific.text"
    items = read_item_table(path, id_column=ID_COLUMN, text_columns=[TEXT_COLUMN], file_format="tsv")
    if args.limit:
        items = items.iloc[: args.limit]
    texts = items[TEXT_COLUMN].tolist()
    n = len(texts)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = load_sentence_encoder()
    plain_model = encoder.model
    plain_model.encode(texts[: args.batch_size], batch_size=args.batch_size, show_progress_bar=False)  # warm-up

    def plain_encode() -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        vectors = plain_model.encode(texts, batch_size=args.batch_size, show_progress_bar=False)
        return time.perf_counter() - start, vectors

    def llmrec_embed(folder: Path) -> tuple[float, dict]:
        start = time.perf_counter()
        meta = export_embeddings(items, folder / "out", encoder, cache_dir=folder / "cache",
                                 batch_size=args.batch_size, fields=[TEXT_COLUMN], join_fields=True,
                                 show_progress=False, source=str(path))
        return time.perf_counter() - start, meta

    # Interleaved repeats (each cold run on a fresh cache); the minimum of each path is the least
    # disturbed by other jobs on a shared CPU.
    plain_times, cold_times, warm_times = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench_embed_") as tmp:
        for repeat in range(args.repeats):
            seconds, plain = plain_encode()
            plain_times.append(seconds)
            folder = Path(tmp) / f"run{repeat}"
            seconds, cold_meta = llmrec_embed(folder)
            cold_times.append(seconds)
            seconds, warm_meta = llmrec_embed(folder)
            warm_times.append(seconds)
            print(f"repeat {repeat + 1}: plain {plain_times[-1]:.1f} s, cold {cold_times[-1]:.1f} s, "
                  f"warm {warm_times[-1]:.2f} s", flush=True)
        _, vectors, _ = read_embedding_folder(folder / "out")
    plain_s, cold_s, warm_s = min(plain_times), min(cold_times), min(warm_times)

    # Same model, same texts: the llmrec vectors are the plain ones, normalised.
    expected = plain / np.linalg.norm(plain, axis=1, keepdims=True)
    max_diff = float(np.abs(vectors - expected).max())
    assert cold_meta["cache"]["misses"] == n and warm_meta["cache"]["hits"] == n, (cold_meta, warm_meta)

    rows = [
        {"path": "SentenceTransformer.encode", "seconds": plain_s, "items/s": n / plain_s, "ratio": "1 (baseline)"},
        {"path": "llmrec embed, cold cache", "seconds": cold_s, "items/s": n / cold_s,
         "ratio": f"{cold_s / plain_s:.3f} x plain"},
        {"path": "llmrec embed, warm cache", "seconds": warm_s, "items/s": n / warm_s,
         "ratio": f"{warm_s / cold_s:.4f} x cold"},
    ]
    table = markdown_table(rows, ["path", "seconds", "items/s", "ratio"], floatfmt=".2f")
    print(table)
    print(f"max |llmrec - normalised plain| = {max_diff:.2e}; "
          f"{cold_meta['cache']['encoded']} distinct texts encoded cold")
    if args.no_record:
        return 0
    data = {
        "items": n,
        "distinct_texts": cold_meta["cache"]["encoded"],
        "batch_size": args.batch_size,
        "model_id": encoder.model_id,
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "plain_seconds_all": plain_times,
        "cold_seconds_all": cold_times,
        "warm_seconds_all": warm_times,
        "plain_seconds": plain_s,
        "cold_seconds": cold_s,
        "warm_seconds": warm_s,
        "plain_items_per_s": n / plain_s,
        "cold_items_per_s": n / cold_s,
        "warm_items_per_s": n / warm_s,
        "cold_over_plain": cold_s / plain_s,
        "warm_over_cold": warm_s / cold_s,
        "max_abs_diff_vs_plain": max_diff,
    }
    flags = [("--data-dir", args.data_dir), ("--batch-size", args.batch_size if args.batch_size != 64 else None),
             ("--limit", args.limit), ("--threads", args.threads),
             ("--repeats", args.repeats if args.repeats != 1 else None)]
    command = " ".join(["python benchmarks/bench_embed.py"] + [f"{f} {v}" for f, v in flags if v])
    notes = (f"{n:,} Amazon Scientific item texts (`Scientific.text`), packaged all-MiniLM-L6-v2, batch "
             f"{args.batch_size}, model loaded once before timing; fastest of {args.repeats} interleaved "
             "repeat(s) per path. The cold llmrec path encodes the "
             f"{cold_meta['cache']['encoded']:,} distinct texts once (duplicate descriptions share a vector) "
             f"and writes the cache shard and the embedding folder; the warm path reads them back and "
             f"encodes nothing. Vectors match normalised plain output to {max_diff:.1e}. The CPU is shared "
             "with other jobs, so seconds vary run to run; ratios compare the fastest run of each path.")
    record("embed_throughput", "Item embedding throughput (llmrec embed vs plain sentence-transformers)",
           command, table, data, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
