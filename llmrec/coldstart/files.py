"""Files that carry cold-start results between commands: enriched item text and simulated events.

Both are written atomically and read back with every row checked: a bad row raises
``DataFormatError`` naming the file, the line (as an editor shows it) and the field.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from llmrec.coldstart.enrich import ENRICHED_COLUMN, FILE_COLUMNS, STATUSES, EnrichResult, enriched_items
from llmrec.coldstart.simulate import COLUMNS, SimulateResult, _typed
from llmrec.data.schema import ITEM, RATING, TIME, USER
from llmrec.data.splits import Split
from llmrec.errors import DataFormatError
from llmrec.utils.io import atomic_write


# --- enriched item text ----------------------------------------------------------------------------
def write_enriched(path: str | Path, result: EnrichResult) -> Path:
    """Atomically write one row per item (item_id, text, status) as .csv or .jsonl (by suffix).

    ``text`` is the accepted text, the rejected answer (for inspection) or "" for ``no_text``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ValueError(f"{path}: enriched text is written as .csv or .jsonl, got {suffix!r}")
    rows = [{"item_id": i, "text": result.texts.get(i, result.answers.get(i, "")), "status": s}
            for i, s in result.status.items()]
    with atomic_write(path) as handle:
        if suffix == ".csv":
            writer = csv.DictWriter(handle, fieldnames=FILE_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        else:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return path


def read_enriched(path: str | Path, items: pd.DataFrame | None = None) -> EnrichResult:
    """Read ``write_enriched``'s file, checking every row (``DataFormatError`` names line and field).

    With ``items``, every item id must be in that catalogue.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "an enriched-text file (.csv or .jsonl) from 'llmrec coldstart enrich'",
                              got="no such file")
    known = set(items.index.astype(str)) if items is not None else None
    result = EnrichResult(texts={}, status={})
    for line, row in _rows(path, FILE_COLUMNS):
        for column in FILE_COLUMNS:
            if not isinstance(row.get(column), str):
                raise DataFormatError(path, "a text value", line=line, field=column, got=row.get(column))
        item_id, text, status = row["item_id"], row["text"], row["status"]
        if not item_id.strip():
            raise DataFormatError(path, "a non-empty item id", line=line, field="item_id", got=item_id)
        if item_id in result.status:
            raise DataFormatError(path, "one row per item", line=line, field="item_id", got=item_id)
        if known is not None and item_id not in known:
            raise DataFormatError(path, "an item of the catalogue", line=line, field="item_id", got=item_id)
        if status not in STATUSES:
            raise DataFormatError(path, f"one of {', '.join(STATUSES)}", line=line, field="status", got=status)
        if "\n" in text or "\r" in text or (status == "accepted" and not text.strip()):
            raise DataFormatError(path, "one non-empty line of text" if status == "accepted" else "one line of text",
                                  line=line, field="text", got=text)
        result.status[item_id] = status
        if status == "accepted":
            result.texts[item_id] = text
        elif text:
            result.answers[item_id] = text
    return result


def _rows(path: Path, columns: tuple[str, ...]):
    """(line number, row) pairs of a .csv (whose header must name ``columns``) or .jsonl file; line
    numbers as an editor shows them (a CSV header is line 1)."""
    suffix = path.suffix.lower()
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            if suffix == ".jsonl":
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError as err:
                            raise DataFormatError(path, "one JSON object per line", line=number, got=str(err)) from None
                        if not isinstance(row, dict):
                            raise DataFormatError(path, "one JSON object per line", line=number, got=row)
                        yield number, row
            elif suffix == ".csv":
                reader = csv.DictReader(handle)
                missing = [c for c in columns if c not in (reader.fieldnames or [])]
                if missing:
                    raise DataFormatError(path, f"a header with the columns {', '.join(columns)}", line=1,
                                          field=missing[0], got=reader.fieldnames)
                for row in reader:
                    yield reader.line_num, row
            else:
                raise DataFormatError(path, "a .csv or .jsonl file", got=suffix)
    except UnicodeDecodeError as err:
        raise DataFormatError(path, "UTF-8 text", got=str(err)) from None


def with_enriched_text(split: Split, path: str | Path) -> Split:
    """The same split over a catalogue with the accepted LLM text of ``path`` as an ``llm_text`` column."""
    items = split.dataset.items
    items = enriched_items(items, read_enriched(path, items), ENRICHED_COLUMN)
    return dataclasses.replace(split, dataset=dataclasses.replace(split.dataset, items=items))


# --- simulated events ----------------------------------------------------------------------------
def write_simulated(path: str | Path, result_or_events: SimulateResult | pd.DataFrame) -> Path:
    """Atomically write the simulated events as .csv (columns ``COLUMNS``)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path}: simulated events are written as .csv, got {path.suffix!r}")
    events = result_or_events.events if isinstance(result_or_events, SimulateResult) else result_or_events
    events = _typed(events)
    with atomic_write(path) as handle:
        events.to_csv(handle, index=False, lineterminator="\n")
    return path


def read_simulated(path: str | Path, split: Split | None = None) -> pd.DataFrame:
    """Read ``write_simulated``'s file, checking every row (``DataFormatError`` names line and field).

    With ``split``, every user and item must be in its data set.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "a simulated-events .csv from 'llmrec coldstart simulate'", got="no such file")
    users = set(split.dataset.interactions[USER]) if split is not None else None
    items = set(split.dataset.items.index.astype(str)) if split is not None else None
    checks: list[tuple[str, Any, str]] = [  # column, parser (None: bad), what was expected
        (USER, lambda v: v if v and (users is None or v in users) else None, "a user of the data set"),
        (ITEM, lambda v: v if v and (items is None or v in items) else None, "an item of the catalogue"),
        (TIME, lambda v: _number(v, int), "an integer timestamp"),
        (RATING, lambda v: _number(v, float), "a finite number"),
        ("simulated", lambda v: True if v.lower() in ("true", "1") else None, "True (every row is simulated)"),
        ("p_yes", lambda v: p if (p := _number(v, float)) is not None and 0 <= p <= 1 else None,
         "a probability in [0, 1]"),
        ("prefilter_rank", lambda v: r if (r := _number(v, int)) is not None and r >= 1 else None,
         "a positive integer")]
    rows: list[list[Any]] = []
    seen: set[tuple[str, str]] = set()
    if path.suffix.lower() != ".csv":
        raise DataFormatError(path, "a .csv file of simulated events", got=path.suffix)
    for line, row in _rows(path, COLUMNS):
        values = []
        for column, parse, expected in checks:
            value = parse(str(row.get(column) or "").strip())
            if value is None:
                raise DataFormatError(path, expected, line=line, field=column, got=row.get(column))
            values.append(value)
        if (values[0], values[1]) in seen:
            raise DataFormatError(path, "one row per (user, item)", line=line, field=ITEM, got=values[1])
        seen.add((values[0], values[1]))
        rows.append(values)
    return _typed(pd.DataFrame(rows, columns=list(COLUMNS)))


def _number(text: str, kind: type) -> Any:
    """``text`` as a finite ``kind`` (int or float), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or (kind is int and not value.is_integer()):
        return None
    return int(value) if kind is int else value
