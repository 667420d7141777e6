"""MovieLens "latest" CSV format (ml-latest-small, ml-latest, ml-20m/25m/32m share it).

* ``ratings.csv``: ``userId,movieId,rating,timestamp`` with a header; UTF-8.
* ``movies.csv``: ``movieId,title,genres``; titles in double quotes when they hold commas;
  genres ``Adventure|Animation`` or ``(no genres listed)``.
* ``tags.csv`` (optional): ``userId,movieId,tag,timestamp``; becomes a ``tags`` text per movie.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.loaders._tables import UnknownItemPolicy, clean_text, read_table, require_known_items
from llmrec.data.schema import ITEM, RATING, TIME, USER, Dataset

REQUIRED_FILES = ("ratings.csv", "movies.csv")
OPTIONAL_FILES = ("tags.csv",)
NO_GENRES = "(no genres listed)"


def read_movies(path: Path) -> pd.DataFrame:
    table = read_table(path, delimiter=",", required=("movieId", "title", "genres"), quoted=True)
    table.integers("movieId", "an integer movie id")
    table.unique("movieId", "a movie id not listed before")
    genres = clean_text(table.frame["genres"], na_literals=(NO_GENRES,)).str.replace("|", ", ", regex=False)
    items = pd.DataFrame({
        ITEM: table.frame["movieId"].to_numpy(),
        "title": clean_text(table.frame["title"]).to_numpy(),
        "genres": genres.to_numpy(),
    })
    return items.set_index(ITEM)


def read_tags(path: Path, catalogue: pd.Index) -> tuple[pd.Series, pd.DataFrame, int]:
    """One ``tags`` text per movie ("dark comedy, quirky"), each tag once, in first-use order.

    Tags are side text, not interactions: tags on movies absent from movies.csv are skipped and
    counted rather than failing the load. Also returns the raw tag events (user, item, tag,
    timestamp) so that a strict setup can rebuild tags from the training period only: the
    aggregated text spans all time, including tags written after a test event.
    """
    table = read_table(path, delimiter=",", required=("userId", "movieId", "tag"), quoted=True)
    table.integers("movieId", "an integer movie id")
    events = pd.DataFrame({USER: table.frame["userId"], ITEM: table.frame["movieId"],
                           "tag": clean_text(table.frame["tag"])})
    if "timestamp" in table.frame.columns:
        events[TIME] = table.integers("timestamp", "a unix time in seconds")
    events = events.dropna(subset=["tag"])
    known = events[ITEM].isin(catalogue)
    events = events[known].reset_index(drop=True)
    first_use = events[~events.assign(key=events["tag"].str.lower()).duplicated([ITEM, "key"])]
    return first_use.groupby(ITEM, sort=False)["tag"].agg(", ".join), events, int((~known).sum())


def load_ml_latest_small(
    folder: str | Path, *, on_unknown_items: UnknownItemPolicy = "error", name: str = "ml-latest-small"
) -> Dataset:
    """Load a MovieLens "latest"-format folder (ratings.csv, movies.csv, optional tags.csv).

    Ratings are 0.5-5 stars; timestamps unix seconds. Ratings of movies missing from movies.csv
    raise by default; ``on_unknown_items='drop'`` drops and counts them.
    """
    folder = Path(folder)
    items = read_movies(folder / "movies.csv")
    ratings = read_table(folder / "ratings.csv", delimiter=",",
                         required=("userId", "movieId", "rating", "timestamp"), quoted=True)
    ratings.integers("userId", "an integer user id")
    ratings.integers("movieId", "an integer movie id")
    inter = pd.DataFrame({
        USER: ratings.frame["userId"].to_numpy(),
        ITEM: ratings.frame["movieId"].to_numpy(),
        RATING: ratings.numbers("rating", "a rating from 0.5 to 5 (half stars)", low=0.5, high=5, step=0.5).to_numpy(),
        TIME: ratings.integers("timestamp", "a unix time in seconds").to_numpy(),
    })
    keep, dropped = require_known_items(ratings, "movieId", inter[ITEM], items.index, "movies.csv",
                                        on_unknown_items)
    meta: dict = {"dropped_unknown_items": dropped}
    if (folder / "tags.csv").exists():
        tags, tag_events, skipped = read_tags(folder / "tags.csv", items.index)
        items["tags"] = tags.reindex(items.index).to_numpy()
        meta["tag_events"] = tag_events
        meta["tags_on_unknown_items"] = skipped
    else:
        items["tags"] = np.nan
    return Dataset(name=name, interactions=inter[keep], items=items, domain="movie", source=str(folder),
                   meta=meta)
