"""goodbooks-10k's ``books.csv``: a catalogue of 10,000 Goodreads books (no interactions here)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmrec.data.loaders._tables import clean_text, read_table
from llmrec.data.schema import ITEM

FILE = "books.csv"
REQUIRED = ("book_id", "title", "authors", "original_publication_year")


def load_goodbooks_items(path: str | Path) -> pd.DataFrame:
    """The book catalogue, indexed by ``book_id`` (str): title, original_title, authors, year,
    language_code, isbn, average_rating, ratings_count.

    ``path`` is ``books.csv`` or the folder holding it.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    table = read_table(path, delimiter=",", required=REQUIRED, quoted=True)
    table.integers("book_id", "an integer book id")
    table.unique("book_id", "a book id not listed before")
    frame = table.frame
    year = pd.to_numeric(frame["original_publication_year"], errors="coerce")
    row = table.first_bad(year.isna() & (frame["original_publication_year"].str.strip() != ""))
    if row is not None:
        raise table.error(row, "original_publication_year", "a year (e.g. 2008.0) or nothing")
    items = pd.DataFrame({
        "title": clean_text(frame["title"]).to_numpy(),
        "authors": clean_text(frame["authors"]).to_numpy(),
        # Years before the common era are negative in the file; keep them as integers.
        "year": year.astype("Int64").to_numpy(),
    }, index=pd.Index(frame["book_id"].str.strip().to_numpy(), name=ITEM))
    for column in ("original_title", "language_code", "isbn"):
        if column in frame.columns:
            items[column] = clean_text(frame[column]).to_numpy()
    if "average_rating" in frame.columns:
        items["average_rating"] = table.numbers("average_rating", "a number").to_numpy()
    if "ratings_count" in frame.columns:
        items["ratings_count"] = table.integers("ratings_count", "an integer count").to_numpy()
    return items
