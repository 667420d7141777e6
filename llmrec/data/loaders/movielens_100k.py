"""MovieLens 100K in its official format (https://grouplens.org/datasets/movielens/100k/).

* ``u.data``: ``user<TAB>item<TAB>rating<TAB>unix time``, no header.
* ``u.item``: ``|``-separated, **latin-1** (titles such as "Misérables, Les (1995)"): id, title,
  release date, video release date, IMDb URL, then 19 genre flags in the order of ``u.genre``.
  A copy re-saved as UTF-8 is detected and decoded as UTF-8, with a warning and
  ``meta['u.item_encoding']`` saying so (reading it as latin-1 would garble every accented title).
* Ratings are whole stars from 1 to 5; anything else is an error naming the line.
* ``u.genre``: ``name|index``; ``u.user``: ``id|age|gender|occupation|zip``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.loaders._tables import (
    UnknownItemPolicy,
    clean_text,
    read_table,
    require_known_items,
    sniff_latin1_or_utf8,
)
from llmrec.data.schema import ITEM, RATING, TIME, USER, Dataset
from llmrec.errors import DataFormatError

FILES = ("u.data", "u.item", "u.genre", "u.user")
ENCODING = "latin-1"  # u.item is latin-1; the other files are ASCII, which latin-1 also reads
ITEM_FIELDS = ("movie_id", "title", "release_date", "video_release_date", "imdb_url")

log = logging.getLogger(__name__)


def read_genres(path: Path) -> list[str]:
    """Genre names in flag order (``u.genre`` lines ``name|index``)."""
    table = read_table(path, delimiter="|", names=("genre", "index"), encoding=ENCODING)
    index = table.integers("index", "the genre's 0-based position")
    order = np.argsort(index.to_numpy(), kind="stable")
    if not np.array_equal(index.to_numpy()[order], np.arange(len(index))):
        raise DataFormatError(path, f"genre positions 0..{len(index) - 1}, each once", field="index",
                              got=sorted(index.tolist()))
    return table.frame["genre"].to_numpy()[order].tolist()


def read_items(path: Path, genres: list[str], encoding: str = ENCODING) -> pd.DataFrame:
    """The movie catalogue: title, release date, IMDb URL and a ``genres`` text ("Action, Comedy")."""
    names = ITEM_FIELDS + tuple(f"genre:{g}" for g in genres)
    table = read_table(path, delimiter="|", names=names, encoding=encoding)
    table.unique("movie_id", "a movie id not listed before")
    table.integers("movie_id", "an integer movie id")
    flag_columns = [f"genre:{g}" for g in genres]
    for column in flag_columns:
        table.one_of(column, ("0", "1"))
    flags = table.frame[flag_columns].to_numpy() == "1"
    genre_names = np.asarray(genres, dtype=object)
    genre_text = [", ".join(genre_names[row]) for row in flags]  # 1,682 rows: a loop is fine
    items = pd.DataFrame({
        ITEM: table.frame["movie_id"].to_numpy(),
        "title": clean_text(table.frame["title"]).to_numpy(),
        "genres": genre_text,
        "release_date": clean_text(table.frame["release_date"]).to_numpy(),
        "imdb_url": clean_text(table.frame["imdb_url"]).to_numpy(),
    })
    items["genres"] = items["genres"].replace("", np.nan)
    return items.set_index(ITEM)


def read_users(path: Path) -> pd.DataFrame:
    table = read_table(path, delimiter="|", names=("user_id", "age", "gender", "occupation", "zip_code"),
                       encoding=ENCODING)
    table.unique("user_id", "a user id not listed before")
    users = pd.DataFrame({
        USER: table.frame["user_id"].to_numpy(),
        "age": table.integers("age", "an age in years").to_numpy(),
        "gender": table.one_of("gender", ("M", "F")).to_numpy(),
        "occupation": clean_text(table.frame["occupation"]).to_numpy(),
        "zip_code": clean_text(table.frame["zip_code"]).to_numpy(),
    })
    return users.set_index(USER)


def _checked_ids(table, column: str, what: str) -> np.ndarray:
    table.integers(column, what)
    return table.frame[column].to_numpy()


def load_ml_100k(folder: str | Path, *, on_unknown_items: UnknownItemPolicy = "error") -> Dataset:
    """Load MovieLens 100K from ``folder`` (holding u.data, u.item, u.genre, u.user).

    Interactions carry ``rating`` (1-5) and the unix ``timestamp``. Ratings of movies missing from
    ``u.item`` raise by default; ``on_unknown_items='drop'`` drops them and records the count in
    ``meta['dropped_unknown_items']``.
    """
    folder = Path(folder)
    item_encoding = sniff_latin1_or_utf8(folder / "u.item")
    if item_encoding != ENCODING:
        log.warning("%s is UTF-8, not latin-1 as MovieLens ships it: decoded as UTF-8", folder / "u.item")
    items = read_items(folder / "u.item", read_genres(folder / "u.genre"), encoding=item_encoding)
    ratings = read_table(folder / "u.data", delimiter="\t", names=(USER, ITEM, RATING, TIME),
                         encoding=ENCODING)
    inter = pd.DataFrame({
        # Ids stay the strings of the file (checked to be integers) so they match u.item exactly.
        USER: _checked_ids(ratings, USER, "an integer user id"),
        ITEM: _checked_ids(ratings, ITEM, "an integer movie id"),
        RATING: ratings.numbers(RATING, "a rating from 1 to 5 (whole stars)", low=1, high=5, step=1).to_numpy(),
        TIME: ratings.integers(TIME, "a unix time in seconds").to_numpy(),
    })
    keep, dropped = require_known_items(ratings, ITEM, inter[ITEM], items.index, "u.item", on_unknown_items)
    users = read_users(folder / "u.user")
    return Dataset(
        name="ml-100k", interactions=inter[keep], items=items, users=users, domain="movie",
        source=str(folder),
        meta={"dropped_unknown_items": dropped, "u.item_encoding": "utf-8" if item_encoding != ENCODING else ENCODING},
    )
