"""Item tables in, embedding folders out: the file formats behind ``llmrec embed``.

Input: an item table (``.csv``, ``.tsv`` or ``.jsonl``) with one id column and one or more text
columns. Output: an *embedding folder*::

    embeddings.npy   float32 array (N, d); every row has unit L2 norm (cosine = inner product)
    ids.txt          N lines, the item id of each row, same order
    meta.json        {"model": name given, "model_id": name@fingerprint, "dim": d, "count": N,
                      "normalised": true, "dtype": "float32", "text": {template, fields},
                      "source": ..., "cache": {"hits", "misses", "encoded"}, "seconds": ...}

Each file is written atomically and ``meta.json`` last, so a folder with a ``meta.json`` whose
``count`` matches the other two files is complete. ``read_embedding_folder`` checks exactly that.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.schema import Dataset
from llmrec.data.text import item_text, load_template
from llmrec.embed.cache import DEFAULT_SHARD_SIZE, embed_with_cache
from llmrec.embed.encoder import Encoder
from llmrec.errors import DataFormatError
from llmrec.utils.io import atomic_path, atomic_write, write_json

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")


def read_item_table(path: str | Path, id_column: str = "item_id",
                    text_columns: Sequence[str] | None = None, file_format: str | None = None) -> pd.DataFrame:
    """Read an item table; return it indexed by the string id with only the text columns.

    ``file_format`` ("csv", "tsv" or "jsonl") defaults to the file's suffix; TSV has no quoting
    (as in RecBole's ``.item`` / ``.text`` files), so quotes inside titles stay as they are.
    ``text_columns`` defaults to every column but the id. Raises ``DataFormatError`` naming the file
    (and line / field) for an unknown suffix, unparsable rows, an empty table, a missing column, a
    missing id or a duplicate id.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "an existing item file (.csv, .tsv or .jsonl)", got="no such file")
    suffix = f".{file_format.lower().lstrip('.')}" if file_format else path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataFormatError(path, f"a file ending in one of {', '.join(TABLE_SUFFIXES)} (or a format "
                              "named with --format)", got=suffix)
    table = _read_jsonl(path) if suffix == ".jsonl" else _read_delimited(path, "\t" if suffix == ".tsv" else ",")
    if len(table) == 0:
        raise DataFormatError(path, "at least one item row", got="an empty table")
    if id_column not in table.columns:
        raise DataFormatError(path, f"an id column named {id_column!r} (set --id-column)", field=id_column,
                              got=list(table.columns))
    if text_columns is None:
        text_columns = [c for c in table.columns if c != id_column]
        if not text_columns:
            raise DataFormatError(path, "at least one text column besides the id column", got=list(table.columns))
    for column in text_columns:
        if column not in table.columns:
            raise DataFormatError(path, "a text column of this name", field=column, got=list(table.columns))
    # Line numbers in messages count the header as line 1 (as an editor shows them), data from 2.
    first_data_line = 1 if suffix == ".jsonl" else 2
    ids = table[id_column]
    blank = ids.isna() | (ids.astype(str).str.strip() == "")
    if blank.any():
        row = int(np.flatnonzero(blank.to_numpy())[0])
        raise DataFormatError(path, "a non-empty id", line=row + first_data_line, field=id_column, got=ids.iloc[row])
    ids = ids.astype(str)
    duplicated = ids.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise DataFormatError(path, "unique item ids", line=row + first_data_line, field=id_column,
                              got=ids.iloc[row])
    bad = ids.str.contains(r"[\r\n]", regex=True)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFormatError(path, "an id without line breaks (ids.txt holds one id per line)",
                              line=row + first_data_line, field=id_column, got=ids.iloc[row])
    items = table[list(text_columns)].copy()
    items.index = pd.Index(ids, name="item_id")
    return items


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    try:
        # Everything as text: ids like "007" or "1e5" must survive, and text columns are text.
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                           quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL)
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, "a header line and at least one item row", got="an empty file") from None
    except pd.errors.ParserError as err:
        raise DataFormatError(path, f"{'tab' if sep == chr(9) else 'comma'}-separated rows with as many "
                              "fields as the header", got=str(err)) from None
    except UnicodeDecodeError as err:
        raise DataFormatError(path, "UTF-8 text", got=str(err)) from None


def _read_jsonl(path: Path) -> pd.DataFrame:
    rows = []
    with open(path, encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataFormatError(path, "one JSON object per line", line=number, got=str(err)) from None
                if not isinstance(row, dict):
                    raise DataFormatError(path, "one JSON object per line", line=number, got=type(row).__name__)
                rows.append(row)
        except UnicodeDecodeError as err:
            raise DataFormatError(path, "UTF-8 text", got=str(err)) from None
    table = pd.DataFrame(rows)
    for column in table.columns:
        # Nested values (lists of genres) become text; plain numbers become their string form.
        table[column] = table[column].map(_cell_text)
    return table


def _cell_text(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_embedding_folder(out_dir: str | Path, ids: Sequence[str], vectors: np.ndarray, meta: dict) -> list[Path]:
    """Write ``embeddings.npy``, ``ids.txt`` and (last) ``meta.json``, each atomically."""
    out_dir = Path(out_dir)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"{len(ids)} ids and vectors of shape {vectors.shape} do not match")
    for item_id in ids:
        if "\n" in item_id or "\r" in item_id:
            raise ValueError(f"item id {item_id!r} contains a line break; ids.txt holds one id per line")
    with atomic_path(out_dir / "embeddings.npy") as tmp:
        np.save(tmp, vectors)
    with atomic_write(out_dir / "ids.txt") as handle:
        handle.writelines(f"{item_id}\n" for item_id in ids)
    full_meta = {**meta, "dim": int(vectors.shape[1]), "count": int(len(ids)), "normalised": True,
                 "dtype": "float32"}
    write_json(out_dir / "meta.json", full_meta)
    return [out_dir / "embeddings.npy", out_dir / "ids.txt", out_dir / "meta.json"]


def read_embedding_folder(folder: str | Path) -> tuple[list[str], np.ndarray, dict]:
    """Read a folder written by ``write_embedding_folder``: ``(ids, vectors, meta)``, checked."""
    folder = Path(folder)
    meta_file = folder / "meta.json"
    if not meta_file.exists():
        raise DataFormatError(meta_file, "an embedding folder written by `llmrec embed`", got="no meta.json")
    meta = json.loads(meta_file.read_text())
    vectors = np.load(folder / "embeddings.npy", allow_pickle=False)
    ids = (folder / "ids.txt").read_text(encoding="utf-8").splitlines()
    if vectors.shape != (meta["count"], meta["dim"]) or len(ids) != meta["count"]:
        raise DataFormatError(folder, f"{meta['count']} ids and a ({meta['count']}, {meta['dim']}) array as "
                              "meta.json says", got=f"{len(ids)} ids, array {vectors.shape}")
    return ids, vectors, meta


def render_item_texts(items, template: str | None = None, fields: Sequence[str] | None = None) -> pd.Series:
    """Text of every item with ``llmrec.data.text.item_text`` (a Series indexed by string item id).

    ``items`` is a ``Dataset`` (its own template applies) or a catalogue DataFrame (the default
    template). Missing text becomes "".
    """
    texts = item_text(items, template=template, fields=list(fields) if fields else None)
    texts = texts.fillna("").astype(str)
    texts.index = texts.index.astype(str)
    return texts


def join_columns(items: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.Series:
    """Text of every item as its non-empty ``columns`` joined by ". " (for tables of any columns).

    The data sets' templates know columns such as title / genres / brand; an arbitrary item file
    may call its text ``name`` or ``description``, which a template would silently drop.
    """
    columns = list(columns) if columns else list(items.columns)
    cells = items[columns].astype(object).where(items[columns].notna(), "")
    texts = cells.apply(lambda row: ". ".join(s for s in (" ".join(str(v).split()) for v in row) if s), axis=1)
    texts = texts.astype(str) if len(texts) else pd.Series([], index=items.index, dtype=str)
    texts.index = items.index.astype(str)
    return texts


def template_name(items, template: str | None) -> str:
    """What rendered the text, for meta.json: a template name, or inline source as given."""
    if template is not None:
        return str(template)
    name = items.name if isinstance(items, Dataset) else None
    return Path(load_template(None, name).name or "default").stem


def export_embeddings(
    items,
    out_dir: str | Path,
    encoder: Encoder,
    *,
    cache_dir: str | Path | None,
    batch_size: int = 64,
    template: str | None = None,
    fields: Sequence[str] | None = None,
    show_progress: bool = True,
    source: str = "",
    model_name: str | None = None,
    join_fields: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> dict:
    """Render, embed (through the cache) and write every item of ``items`` to an embedding folder.

    ``items`` is a ``Dataset`` or a catalogue DataFrame indexed by item id, rendered with a
    template (``llmrec.data.text``); with ``join_fields`` the ``fields`` are joined as they are
    instead (item files of arbitrary columns). Returns the meta dict written to ``meta.json``.
    With a cache, vectors are stored every ``shard_size`` new texts while encoding, so a run that
    is killed resumes where it stopped; the folder itself is written once, at the end.
    """
    start = time.perf_counter()
    if join_fields:
        texts = join_columns(items, fields)
        text_how = "join: " + ", ".join(fields or list(items.columns))
    else:
        texts = render_item_texts(items, template=template, fields=fields)
        text_how = template_name(items, template)
    ids = list(texts.index)
    vectors, stats = embed_with_cache(encoder, ids, list(texts), cache_dir=cache_dir, batch_size=batch_size,
                                      show_progress=show_progress, shard_size=shard_size)
    meta = {
        "model": model_name or encoder.model_id.split("@")[0],
        "model_id": encoder.model_id,
        "text": {"template": text_how, "fields": list(fields) if fields else None,
                 "empty_texts": int((texts.str.strip() == "").sum())},
        "source": source,
        "cache": {"dir": str(cache_dir) if cache_dir is not None else None, **stats},
        "batch_size": batch_size,
    }
    meta["seconds"] = round(time.perf_counter() - start, 3)
    write_embedding_folder(out_dir, ids, vectors, meta)
    return {**meta, "dim": int(vectors.shape[1]), "count": len(ids), "normalised": True, "dtype": "float32"}
