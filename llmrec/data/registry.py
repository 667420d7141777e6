"""Data sets by name: where their files go, how to load them, where to get them.

``load_dataset("ml-100k")`` looks in ``<data dir>/ml-100k/`` (see ``paths.resolve_data_dir``),
downloads MovieLens from GroupLens when allowed, and otherwise says exactly which files to put
in which folder.

A download happens only when the data set's folder is absent. A folder that exists but lacks
files is an error naming them, never a download: it may be the user's own copy, half-copied or
renamed, and fetching files into it would mix two releases silently.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmrec.data import loaders
from llmrec.data.paths import resolve_data_dir
from llmrec.data.schema import Dataset
from llmrec.errors import DatasetNotFoundError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    loader: Callable[..., Dataset]
    folders: tuple[str, ...]
    """Sub-folders of the data dir to look in, first match wins."""
    files: tuple[str, ...]
    """Files the loader needs in that folder."""
    description: str
    optional_files: tuple[str, ...] = ()
    url: str | None = None
    """Where a person gets the files (a page or an archive)."""
    downloadable: bool = False
    """True when llmrec can fetch and verify the files itself (llmrec.data.download)."""
    loader_kwargs: dict = field(default_factory=dict)


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec(
        "ml-100k", loaders.load_ml_100k, ("ml-100k",), ("u.data", "u.item", "u.genre", "u.user"),
        "MovieLens 100K: 100,000 ratings of 1,682 movies by 943 users, with user demographics",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip", downloadable=True),
    DatasetSpec(
        "ml-latest-small", loaders.load_ml_latest_small, ("ml-latest-small",), ("ratings.csv", "movies.csv"),
        "MovieLens latest-small (2016 release: 100,004 ratings, 671 users, 9,125 movies, tags)",
        optional_files=("tags.csv",),
        url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip", downloadable=True),
    DatasetSpec(
        "amazon-games", loaders.load_amazon_games, ("amazon-games",), ("Games.item", "Games-6k.valid.inter"),
        "Amazon 2018 Video Games as processed for LLMRank (RecBole atomic files; order, no clock)",
        url="https://github.com/RUCAIBox/LLMRank (dataset links in its README)"),
    DatasetSpec(
        "amazon-scientific", loaders.load_amazon_scientific, ("amazon-scientific",),
        ("Scientific.text", "Scientific.valid.inter", "Scientific.item2index", "Scientific.user2index"),
        "Amazon 2018 Industrial & Scientific as processed for UniSRec/RecFormer (order, no clock)",
        optional_files=("Scientific.train.inter",),
        url="https://github.com/RUCAIBox/UniSRec (downstream data sets, linked from its README)"),
    DatasetSpec(
        "mind", loaders.load_mind,
        ("mind-small-sample/MINDsmall_train", "MINDsmall_train", "mind/MINDsmall_train"),
        ("behaviors.tsv", "news.tsv"),
        "MIND news clicks and impressions (a MINDsmall_train folder; labels 1/0)",
        url="https://msnews.github.io/ (MINDsmall_train.zip)"),
    DatasetSpec(
        "job-views", loaders.load_job_views, ("job-views",), ("Job_Views.csv",),
        "CareerBuilder job views with applicants' experience and positions of interest",
        optional_files=("Experience.csv", "Positions_Of_Interest.csv")),
)}


def list_datasets() -> list[str]:
    """Names ``load_dataset`` accepts."""
    return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}") from None


def find_folder(spec: DatasetSpec, root: Path) -> Path | None:
    """The first of the spec's folders under ``root`` that holds every needed file."""
    for sub in spec.folders:
        folder = root / sub
        if all((folder / f).is_file() for f in spec.files):
            return folder
    return None


def not_found_message(spec: DatasetSpec, root: Path, download_failed: str | None = None) -> str:
    folder = root / spec.folders[0]
    missing = [f for f in spec.files if not (folder / f).is_file()]
    lines = [f"data set {spec.name!r} not found: put {', '.join(spec.files)} in {folder}"]
    if missing and len(missing) < len(spec.files):
        lines.append(f"(missing there: {', '.join(missing)})")
    if len(spec.folders) > 1:
        lines.append("or in one of " + ", ".join(str(root / f) for f in spec.folders[1:]))
    if spec.optional_files:
        lines.append(f"optional, used when present: {', '.join(spec.optional_files)}")
    if spec.url:
        lines.append(f"get them from {spec.url}")
    if spec.downloadable and download_failed is None:
        lines.append("or allow the download to fetch and verify them (load_dataset(..., download=True); "
                     "on the command line, leave out --no-download)")
    if download_failed:
        lines.append(f"download failed: {download_failed}")
    lines.append(f"the data dir is the data_dir argument, else $LLMREC_DATA_DIR, else ~/.cache/llmrec/data "
                 f"(now {root})")
    return "; ".join(lines)


def incomplete_message(spec: DatasetSpec, root: Path, folder: Path) -> str:
    """The error for a data set folder that exists but lacks some of the needed files."""
    missing = [f for f in spec.files if not (folder / f).is_file()]
    lines = [f"data set {spec.name!r}: {folder} exists but lacks {', '.join(missing)} "
             f"(needed: {', '.join(spec.files)}); put the missing files there"]
    if spec.downloadable:
        lines.append("nothing was downloaded: llmrec downloads only into an absent folder, never into "
                     "one that exists; move this folder away to download the data set afresh")
    if spec.url:
        lines.append(f"get them from {spec.url}")
    lines.append(f"the data dir is the data_dir argument, else $LLMREC_DATA_DIR, else ~/.cache/llmrec/data "
                 f"(now {root})")
    return "; ".join(lines)


def _loader_options(spec: DatasetSpec, on_unknown_items: str | None, options: dict) -> dict:
    if on_unknown_items is None:
        return options
    if on_unknown_items not in ("error", "drop"):
        raise ValueError(f"on_unknown_items must be 'error' or 'drop', got {on_unknown_items!r}")
    if "on_unknown_items" in inspect.signature(spec.loader).parameters:
        return {**options, "on_unknown_items": on_unknown_items}
    # One flag for every command: a loader whose catalogue is built from (or completed with) the
    # items its interactions name has no unknown items to drop.
    if on_unknown_items == "drop":
        log.warning("data set %r has no unknown-item check (its catalogue covers every item its "
                    "interactions name); on_unknown_items='drop' changes nothing", spec.name)
    return options


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True, *,
                 on_unknown_items: str | None = None, **options) -> Dataset:
    """Load a data set by name (see ``list_datasets()``) from the data dir.

    ``download``: a MovieLens set whose folder is absent is downloaded from GroupLens and verified
    (False: never download). A folder that exists but lacks files raises ``DatasetNotFoundError``
    naming them, whatever ``download`` says. ``on_unknown_items``: ``'error'`` (the loaders'
    default) or ``'drop'`` for interactions naming items missing from the catalogue; ignored, with
    a warning for ``'drop'``, by data sets without that check (mind, job-views). Other ``options``
    go to the loader (e.g. ``ids='index'``). Raises ``DatasetNotFoundError`` naming the files and
    the folder they belong in.
    """
    spec = get_spec(name)
    root = resolve_data_dir(data_dir)
    folder = find_folder(spec, root)
    if folder is None:
        partial = next((root / sub for sub in spec.folders if (root / sub).is_dir()), None)
        if partial is not None:
            raise DatasetNotFoundError(incomplete_message(spec, root, partial))
    if folder is None and spec.downloadable and download:
        from llmrec.data.download import download_movielens  # urllib + zipfile only when needed

        try:
            folder = download_movielens(name, root)
        except OSError as err:  # no network, refused, disk full: say so next to the manual route
            raise DatasetNotFoundError(not_found_message(spec, root, download_failed=str(err))) from err
    if folder is None:
        raise DatasetNotFoundError(not_found_message(spec, root))
    options = _loader_options(spec, on_unknown_items, options)
    return spec.loader(folder, **{**spec.loader_kwargs, **options})
