"""Reading delimited text files strictly, so that a bad file fails with its file, line and field.

Why not ``pandas.read_csv`` alone: it fills a short row's missing fields with empty strings without
a word, and its error messages count records, not the physical lines an editor shows (quoted CSV
fields may span lines). So the stdlib ``csv`` tokenizer (C code) splits records while we note the
line each one starts on; pandas then holds the table and does the vectorised checks (numbers,
dates, known ids). Every error path turns a row index back into a 1-based file line.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from llmrec.errors import DataFormatError

UnknownItemPolicy = Literal["error", "drop"]

#: How to drop unknown items, worded for both entry points (the API and every data-loading command).
UNKNOWN_ITEMS_HINT = "pass on_unknown_items='drop' (command line: --on-unknown-items drop) to drop and count them"

SEPARATOR_NAMES = {"\t": "tab", ",": "comma", "|": "'|'", ";": "semicolon", " ": "space"}

_MISSING = object()


def read_text(path: Path, encoding: str) -> str:
    """Decode a whole file strictly; an undecodable byte is reported with its line."""
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        begin = data.rfind(b"\n", 0, err.start) + 1
        end = data.find(b"\n", err.start)
        shown = data[begin: end if end >= 0 else len(data)][:120]
        name = "UTF-8" if encoding.lower().replace("_", "-").startswith("utf-8") else encoding
        raise DataFormatError(path, f"{name} text (byte {data[err.start]:#04x} at column "
                                    f"{err.start - begin + 1} is not valid {name})",
                              line=line, got=shown) from None


def sniff_latin1_or_utf8(path: Path) -> str:
    """``"utf-8-sig"`` for a file that is valid UTF-8 and not plain ASCII, else ``"latin-1"``.

    For files documented as latin-1 (MovieLens 100K's ``u.item``) that a user re-saved as UTF-8:
    latin-1 decodes any bytes, so reading such a file as latin-1 garbles every accented title
    ("MisÃ©rables") without an error. Real latin-1 text with accents is almost never valid UTF-8
    (an accented letter followed by ASCII is an invalid sequence). A file that mixes the two
    fails with the line of its first UTF-8 sequence.
    """
    data = path.read_bytes()
    if data.isascii():
        return "latin-1"
    try:
        data.decode("utf-8")
        return "utf-8-sig"  # "-sig": an editor's byte-order mark must not stick to the first id
    except UnicodeDecodeError:
        pass
    # Latin-1 decoding of UTF-8 two-byte sequences gives "Ã©", "Ã¨", "Â " ...: mixed encodings.
    text = data.decode("latin-1")
    mixed = re.search(r"[ÂÃ][\x80-\xbf]", text)
    if mixed:
        line = text.count("\n", 0, mixed.start()) + 1
        begin = text.rfind("\n", 0, mixed.start()) + 1
        end = text.find("\n", mixed.start())
        raise DataFormatError(path, "one encoding for the whole file (latin-1 as MovieLens ships it, or UTF-8); "
                                    "this line holds UTF-8 bytes while others are latin-1", line=line,
                              got=text[begin: end if end >= 0 else len(text)][:120])
    return "latin-1"


@dataclass
class RawTable:
    """A delimited file as strings: ``frame`` (one str column per field, '' for empty fields) and
    ``lines`` (the 1-based line each row starts on), for errors that point into the file."""

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    def line(self, row: int) -> int:
        return int(self.lines[row])

    def error(self, row: int, column: str, expected: str, got: object = _MISSING) -> DataFormatError:
        value = self.frame[column].iloc[row] if got is _MISSING else got
        return DataFormatError(self.path, expected, line=self.line(row), field=column, got=value)

    def first_bad(self, bad: pd.Series | np.ndarray) -> int | None:
        where = np.flatnonzero(np.asarray(bad, dtype=bool))
        return int(where[0]) if len(where) else None

    # --- typed columns: each checks every row and names the first bad one -----------------------
    def nonempty(self, column: str, what: str = "a non-empty value") -> pd.Series:
        values = self.frame[column]
        row = self.first_bad(values.str.strip() == "")
        if row is not None:
            raise self.error(row, column, what)
        return values

    def integers(self, column: str, what: str = "an integer") -> pd.Series:
        values = pd.to_numeric(self.frame[column], errors="coerce")
        row = self.first_bad(values.isna().to_numpy() | (values.fillna(0) % 1 != 0).to_numpy())
        if row is not None:
            raise self.error(row, column, what)
        return values.astype("int64")

    def numbers(self, column: str, what: str = "a number", *, low: float | None = None,
                high: float | None = None, step: float | None = None) -> pd.Series:
        """Finite numbers; with ``low`` / ``high`` / ``step`` also within the documented range and
        on its grid (whole stars: ``step=1``), so an out-of-range rating is an error, not data."""
        values = pd.to_numeric(self.frame[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.fillna(0))
        filled = values.fillna(low if low is not None else 0)
        if low is not None:
            bad |= filled < low
        if high is not None:
            bad |= filled > high
        if step is not None:
            base = low if low is not None else 0.0
            bad |= ~np.isclose((filled - base) / step, np.round((filled - base) / step))
        row = self.first_bad(bad)
        if row is not None:
            raise self.error(row, column, what)
        return values.astype("float64")

    def unix_seconds(self, column: str, fmt: str, what: str) -> pd.Series:
        """Parse date-times with an exact format into int64 seconds since 1970 (naive = UTC)."""
        parsed = pd.to_datetime(self.frame[column], format=fmt, errors="coerce")
        row = self.first_bad(parsed.isna())
        if row is not None:
            raise self.error(row, column, what)
        # Resolution-independent (pandas may parse to s, ms, us or ns).
        return ((parsed - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)).astype("int64")

    def one_of(self, column: str, allowed: Sequence[str]) -> pd.Series:
        values = self.frame[column]
        row = self.first_bad(~values.isin(list(allowed)))
        if row is not None:
            raise self.error(row, column, "one of " + ", ".join(repr(a) for a in allowed))
        return values

    def unique(self, column: str, what: str) -> pd.Series:
        values = self.frame[column]
        row = self.first_bad(values.duplicated())
        if row is not None:
            first = int(np.flatnonzero((values == values.iloc[row]).to_numpy())[0])
            raise self.error(row, column, f"{what} (already on line {self.line(first)})")
        return values


def read_table(
    path: Path,
    *,
    delimiter: str,
    names: Sequence[str] | None = None,
    required: Sequence[str] = (),
    header_name: Callable[[str], str] = lambda name: name,
    quoted: bool = False,
    encoding: str = "utf-8-sig",
) -> RawTable:
    """Read a delimited file into a :class:`RawTable` of strings.

    ``names`` given: the file has no header and every line must have exactly these fields.
    ``names`` None: line 1 is a header; ``header_name`` maps each header cell to a column name
    (RecBole's ``item_id:token`` -> ``item_id``) and ``required`` columns must be among them.
    ``quoted``: CSV quoting (fields in double quotes may hold separators and newlines); otherwise
    quotes are ordinary characters, as in MovieLens' ``u.*`` files, RecBole and MIND.
    """
    path = Path(path)
    text = read_text(path, encoding)
    sep_name = SEPARATOR_NAMES.get(delimiter, repr(delimiter))
    if not text.strip():
        what = (f"{len(names)} {sep_name}-separated fields per line ({', '.join(names)})" if names
                else f"a {sep_name}-separated header line naming {', '.join(required) or 'the columns'}")
        raise DataFormatError(path, what, line=1, got="an empty file")

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=quoted,
                        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    rows: list[list[str]] = []
    starts: list[int] = []
    previous_end = 0
    try:
        for record in reader:
            rows.append(record)
            starts.append(previous_end + 1)
            previous_end = reader.line_num
    except csv.Error as err:
        raise DataFormatError(path, f"well-formed {sep_name}-separated text", line=previous_end + 1,
                              got=str(err)) from None
    while rows and not rows[-1]:  # a trailing blank line is harmless; blank lines inside are not
        rows.pop()
        starts.pop()

    if names is None:
        header, rows, header_line = rows[0], rows[1:], starts[0]
        starts = starts[1:]
        columns = [header_name(cell.strip()) for cell in header]
        missing = [c for c in required if c not in columns]
        if missing:
            raise DataFormatError(path, f"a header line with the columns {', '.join(required)} "
                                        f"({sep_name}-separated)", line=header_line, field=missing[0],
                                  got=text.split("\n", 1)[0].rstrip("\r"))
        if not rows:
            raise DataFormatError(path, "at least one data row after the header", line=header_line + 1,
                                  got="end of file")
    else:
        columns = list(names)

    width = len(columns)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    bad = np.flatnonzero(lengths != width)
    if len(bad):
        row = int(bad[0])
        line = starts[row]
        line_text = text.split("\n")[line - 1].rstrip("\r") if not quoted else delimiter.join(rows[row])
        hint = ""
        if lengths[row] == 1 and delimiter != "," and "," in line_text:
            hint = "; the line looks comma-separated"
        elif lengths[row] == 1 and delimiter != "\t" and "\t" in line_text:
            hint = "; the line looks tab-separated"
        raise DataFormatError(path, f"{width} {sep_name}-separated fields ({', '.join(columns)}), "
                                    f"found {int(lengths[row])}{hint}", line=line, got=line_text)
    frame = pd.DataFrame(rows, columns=columns, dtype="str") if rows else pd.DataFrame(columns=columns)
    return RawTable(path=path, frame=frame, lines=np.asarray(starts, dtype=np.int64))


def recbole_header_name(cell: str) -> str:
    """RecBole atomic files name columns ``name:type`` (``item_id:token``); keep the name."""
    return cell.split(":", 1)[0]


def require_known_items(
    table: RawTable,
    column: str,
    item_ids: pd.Series,
    catalogue: pd.Index,
    catalogue_file: str,
    policy: UnknownItemPolicy,
) -> tuple[np.ndarray, int]:
    """Check that interactions name catalogued items.

    Returns (mask of rows to keep, number dropped). ``policy='error'`` raises on the first unknown
    id, with how many rows and ids are affected; ``'drop'`` keeps the known rows and counts the rest.
    """
    if policy not in ("error", "drop"):
        raise ValueError(f"on_unknown_items must be 'error' or 'drop', got {policy!r}")
    known = item_ids.isin(catalogue).to_numpy()
    n_bad = int((~known).sum())
    if n_bad and policy == "error":
        row = int(np.flatnonzero(~known)[0])
        n_ids = int(item_ids[~known].nunique())
        raise table.error(row, column, f"an item id listed in {catalogue_file} ({n_bad} rows name {n_ids} "
                                       f"unknown ids; {UNKNOWN_ITEMS_HINT})")
    return known, n_bad


def clean_text(values: pd.Series, na_literals: Sequence[str] = ()) -> pd.Series:
    """Strip text and decode HTML entities; empty strings and NA literals (R's ``NA``) become NaN.

    Scraped catalogues (Amazon titles) carry ``&amp;`` and the like, which only confuse text models.
    """
    out = values.astype("str").map(html.unescape).str.strip()
    missing = out.eq("") | out.isin(list(na_literals))
    return out.mask(missing)
