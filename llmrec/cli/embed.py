"""``llmrec embed``: embed every item's text once and write an embedding folder.

    llmrec embed --dataset amazon-scientific [--data-dir D] [--no-download] [--on-unknown-items drop]
                 --out DIR [--model NAME]
    llmrec embed --items FILE [--id-column item_id] [--text-columns title genres] --out DIR

``FILE`` is ``.csv``, ``.tsv`` or ``.jsonl`` with an id column and text columns (default: every
other column), joined by ". " into the item text unless ``--template`` is given. A data set's
items are rendered with its template under ``prompts/item_text/``. ``DIR`` receives (each file
written atomically, ``meta.json`` last):

* ``embeddings.npy``: float32 array ``(N, d)``, rows L2-normalised (inner product = cosine);
* ``ids.txt``: N lines, the item id of each row, same order;
* ``meta.json``: ``model``, ``model_id`` (name@content fingerprint), ``dim``, ``count``,
  ``normalised``, ``dtype``, ``text`` (template and fields used), ``source``, ``cache`` (dir, hits,
  misses, encoded), ``batch_size``, ``seconds``.

Vectors come through the embedding cache (``--cache-dir``, default ~/.cache/llmrec/embeddings), so
a second run over the same texts with the same model encodes nothing. The cache is written every
``--shard-size`` new texts while encoding: a run that is interrupted (Ctrl-C, kill -9, a lost
machine) and started again encodes only what it had not stored. Items whose text is empty are
counted on screen (and in ``meta.json``): they all share the encoding of the empty string. Read a
folder back with ``llmrec.embed.read_embedding_folder``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from llmrec.embed.cache import DEFAULT_CACHE_DIR, DEFAULT_SHARD_SIZE
from llmrec.embed.encoder import DEFAULT_MODEL


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed", help="embed item texts into DIR/embeddings.npy + ids.txt + meta.json (cached)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a registered data set (see `llmrec data list`)")
    source.add_argument("--items", help="an item table: .csv, .tsv or .jsonl with an id column and text columns")
    parser.add_argument("--data-dir", default=None, help="folder holding the data sets (default: $LLMREC_DATA_DIR)")
    parser.add_argument("--no-download", action="store_true",
                        help="--dataset: never download; fail if the data set's folder is absent")
    parser.add_argument("--on-unknown-items", choices=["error", "drop"], default="error",
                        help="--dataset: interactions naming items missing from the catalogue stop the load "
                             "(error, the default) or are dropped and counted (drop)")
    parser.add_argument("--format", dest="file_format", choices=["csv", "tsv", "jsonl"], default=None,
                        help="format of --items (default: from its suffix), e.g. tsv for RecBole .item files")
    parser.add_argument("--id-column", default="item_id", help="id column of --items (default: item_id)")
    parser.add_argument("--text-columns", nargs="+", default=None,
                        help="columns rendered into the item text (default: every text column)")
    parser.add_argument("--template", default=None,
                        help="item text template: a name under prompts/item_text/, a .j2 file or jinja2 source "
                             "(default: the data set's own; for --items the text columns joined by '. ')")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"sentence-transformers model name or folder (default: packaged {DEFAULT_MODEL})")
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR,
                        help=f"embedding cache (default: {DEFAULT_CACHE_DIR})")
    parser.add_argument("--no-cache", action="store_true", help="encode everything; do not read or fill the cache")
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="texts per encoder batch (default: 64)")
    parser.add_argument("--shard-size", type=_positive_int, default=DEFAULT_SHARD_SIZE,
                        help="new texts encoded between two cache writes: the most an interrupted run "
                             f"loses (default: {DEFAULT_SHARD_SIZE})")
    parser.add_argument("--device", default=None, help="torch device (default: automatic)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let the model folder run its own code (only for models you trust)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def run(args: argparse.Namespace) -> int:
    from llmrec.embed.encoder import load_sentence_encoder
    from llmrec.embed.files import export_embeddings, read_item_table

    if not getattr(args, "verbose", False):
        # The summary line says what happened; sentence-transformers' INFO lines only repeat it.
        logging.getLogger("sentence_transformers").setLevel(logging.WARNING)

    if args.dataset:
        from llmrec.data.registry import load_dataset

        dataset = load_dataset(args.dataset, args.data_dir, download=not args.no_download,
                               on_unknown_items=args.on_unknown_items)
        source = f"dataset {args.dataset}" + (f" ({dataset.source})" if dataset.source else "")
        items: Any = dataset  # a Dataset: its own item-text template applies
    else:
        items = read_item_table(args.items, id_column=args.id_column, text_columns=args.text_columns,
                                file_format=args.file_format)
        source = str(args.items)
    encoder = load_sentence_encoder(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
    meta = export_embeddings(
        items, args.out, encoder,
        cache_dir=None if args.no_cache else args.cache_dir,
        batch_size=args.batch_size,
        template=args.template,
        # An item file's columns are arbitrary: join them unless a template was asked for.
        fields=args.text_columns if args.dataset else list(items.columns),  # a plain table here
        join_fields=bool(args.items) and args.template is None,
        show_progress=not args.no_progress,
        source=source,
        model_name=args.model,
        shard_size=args.shard_size,
    )
    cache = meta["cache"]
    print(f"embedded {meta['count']} items -> {args.out} (dim {meta['dim']}, {meta['model']}): "
          f"cache {cache['hits']} hits, {cache['misses']} misses, {cache['encoded']} encoded, {meta['seconds']:.1f} s")
    empty = meta["text"]["empty_texts"]
    if empty:
        # They all get the vector of the empty string, so they look alike to any nearest-neighbour use.
        print(f"note: {empty} of {meta['count']} item texts are empty (embedded as the empty string; "
              "check --text-columns / --template)")
    return 0
