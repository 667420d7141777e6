"""Amazon review data as RecBole "atomic" files (the LLMRank and UniSRec/RecFormer releases).

Files are tab-separated with a typed header (``user_id:token  item_id_list:token_seq  item_id:token``);
columns are found by name, not position.

* ``.inter`` files hold sequences: a user's history (space-separated item ids, oldest first) and
  the next item. ``.valid.inter`` has one row per user: the whole training sequence and the
  validation target. ``.train.inter`` expands each training sequence into prefix -> next rows.
  The held-back ``.test.inter`` target is the event after the validation target.
* ``.item`` (LLMRank Games: ``item_id``, ``title``) or ``.text`` (UniSRec Scientific: ASIN and
  "title. categories. brand.") give item text.
* ``.item2index`` / ``.user2index`` (UniSRec) map ASINs / reviewer ids to the integers in ``.inter``.

There is no clock, only order: the timestamp of an event is its position in the user's sequence
(0, 1, 2, ...) and ``timestamps_are_order`` is set. The interactions are each user's full known
sequence (history + validation target); ``eval_sequences`` holds one (history, target) case per
.valid.inter row so ``splits.predefined_split`` reproduces the source's evaluation, and
leave-one-out on the interactions makes the same validation target the test event. RecBole keeps
at most the last 50 history items in a row; where a .train.inter file shows the user had more,
the interactions and the case's history hold them all (``meta['histories_truncated_in_file']``
counts such users).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from llmrec.data.loaders._tables import (
    UNKNOWN_ITEMS_HINT,
    RawTable,
    UnknownItemPolicy,
    clean_text,
    read_table,
    recbole_header_name,
)
from llmrec.data.schema import ITEM, TIME, USER, Dataset
from llmrec.errors import DataFormatError

log = logging.getLogger(__name__)

HISTORY = "item_id_list"
INTER_COLUMNS = (USER, HISTORY, ITEM)
_WHITESPACE = re.compile(r"\s")


def read_inter(path: Path) -> RawTable:
    """Read a sequence ``.inter`` file; every row needs a user, a non-empty history and one target."""
    table = read_table(path, delimiter="\t", required=INTER_COLUMNS, header_name=recbole_header_name)
    table.nonempty(USER, "a user id")
    table.nonempty(HISTORY, "a non-empty space-separated item history (oldest first)")
    target = table.nonempty(ITEM, "the next item's id")
    row = table.first_bad(target.str.strip().str.contains(_WHITESPACE))
    if row is not None:
        raise table.error(row, ITEM, "one item id (the next item), not a list")
    return table


def _explode(table: RawTable) -> pd.DataFrame:
    """One event per item of each row's history + target, in order.

    Columns: user, item, ``pos`` (position in the row's sequence), ``is_target`` (the file's
    next-item column), ``line`` (file line, for errors).
    """
    full = table.frame[HISTORY].str.strip() + " " + table.frame[ITEM].str.strip()
    items = full.str.split().explode()
    rows = items.index.to_numpy()
    pos = items.groupby(level=0, sort=False).cumcount().to_numpy()
    lengths = full.str.split().str.len().to_numpy()
    return pd.DataFrame({USER: table.frame[USER].str.strip().to_numpy()[rows], ITEM: items.to_numpy(),
                         "pos": pos, "is_target": pos == lengths[rows] - 1, "line": table.lines[rows]})


def _check_events(
    events: pd.DataFrame, table: RawTable, items: pd.Index, catalogue_file: str, policy: UnknownItemPolicy,
    user_map: pd.Series | None, item_map: pd.Series | None, dataset: str,
) -> tuple[pd.DataFrame, int]:
    """Map file ids to Dataset ids and check items against the catalogue; errors name file and line."""

    def fail(mask: np.ndarray, expected: str, column: str) -> DataFormatError:
        first = int(np.flatnonzero(mask)[0])
        field = USER if column == USER else (ITEM if events["is_target"].iloc[first] else HISTORY)
        return DataFormatError(table.path, expected, line=int(events["line"].iloc[first]), field=field,
                               got=events[column].iloc[first])

    events = events.copy()
    for column, mapping, what in ((ITEM, item_map, "item"), (USER, user_map, "user")):
        if mapping is None:
            continue
        mapped = events[column].map(mapping)
        missing = mapped.isna().to_numpy()
        if missing.any():
            raise fail(missing, f"{what} indices listed in the {dataset} {what}2index file", column)
        events[column] = mapped.astype(str).to_numpy()
    unknown = ~events[ITEM].isin(items).to_numpy()
    dropped = int(unknown.sum())
    if dropped and policy == "error":
        n_ids = events.loc[unknown, ITEM].nunique()
        raise fail(unknown, f"item ids listed in {catalogue_file} ({dropped} events name {n_ids} unknown "
                            f"ids; {UNKNOWN_ITEMS_HINT})", ITEM)
    return events[~unknown], dropped


def _eval_sequences(events: pd.DataFrame) -> pd.DataFrame:
    """(user, history, target) for every user whose last event is the valid file's target.

    The history is every earlier event of the user, i.e. the user's known prefix: the file's own
    history column is the same except where RecBole truncated it to the last 50 items (pass
    ``max_history=50`` to an evaluator to reproduce that). A user whose target was dropped as
    an unknown item has no case.
    """
    last = ~events[USER].duplicated(keep="last").to_numpy()
    ends_with_target = pd.Series(last & events["is_target"].to_numpy())
    has_case = ends_with_target.groupby(events[USER].to_numpy()).transform("any")
    cases = events[has_case.to_numpy()]
    is_last = ~cases[USER].duplicated(keep="last").to_numpy()
    targets = cases[is_last]
    items = cases[ITEM].to_numpy()
    ends = np.flatnonzero(is_last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return pd.DataFrame({
        USER: targets[USER].to_numpy(),
        "history": [items[a:b].tolist() for a, b in zip(starts, ends, strict=True)],
        "target": targets[ITEM].to_numpy(),
    })


def _build(
    name: str, domain: str, folder: Path, valid: RawTable, items: pd.DataFrame, catalogue_file: str,
    policy: UnknownItemPolicy, train: RawTable | None = None, user_map: pd.Series | None = None,
    item_map: pd.Series | None = None, meta: dict | None = None,
) -> Dataset:
    """Interactions = each user's full known sequence; ``eval_sequences`` = one case per valid row.

    Without a train file the full sequence is the valid history + target. With one, it is the
    train sequence rebuilt from its prefix rows (valid histories may be truncated to the last 50
    items, train rows hold every event) + the valid target.
    """
    if policy not in ("error", "drop"):
        raise ValueError(f"on_unknown_items must be 'error' or 'drop', got {policy!r}")
    row = valid.first_bad(valid.frame[USER].str.strip().duplicated())
    if row is not None:
        raise valid.error(row, USER, "one row per user in a .valid.inter file")
    check = dict(items=items.index, catalogue_file=catalogue_file, policy=policy, user_map=user_map,
                 item_map=item_map, dataset=name)
    valid_events, dropped = _check_events(_explode(valid), valid, **check)
    parts = [valid_events]
    truncated = 0
    if train is not None:
        train_events, dropped_train = _check_events(_train_sequences(train, valid), train, **check)
        dropped += dropped_train
        has_train = valid_events[USER].isin(train_events[USER].unique())
        # Users in both files: the train sequence, then the valid target after it.
        targets = valid_events[has_train & valid_events["is_target"]].copy()
        targets["pos"] = np.iinfo(np.int64).max
        file_history = valid_events[~valid_events["is_target"]].groupby(USER).size()
        train_history = train_events.groupby(USER).size().reindex(file_history.index)
        truncated = int((train_history > file_history).sum())
        parts = [valid_events[~has_train], train_events, targets]
    events = pd.concat(parts, ignore_index=True).sort_values([USER, "pos"], kind="stable")
    interactions = pd.DataFrame({USER: events[USER].to_numpy(), ITEM: events[ITEM].to_numpy()})
    # Positions restart at 0 and stay consecutive per user after drops.
    interactions[TIME] = interactions.groupby(USER, sort=False).cumcount().to_numpy()
    eval_sequences = _eval_sequences(events)
    # Catalogue items no interaction names still count in full ranking (the catalogue is the item
    # file, as in the source's own evaluation): say how many, so the catalogue size is no surprise.
    unused = int((~items.index.isin(interactions[ITEM].unique())).sum())
    if unused:
        log.warning("%s: %d of the %d items in %s are named by no interaction; they stay in the catalogue "
                    "(meta['items_without_interactions'])", name, unused, len(items), catalogue_file)
    return Dataset(name=name, interactions=interactions, items=items, domain=domain, source=str(folder),
                   timestamps_are_order=True, eval_sequences=eval_sequences,
                   meta={"dropped_unknown_items": dropped, "histories_truncated_in_file": truncated,
                         "items_without_interactions": unused, **(meta or {})})


# --- LLMRank Amazon Games --------------------------------------------------------------------------
def read_item_titles(path: Path) -> pd.DataFrame:
    """A RecBole ``.item`` file with ``item_id`` and ``title`` columns."""
    table = read_table(path, delimiter="\t", required=(ITEM, "title"), header_name=recbole_header_name)
    table.nonempty(ITEM, "an item id")
    table.unique(ITEM, "an item id not listed before")
    items = pd.DataFrame({ITEM: table.frame[ITEM].str.strip().to_numpy(),
                          "title": clean_text(table.frame["title"]).to_numpy()})
    return items.set_index(ITEM)


def load_amazon_games(
    folder: str | Path,
    *,
    item_file: str = "Games.item",
    valid_file: str = "Games-6k.valid.inter",
    on_unknown_items: UnknownItemPolicy = "error",
) -> Dataset:
    """Amazon 2018 Video Games as processed for LLMRank: ``Games.item`` + ``Games-6k.valid.inter``.

    Ids are the integers of the files (as strings). Domain "game".
    """
    folder = Path(folder)
    items = read_item_titles(folder / item_file)
    valid = read_inter(folder / valid_file)
    return _build("amazon-games", "game", folder, valid, items, item_file, on_unknown_items)


# --- UniSRec / RecFormer Amazon Scientific ---------------------------------------------------------
def split_amazon_text(text: pd.Series) -> pd.DataFrame:
    """Split UniSRec's "title. categories. brand. " into title / category / brand.

    Brands may hold periods ("Mr. Heater", "Co., Inc.") and titles too, so the split is anchored
    on the category path, which always starts with the data set's root category (e.g.
    "Industrial & Scientific") or is empty. The root is inferred as the word prefix most category
    candidates share. A text that does not fit keeps everything in ``title``.
    """
    text = text.astype("str").str.strip()
    generic = text.str.extract(r"^(?P<title>.*)\. (?P<category>[^.]*)\. (?P<brand>[^.]*)\.$")
    root = _common_root(generic["category"].dropna())
    if root:
        pattern = rf"^(?P<title>.*)\. (?P<category>{re.escape(root)}[^.]*|)\. (?P<brand>.*?)\.?$"
        parts = text.str.extract(pattern)
    else:
        parts = generic
    unparsed = parts["title"].isna()
    parts.loc[unparsed, "title"] = text[unparsed]
    return pd.DataFrame({c: clean_text(parts[c].fillna("")) for c in ("title", "category", "brand")})


def _common_root(categories: pd.Series, share: float = 0.9) -> str:
    words = categories[categories.str.strip() != ""].str.split()
    if words.empty:
        return ""
    root: list[str] = []
    while True:
        k = len(root)
        nxt = words.str[k].dropna()
        if nxt.empty:
            return " ".join(root)
        prefix = root + [nxt.mode().iloc[0]]
        shared = words.map(lambda w, p=prefix: w[: len(p)] == p)
        if shared.mean() < share:
            return " ".join(root)
        root = prefix


def _read_index(path: Path, key: str) -> RawTable:
    table = read_table(path, delimiter="\t", names=(key, "index"))
    table.nonempty(key, f"a {key}")
    table.unique(key, f"a {key} not listed before")
    table.integers("index", "an integer index")
    table.unique("index", "an index not used before")
    return table


def load_amazon_scientific(
    folder: str | Path,
    *,
    stem: str = "Scientific",
    ids: Literal["original", "index"] = "original",
    on_unknown_items: UnknownItemPolicy = "error",
) -> Dataset:
    """Amazon 2018 Industrial & Scientific as processed for UniSRec / RecFormer.

    Reads ``<stem>.text``, ``<stem>.valid.inter``, ``<stem>.item2index``, ``<stem>.user2index``
    and, when present, ``<stem>.train.inter`` (checked against the validation sequences; users
    found only there are added).

    ``ids='original'`` (default): items are ASINs and users reviewer ids, the ids the text and the
    public Amazon data use; ``meta['item_index']`` / ``meta['user_index']`` map them to the
    integers of the ``.inter`` files (e.g. to read the held-back ``.test.inter``).
    ``ids='index'``: items and users are those integers (as strings), with an ``asin`` column.
    """
    if ids not in ("original", "index"):
        raise ValueError(f"ids must be 'original' or 'index', got {ids!r}")
    folder = Path(folder)
    text = read_table(folder / f"{stem}.text", delimiter="\t", required=(ITEM, "text"),
                      header_name=recbole_header_name)
    text.nonempty(ITEM, "an ASIN")
    text.unique(ITEM, "an ASIN not listed before")
    items = split_amazon_text(text.frame["text"])
    items.index = pd.Index(text.frame[ITEM].str.strip().to_numpy(), name=ITEM)

    item_index = _read_index(folder / f"{stem}.item2index", "asin")
    user_index = _read_index(folder / f"{stem}.user2index", "user")
    asin_of = pd.Series(item_index.frame["asin"].to_numpy(), index=item_index.frame["index"].to_numpy())
    user_of = pd.Series(user_index.frame["user"].to_numpy(), index=user_index.frame["index"].to_numpy())

    valid = read_inter(folder / f"{stem}.valid.inter")
    train = read_inter(folder / f"{stem}.train.inter") if (folder / f"{stem}.train.inter").exists() else None

    meta = {"item_index": pd.Series(asin_of.index.astype("int64"), index=asin_of.to_numpy(), name="index"),
            "user_index": pd.Series(user_of.index.astype("int64"), index=user_of.to_numpy(), name="index")}
    if ids == "original":
        return _build("amazon-scientific", "product", folder, valid, items, f"{stem}.text", on_unknown_items,
                      train=train, user_map=user_of, item_map=asin_of, meta=meta)
    # Integer ids: the catalogue is re-keyed by index; texts of ASINs without an index are dropped
    # (and counted: they are catalogue entries in ids='original').
    has_index = items.index.isin(asin_of.to_numpy())
    meta["texts_without_index"] = int((~has_index).sum())
    keyed = items[has_index].copy()
    keyed["asin"] = keyed.index.to_numpy()
    keyed.index = pd.Index(keyed.index.map(meta["item_index"]).astype(str), name=ITEM)
    return _build("amazon-scientific", "product", folder, valid, keyed, f"{stem}.text", on_unknown_items,
                  train=train, meta=meta)


def _train_sequences(train: RawTable, valid: RawTable) -> pd.DataFrame:
    """Rebuild each user's training sequence from .train.inter's prefix -> next rows.

    A user's rows are the prefixes k = 1..n of one sequence s (history = s[k-w:k], at most w items;
    next = s[k]); UniSRec writes them longest first, either order is accepted. The sequence is the
    shortest row's history followed by every row's next item. Every row is checked against it,
    and the valid history must be its tail: files that do not belong together fail here.
    """
    users = train.frame[USER].str.strip().tolist()
    histories = train.frame[HISTORY].str.split().tolist()
    nexts = train.frame[ITEM].str.strip().tolist()
    rows_of: dict[str, list[int]] = {}
    for i, user in enumerate(users):
        rows_of.setdefault(user, []).append(i)
    valid_history = dict(zip(valid.frame[USER].str.strip(), valid.frame[HISTORY].str.split(), strict=True))
    out_user: list[str] = []
    out_item: list[str] = []
    out_line: list[int] = []
    out_pos: list[int] = []
    for user, rows in rows_of.items():
        if len(histories[rows[0]]) > len(histories[rows[-1]]):
            rows = rows[::-1]
        start = histories[rows[0]]
        seq = start + [nexts[r] for r in rows]
        lines = [train.line(rows[0])] * len(start) + [train.line(r) for r in rows]
        for j, r in enumerate(rows):
            k = len(start) + j
            if seq[max(0, k - len(histories[r])):k] != histories[r] or len(histories[r]) > k:
                raise DataFormatError(train.path, f"the {len(histories[r])} items before the next item "
                                                  f"{nexts[r]!r} in user {user}'s sequence (rows of a user "
                                                  "must be the prefixes of one sequence)",
                                      line=train.line(r), field=HISTORY, got=" ".join(histories[r]))
        tail = valid_history.get(user)
        if tail is not None and seq[-len(tail):] != tail:
            vrow = int(np.flatnonzero((valid.frame[USER].str.strip() == user).to_numpy())[0])
            raise valid.error(vrow, HISTORY, f"user {user}'s training sequence from {train.path.name} "
                                             "(or its last items)", got=" ".join(tail))
        out_user += [user] * len(seq)
        out_item += seq
        out_line += lines
        out_pos += range(len(seq))
    n = len(out_item)
    return pd.DataFrame({USER: out_user, ITEM: out_item, "pos": np.asarray(out_pos, dtype=np.int64),
                         "is_target": np.zeros(n, dtype=bool), "line": np.asarray(out_line, dtype=np.int64)})
