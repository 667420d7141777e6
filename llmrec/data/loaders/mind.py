"""MIND (Microsoft News Dataset) in its official format (https://msnews.github.io/).

* ``behaviors.tsv``: impression id, user, time ("11/12/2019 2:14:46 PM"), click history
  (space-separated news ids, oldest first; may be empty), impressions ("N123-1 N456-0": news id
  and clicked 1/0). No header.
* ``news.tsv``: news id, category, subcategory, title, abstract, URL, title entities, abstract
  entities (JSON). No header.

Interactions (all with ``label``):
* the click history, label 1, timestamped one second apart just before the user's first
  impression (MIND gives no click times; the order is kept). A user's history is the same in
  every impression of a split, so it is taken once, from the earliest impression;
* every impressed news item, label 1 (clicked) or 0, at the impression time.
Positive-only methods keep ``label == 1``. ``meta['impressions']`` holds the impressions in long
form (impression_id, user_id, timestamp, item_id, label, position) for CTR-style evaluation.

Catalogue policy: many news ids in behaviours (most, in the 5,000-impression sample) have no
row in ``news.tsv``. They still get a catalogue row, with empty text, so that every interacted
item is in the catalogue; ``meta['items_without_text']`` counts them and text builders skip them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.loaders._tables import clean_text, read_table
from llmrec.data.schema import ITEM, LABEL, TIME, USER, Dataset
from llmrec.errors import DataFormatError

BEHAVIOR_FIELDS = ("impression_id", "user_id", "time", "history", "impressions")
NEWS_FIELDS = ("news_id", "category", "subcategory", "title", "abstract", "url", "title_entities",
               "abstract_entities")
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
TEXT_FIELDS = ("category", "subcategory", "title", "abstract", "url")


def read_news(path: Path) -> pd.DataFrame:
    table = read_table(path, delimiter="\t", names=NEWS_FIELDS)
    table.nonempty("news_id", "a news id")
    table.unique("news_id", "a news id not listed before")
    items = pd.DataFrame({c: clean_text(table.frame[c]).to_numpy() for c in TEXT_FIELDS},
                         index=pd.Index(table.frame["news_id"].str.strip().to_numpy(), name=ITEM))
    return items


_IMPRESSIONS = r"\s*[^\s-]+-[01](?:\s+[^\s-]+-[01])*\s*"


def flatten_tokens(values: pd.Series) -> tuple[list[str], np.ndarray]:
    """Whitespace-separated tokens of every row, flattened, and the row each came from.

    Plain string splitting instead of ``explode`` + per-token regex: the full MIND-small train
    file has ~6 million impressed items.
    """
    texts = values.tolist()
    counts = np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts))
    return " ".join(texts).split(), np.repeat(np.arange(len(texts)), counts)


def read_impressions(table) -> pd.DataFrame:
    """Long form of the impressions column: one row per impressed news item."""
    frame = table.frame
    well_formed = frame["impressions"].str.fullmatch(_IMPRESSIONS)
    row = table.first_bad(~well_formed)
    if row is not None:
        tokens = frame["impressions"].iloc[row].split()
        bad = next((t for t in tokens if not re.fullmatch(r"[^\s-]+-[01]", t)), "")
        raise table.error(row, "impressions", "impressed items as NEWSID-0 or NEWSID-1, at least one "
                          "(MIND test files without labels are not supported)", got=bad)
    # Every token is "<id>-<0|1>" (checked above): the label is its last character.
    tokens, rows = flatten_tokens(frame["impressions"])
    label = np.frombuffer("".join(t[-1] for t in tokens).encode("ascii"), dtype=np.uint8) - ord("0")
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else rows
    position = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    return pd.DataFrame({
        "impression_id": frame["impression_id"].to_numpy()[rows],
        USER: frame["user_id"].to_numpy()[rows],
        "row": rows,
        ITEM: [t[:-2] for t in tokens],
        LABEL: label.astype(np.int64),
        "position": position,
    })


def load_mind(folder: str | Path, *, name: str = "mind") -> Dataset:
    """Load a MIND split folder (``behaviors.tsv`` + ``news.tsv``), e.g. ``MINDsmall_train``."""
    folder = Path(folder)
    behaviors = read_table(folder / "behaviors.tsv", delimiter="\t", names=BEHAVIOR_FIELDS)
    behaviors.nonempty("impression_id", "an impression id")
    behaviors.unique("impression_id", "an impression id not listed before")
    behaviors.nonempty("user_id", "a user id")
    seconds = behaviors.unix_seconds("time", TIME_FORMAT, 'a time like "11/12/2019 2:14:46 PM"')
    frame = behaviors.frame.assign(**{TIME: seconds.to_numpy()})
    frame["user_id"] = frame["user_id"].str.strip()

    impressions = read_impressions(behaviors)
    impressions[TIME] = seconds.to_numpy()[impressions["row"].to_numpy()]

    # Each user's click history once, from their earliest impression (ties: earliest line).
    first = frame.sort_values([TIME], kind="stable").drop_duplicates("user_id")
    clicked, rows = flatten_tokens(first["history"])
    length = np.bincount(rows, minlength=len(first)).astype(np.int64)
    ends = np.cumsum(length)
    position = np.arange(len(rows)) - np.repeat(ends - length, length)
    clicks = pd.DataFrame({
        USER: first["user_id"].to_numpy()[rows], ITEM: clicked,
        # n clicks end one second before the first impression: t0 - n, ..., t0 - 1.
        TIME: first[TIME].to_numpy()[rows] - length[rows] + position,
        LABEL: np.ones(len(rows), dtype=np.int64),
    })
    shown = impressions[[USER, ITEM, TIME, LABEL]]
    interactions = pd.concat([clicks, shown], ignore_index=True)

    news = read_news(folder / "news.tsv")
    referenced = pd.Index(interactions[ITEM].unique())
    missing = referenced.difference(news.index)
    items = news.reindex(news.index.append(missing))  # missing news: a row with empty (NaN) text
    items.index.name = ITEM
    if len(interactions) == 0:
        raise DataFormatError(folder / "behaviors.tsv", "at least one click or impression")
    impressions = impressions.drop(columns="row")
    return Dataset(name=name, interactions=interactions, items=items, domain="news", source=str(folder),
                   meta={"impressions": impressions, "items_without_text": int(len(missing)),
                         "news_rows": int(len(news))})
