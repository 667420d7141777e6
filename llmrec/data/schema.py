"""The one schema every paradigm uses: interactions, an item catalogue, optional user features.

Column names are fixed so that loaders, splits, scorers and the evaluator agree without mapping:

* interactions: ``user_id`` (str), ``item_id`` (str), ``timestamp`` (int64; a real unix time, or
  an ordinal position where the source only gives order), optional ``rating`` (float) and
  ``label`` (int 0/1, e.g. clicked or liked).
* items: one row per item, indexed by ``item_id`` (str), with text columns such as ``title``,
  ``genres``, ``category``, ``brand``, ``abstract``.
* users (optional): one row per user, indexed by ``user_id``.

Ids are strings everywhere: the sources mix integer ids, ASINs and MIND's ``N123``, and a string
never silently turns 17 into 17.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.errors import DataFormatError

USER = "user_id"
ITEM = "item_id"
TIME = "timestamp"
RATING = "rating"
LABEL = "label"

REQUIRED_INTERACTION_COLUMNS = (USER, ITEM, TIME)

LIKE_THRESHOLD = 3.0
"""Ratings strictly above this are likes (TALLRec: 4 and 5 of 5). The one meaning of "liked":
TALLRec's prompts, its labels and the pointwise evaluator all call :func:`is_liked`."""


def is_liked(ratings, threshold: float = LIKE_THRESHOLD):
    """``rating > threshold``, elementwise for arrays and Series (a 3 of 5 is not a like)."""
    return ratings > threshold


@dataclass
class Dataset:
    """Interactions plus the item catalogue (and user features where the source has them)."""

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    domain: str = "item"
    """The noun prompts use for an item: movie, game, product, news, job."""
    source: str = ""
    """Where the data was read from (a folder), for messages and reports."""
    timestamps_are_order: bool = False
    """True when the source has no clock, only the order of events (Amazon RecBole files)."""
    eval_sequences: pd.DataFrame | None = None
    """A split fixed by the source (columns user_id, history: list[str], target: str), e.g. the
    RecFormer / LLMRank validation files. ``splits.predefined_split`` turns it into a Split."""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interactions = validate_interactions(self.interactions, source=self.source or self.name)
        self.items = validate_items(self.items, source=self.source or self.name)

    @property
    def n_users(self) -> int:
        return int(self.interactions[USER].nunique())

    @property
    def n_items(self) -> int:
        return int(len(self.items))

    def summary(self) -> dict:
        """Counts a person checks first when a data set looks wrong."""
        inter = self.interactions
        per_user = inter.groupby(USER).size()
        out = {
            "name": self.name,
            "domain": self.domain,
            "interactions": int(len(inter)),
            "users": self.n_users,
            "items_in_catalog": self.n_items,
            "items_with_interactions": int(inter[ITEM].nunique()),
            "interactions_per_user_median": float(per_user.median()) if len(per_user) else 0.0,
            "density": float(len(inter) / max(1, self.n_users * max(1, self.n_items))),
            "has_rating": RATING in inter.columns,
            "has_label": LABEL in inter.columns,
            "timestamps_are_order": self.timestamps_are_order,
            "text_fields": [c for c in self.items.columns],
        }
        if self.eval_sequences is not None:
            out["predefined_eval_sequences"] = int(len(self.eval_sequences))
        if "users_before_subsample" in self.meta:
            out["users_before_subsample"] = int(self.meta["users_before_subsample"])
        return out

    def population(self) -> dict:
        """How many users this data set holds out of its source (a seeded subsample says so)."""
        total = int(self.meta.get("users_before_subsample", self.n_users))
        out: dict = {"users": self.n_users, "users_total": total, "subsampled": total != self.n_users}
        if out["subsampled"]:
            out["subsample_seed"] = self.meta.get("subsample_seed")
        return out


def release_dates(items: pd.DataFrame, column: str = "release_date") -> pd.Series:
    """A catalogue date column parsed (any common format; NaT where it does not parse)."""
    if column not in items.columns:
        raise DataFormatError("catalogue", f"a '{column}' date column", field=column, got=list(items.columns))
    return pd.to_datetime(items[column], errors="coerce", format="mixed")


def epoch_seconds(dates: pd.Series) -> np.ndarray:
    """Seconds since 1970-01-01 (the interactions' timestamp unit); NaN for NaT."""
    return (dates - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy(float)


def subsample_users(dataset: Dataset, max_users: int, seed: int = 0) -> Dataset:
    """A seeded subset of ``max_users`` users with all their events (and predefined cases); the
    catalogue stays whole, so full ranking still ranks every item. For quick runs on large sets."""
    if max_users < 1:
        raise ValueError(f"subsample_users: max_users must be at least 1, got {max_users}")
    users = np.sort(dataset.interactions[USER].unique())
    if max_users >= len(users):
        return dataset
    keep = set(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
    seqs = dataset.eval_sequences
    return Dataset(name=dataset.name, interactions=dataset.interactions[dataset.interactions[USER].isin(keep)],
                   items=dataset.items, users=dataset.users, domain=dataset.domain, source=dataset.source,
                   timestamps_are_order=dataset.timestamps_are_order,
                   eval_sequences=None if seqs is None else seqs[seqs[USER].isin(keep)].reset_index(drop=True),
                   meta={**dataset.meta, "subsampled_users": max_users, "subsample_seed": seed,
                         "users_before_subsample": int(dataset.meta.get("users_before_subsample", len(users)))})


def validate_interactions(df: pd.DataFrame, source: str | Path = "interactions") -> pd.DataFrame:
    """Check columns and types; return a copy with canonical dtypes, sorted by (user, time).

    Raises DataFormatError naming the missing or malformed column.
    """
    missing = [c for c in REQUIRED_INTERACTION_COLUMNS if c not in df.columns]
    if missing:
        raise DataFormatError(
            source, f"columns {list(REQUIRED_INTERACTION_COLUMNS)}", field=missing[0], got=list(df.columns)
        )
    if len(df) == 0:
        raise DataFormatError(source, "at least one interaction", got="an empty table")
    out = df.copy()
    for col in (USER, ITEM):
        if out[col].isna().any():
            row = int(np.flatnonzero(out[col].isna().to_numpy())[0])
            raise DataFormatError(source, "a non-empty id", field=col, line=row, got=None)
        out[col] = out[col].astype(str)
    out[TIME] = _numeric_column(out, TIME, source).astype("int64")
    if RATING in out.columns:
        out[RATING] = _numeric_column(out, RATING, source).astype("float64")
    if LABEL in out.columns:
        out[LABEL] = _numeric_column(out, LABEL, source).astype("int64")
    # Stable sort keeps the source order for equal timestamps (ML-100K has many), so "before"
    # is well defined and reproducible.
    out = out.sort_values([USER, TIME], kind="stable").reset_index(drop=True)
    return out


def validate_items(items: pd.DataFrame, source: str | Path = "items") -> pd.DataFrame:
    """Items must be indexed by a unique string item id."""
    out = items.copy()
    if ITEM in out.columns:
        out = out.set_index(ITEM)
    out.index = out.index.astype(str)
    out.index.name = ITEM
    if out.index.has_duplicates:
        dup = out.index[out.index.duplicated()][0]
        raise DataFormatError(source, "unique item ids in the catalogue", field=ITEM, got=dup)
    return out


def _numeric_column(df: pd.DataFrame, col: str, source: str | Path) -> pd.Series:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna() & df[col].notna()
    if bad.any() or values.isna().any():
        row = int(np.flatnonzero((bad | values.isna()).to_numpy())[0])
        raise DataFormatError(source, "a number", field=col, line=row, got=df[col].iloc[row])
    return values
