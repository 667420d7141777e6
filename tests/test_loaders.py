"""Loaders on the real files: counts from the data README, id consistency, decoding, splits."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from llmrec.cli import main as cli_main
from llmrec.data import ITEM, LABEL, RATING, TIME, USER
from llmrec.data.loaders import (
    load_amazon_games,
    load_amazon_scientific,
    load_goodbooks_items,
    load_job_views,
    load_mind,
    load_ml_100k,
    load_ml_latest_small,
    read_tallrec_json,
)
from llmrec.data.paths import DATA_DIR_ENV, resolve_data_dir
from llmrec.data.registry import DATASETS, list_datasets, load_dataset
from llmrec.data.splits import leave_one_out_split, predefined_split, temporal_split
from llmrec.errors import DatasetNotFoundError

pytestmark = pytest.mark.realdata


def assert_catalogue_covers(dataset) -> None:
    assert dataset.interactions[ITEM].isin(dataset.items.index).all()
    assert dataset.items.index.is_unique
    for column in (USER, ITEM):
        assert dataset.interactions[column].map(type).eq(str).all()


# --- caches: each real data set is read once per test session -----------------------------------------
@pytest.fixture(scope="session")
def ml100k(require_data):
    return load_ml_100k(require_data("ml-100k"))


@pytest.fixture(scope="session")
def scientific(require_data):
    return load_amazon_scientific(require_data("amazon-scientific"))


@pytest.fixture(scope="session")
def games(require_data):
    return load_amazon_games(require_data("amazon-games"))


@pytest.fixture(scope="session")
def mind(require_data):
    return load_mind(require_data("mind-small-sample", "MINDsmall_train"))


# --- MovieLens 100K -----------------------------------------------------------------------------------
def test_ml100k_counts_match_readme(ml100k):
    assert len(ml100k.interactions) == 100_000
    assert ml100k.n_users == 943
    assert ml100k.n_items == 1682
    assert len(ml100k.users) == 943
    assert ml100k.domain == "movie" and not ml100k.timestamps_are_order
    assert_catalogue_covers(ml100k)


def test_ml100k_values_and_latin1_titles(ml100k, require_data):
    inter = ml100k.interactions
    assert set(inter[RATING].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    # README: collected from September 19th, 1997 through April 22nd, 1998.
    days = pd.to_datetime(inter[TIME], unit="s")
    assert days.min() >= pd.Timestamp("1997-09-19") and days.max() < pd.Timestamp("1998-04-24")
    assert ml100k.items.loc["543", "title"] == "Misérables, Les (1995)"
    raw = require_data("ml-100k", "u.item").read_bytes()
    assert b"Mis\xe9rables" in raw  # the file really is latin-1, not UTF-8
    accented = ml100k.items["title"].str.contains("[é-ü]", regex=True)
    assert accented.sum() >= 5
    assert ml100k.users.loc["1"].tolist() == [24, "M", "technician", "85711"]


def test_ml100k_genres_follow_flags(ml100k, require_data):
    genre_lines = require_data("ml-100k", "u.genre").read_text().splitlines()
    genres = [line.split("|")[0] for line in genre_lines if line]
    with open(require_data("ml-100k", "u.item"), encoding="latin-1") as handle:
        rows = [line.rstrip("\n").split("|") for line in handle if line.strip()]
    for row in rows[:200]:
        expected = [g for g, flag in zip(genres, row[5:], strict=True) if flag == "1"]
        shown = ml100k.items.loc[row[0], "genres"]
        assert (shown.split(", ") if isinstance(shown, str) else []) == expected


def test_ml100k_first_events_match_the_file(ml100k, require_data):
    with open(require_data("ml-100k", "u.data")) as handle:
        first = [handle.readline().split("\t") for _ in range(50)]
    inter = ml100k.interactions.set_index([USER, ITEM])
    for user, item, rating, when in first:
        row = inter.loc[(user, item)]
        assert row[RATING] == float(rating) and row[TIME] == int(when)


# --- MovieLens latest-small ---------------------------------------------------------------------------
def test_ml_latest_small_counts_and_tags(require_data):
    folder = require_data("ml-latest-small")
    data = load_ml_latest_small(folder)
    assert len(data.interactions) == 100_004
    assert data.n_users == 671
    assert data.n_items == 9125
    assert_catalogue_covers(data)
    assert data.interactions[RATING].between(0.5, 5).all()
    tagged = pd.read_csv(folder / "tags.csv", dtype=str)["movieId"].unique()
    assert set(data.items.index[data.items["tags"].notna()]) == set(tagged)
    assert data.items.loc["1", "genres"] == "Adventure, Animation, Children, Comedy, Fantasy"
    assert data.items["genres"].str.contains("|", regex=False).sum() == 0
    assert len(data.meta["tag_events"]) == 1296  # README: 1296 tag applications


# --- Amazon (RecBole atomic files) --------------------------------------------------------------------
def test_games_counts_sequences_and_predefined_split(games, require_data):
    assert games.n_items == 16_859
    assert games.n_users == 50_546
    assert games.domain == "game" and games.timestamps_are_order
    assert_catalogue_covers(games)
    raw = pd.read_csv(require_data("amazon-games", "Games-6k.valid.inter"), sep="\t", dtype=str)
    lengths = raw["item_id_list:token_seq"].str.split().str.len() + 1
    assert len(games.interactions) == int(lengths.sum())
    # Timestamps are positions 0..n-1 per user.
    per_user = games.interactions.groupby(USER)[TIME]
    assert (per_user.min() == 0).all() and (per_user.max() + 1 == per_user.size()).all()
    seqs = games.eval_sequences.set_index(USER)
    row = raw.iloc[7]
    assert seqs.loc[row["user_id:token"], "history"] == row["item_id_list:token_seq"].split()
    assert seqs.loc[row["user_id:token"], "target"] == row["item_id:token"]
    split = predefined_split(games)
    assert len(split.test) == 50_546


def test_scientific_counts_ids_and_text_split(scientific, require_data):
    assert scientific.n_items == 4385
    assert scientific.n_users == 8442
    assert scientific.domain == "product"
    assert_catalogue_covers(scientific)
    # ASINs for items, reviewer ids for users.
    assert scientific.items.index.str.fullmatch(r"[0-9A-Z]{10}").all()
    assert set(scientific.interactions[USER]) <= set(scientific.meta["user_index"].index)
    item = scientific.items.loc["B0000223UV"]
    assert item["title"] == ("Gorilla Original Gorilla Glue, Waterproof Polyurethane Glue, 8 ounce Bottle, "
                             "Brown")
    assert item["category"] == "Industrial & Scientific Tapes, Adhesives & Sealants Urethane Adhesives"
    assert item["brand"] == "Gorilla"
    # Interactions = every train event (train rows are prefix expansions: one row per event after
    # the first) + each user's first event + the validation target.
    train_rows = sum(1 for _ in open(require_data("amazon-scientific", "Scientific.train.inter"))) - 1
    assert len(scientific.interactions) == train_rows + 2 * 8442


def test_scientific_predefined_and_leave_one_out_agree(scientific):
    fixed = predefined_split(scientific).eval_set("test")
    loo = leave_one_out_split(scientific, min_events=2).eval_set("test")
    assert len(fixed) == len(loo) == 8442
    by_user = {u: (h, t) for u, h, t in zip(loo.users, loo.histories, loo.targets, strict=True)}
    for user, history, target in zip(fixed.users, fixed.histories, fixed.targets, strict=True):
        assert by_user[user] == (history, target)


def test_scientific_index_ids_match_the_files(scientific, require_data):
    folder = require_data("amazon-scientific")
    indexed = load_amazon_scientific(folder, ids="index")
    raw = pd.read_csv(folder / "Scientific.valid.inter", sep="\t", dtype=str)
    seqs = indexed.eval_sequences.set_index(USER)
    asin_of = {str(v): k for k, v in scientific.meta["item_index"].items()}
    for _, row in raw.sample(200, random_state=0).iterrows():
        history, target = seqs.loc[row["user_id:token"], "history"], seqs.loc[row["user_id:token"], "target"]
        file_history = row["item_id_list:token_seq"].split()
        assert target == row["item_id:token"]
        assert history[-len(file_history):] == file_history  # the file keeps at most the last 50
        assert indexed.items.loc[target, "asin"] == asin_of[target]
    # The same events in both id spaces.
    user_of = {str(v): k for k, v in scientific.meta["user_index"].items()}
    mapped = indexed.interactions.assign(**{USER: indexed.interactions[USER].map(user_of),
                                            ITEM: indexed.interactions[ITEM].map(asin_of)})
    pd.testing.assert_frame_equal(mapped.sort_values([USER, TIME]).reset_index(drop=True),
                                  scientific.interactions.sort_values([USER, TIME]).reset_index(drop=True))


def test_scientific_truncated_file_histories_are_completed_from_train(scientific, require_data):
    raw = pd.read_csv(require_data("amazon-scientific", "Scientific.valid.inter"), sep="\t", dtype=str)
    longest = raw["item_id_list:token_seq"].str.split().str.len().max()
    seqs = scientific.eval_sequences
    assert scientific.meta["histories_truncated_in_file"] == int((seqs["history"].str.len() > longest).sum())
    assert scientific.meta["histories_truncated_in_file"] > 0


# --- MIND ---------------------------------------------------------------------------------------------
def test_mind_impressions_clicks_and_catalogue(mind, require_data):
    folder = require_data("mind-small-sample", "MINDsmall_train")
    with open(folder / "behaviors.tsv", encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle]
    assert len(rows) == 5000
    impressions = mind.meta["impressions"]
    assert len(impressions) == sum(len(r[4].split()) for r in rows)
    assert impressions[LABEL].sum() == sum(tok.endswith("-1") for r in rows for tok in r[4].split())
    for row in (rows[0], rows[-1]):
        shown = impressions[impressions["impression_id"] == row[0]]
        tokens = row[4].split()
        assert shown["position"].tolist() == list(range(len(tokens)))
        assert [f"{i}-{lab}" for i, lab in zip(shown[ITEM], shown[LABEL], strict=True)] == tokens
    assert mind.domain == "news" and set(mind.interactions[LABEL].unique()) <= {0, 1}
    assert_catalogue_covers(mind)
    news_ids = {line.split("\t", 1)[0] for line in open(folder / "news.tsv", encoding="utf-8")}
    assert mind.items["title"].notna().sum() == len(news_ids) == 2000
    assert mind.meta["items_without_text"] == mind.n_items - len(news_ids)
    # A user's clicks come before their first impression, in the file's order.
    user, history = rows[0][1], rows[0][3].split()
    events = mind.interactions[mind.interactions[USER] == user]
    first_shown = impressions.loc[impressions[USER] == user, TIME].min()
    clicks = events[events[TIME] < first_shown]
    assert clicks[ITEM].tolist() == history
    assert pd.Timestamp(first_shown, unit="s") == pd.Timestamp("2019-11-12 14:14:46")


# --- job views, goodbooks, TALLRec ---------------------------------------------------------------------
def test_job_views_counts_and_user_text(require_data):
    folder = require_data("job-views")
    data = load_job_views(folder)
    assert len(data.interactions) == 12_370
    assert data.n_users == 3448
    assert data.n_items == 7047
    assert_catalogue_covers(data)
    assert (data.items == "NA").sum().sum() == 0  # R's NA literal became missing
    years = pd.to_datetime(data.interactions[TIME], unit="s").dt.year
    assert set(years.unique()) <= {2014, 2015}
    with open(folder / "Positions_Of_Interest.csv", encoding="utf-8") as handle:
        wanted = {r["Applicant.ID"] for r in csv.DictReader(handle)} & set(data.interactions[USER])
    assert set(data.users.index[data.users["positions_of_interest"].notna()]) == wanted
    assert "security officer" in data.users.loc["10003", "positions_of_interest"]


def test_goodbooks_catalogue(require_data):
    items = load_goodbooks_items(require_data("goodbooks-10k", "books.csv"))
    assert len(items) == 10_000 and items.index.is_unique
    assert items.loc["1", "title"] == "The Hunger Games (The Hunger Games, #1)"
    assert items.loc["2", "authors"] == "J.K. Rowling, Mary GrandPré"
    assert items.loc["1", "year"] == 2008


@pytest.mark.parametrize(("domain", "count"), [("movie", 1000), ("book", 2427)])
def test_tallrec_examples(require_data, domain, count):
    path = require_data("tallrec", domain, "valid.json")
    examples = read_tallrec_json(path)
    assert len(examples) == count
    raw = json.loads(path.read_text())
    assert [e.label for e in examples] == [int(r["output"] == "Yes.") for r in raw]
    assert all(e.input.startswith("User Preference:") for e in examples)


# --- registry, paths, CLI -----------------------------------------------------------------------------
def test_registry_loads_every_dataset_by_name(data_dir):
    assert list_datasets() == list(DATASETS)
    for name in ("ml-100k", "mind", "job-views"):
        dataset = load_dataset(name, data_dir, download=False)
        assert dataset.name == name and len(dataset.interactions) > 0


def test_mind_accepts_a_users_full_minds_folder(tmp_path, require_data):
    source = require_data("mind-small-sample", "MINDsmall_train")
    target = tmp_path / "MINDsmall_train"
    target.mkdir()
    for name in ("behaviors.tsv", "news.tsv"):
        (target / name).write_bytes((source / name).read_bytes())
    assert len(load_dataset("mind", tmp_path, download=False).meta["impressions"]) > 0


def test_missing_files_say_what_to_put_where(tmp_path):
    (tmp_path / "amazon-scientific").mkdir()
    (tmp_path / "amazon-scientific" / "Scientific.text").write_text("item_id:token\ttext:token_seq\n")
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("amazon-scientific", tmp_path, download=False)
    message = str(err.value)
    for name in ("Scientific.valid.inter", "Scientific.item2index", "Scientific.user2index"):
        assert name in message
    assert str(tmp_path / "amazon-scientific") in message and "UniSRec" in message
    with pytest.raises(DatasetNotFoundError, match=r"ml-100k\.zip"):
        load_dataset("ml-100k", tmp_path, download=False)
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("ml-1m", tmp_path)


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv(DATA_DIR_ENV)
    assert resolve_data_dir().parts[-3:] == (".cache", "llmrec", "data")


def test_cli_info_and_split(data_dir, ml100k, tmp_path, capsys):
    assert cli_main(["data", "info", "--dataset", "ml-100k", "--data-dir", str(data_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["interactions"] == 100_000 and summary["users"] == 943
    out = tmp_path / "split"
    assert cli_main(["data", "split", "--dataset", "ml-100k", "--data-dir", str(data_dir),
                     "--split", "temporal", "--test-ratio", "0.2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    parts = {p: pd.read_csv(out / f"{p}.csv", dtype={USER: str, ITEM: str})
             for p in ("train", "valid", "test")}
    assert sum(len(p) for p in parts.values()) == 100_000
    assert parts["train"][TIME].max() < parts["test"][TIME].min()
    expected = temporal_split(ml100k, test_ratio=0.2).summary()
    want = {"dataset": "ml-100k", **expected, "options": {"test_ratio": 0.2}}
    # The table is "key  value" per line (the column width follows the longest key), then "wrote ...".
    *table, wrote = printed.splitlines()
    assert wrote.startswith("wrote ") and str(out / "train.csv") in wrote
    rows = dict(line.split(None, 1) for line in table)
    assert list(rows) == list(want)  # every summary key, in order, and nothing else
    assert rows == {k: ", ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in want.items()}
    assert rows["test_events_on_cold_items"] == str(expected["test_events_on_cold_items"])
    assert json.loads((out / "summary.json").read_text()) == want
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "test.csv", "train.csv", "valid.csv"]


def test_cli_reports_missing_data(tmp_path, capsys):
    assert cli_main(["data", "info", "--dataset", "job-views", "--data-dir", str(tmp_path)]) == 1
    assert "Job_Views.csv" in capsys.readouterr().err



# --- hardening: u.item encodings, catalogue items without interactions, partial folders ---------------
U_ITEM_TITLES = ["Misérables, Les (1995)", "Café au lait (1993)", "Toy Story (1995)"]


def write_tiny_ml100k(folder, encoding: str, titles=U_ITEM_TITLES) -> None:
    """A three-movie ML-100K folder (two genres) with u.item written in ``encoding``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.genre").write_text("Drama|0\nComedy|1\n\n")
    items = [f"{n + 1}|{t}|01-Jan-1995||http://imdb/{n + 1}|{n % 2}|{(n + 1) % 2}" for n, t in enumerate(titles)]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode(encoding))
    (folder / "u.data").write_text("1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t3\t4\t881250951\n")
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8", "utf-8-sig"])
def test_u_item_titles_decode_right_in_latin1_and_utf8(tmp_path, encoding, caplog):
    write_tiny_ml100k(tmp_path / "ml-100k", encoding)
    with caplog.at_level("WARNING", logger="llmrec.data.loaders.movielens_100k"):
        dataset = load_ml_100k(tmp_path / "ml-100k")
    assert dataset.items["title"].tolist() == U_ITEM_TITLES
    assert list(dataset.items.index) == ["1", "2", "3"]  # no byte-order mark stuck to the first id
    utf8 = encoding != "latin-1"
    assert dataset.meta["u.item_encoding"] == ("utf-8" if utf8 else "latin-1")
    assert ("is UTF-8, not latin-1" in caplog.text) == utf8


def test_u_item_mixing_utf8_and_latin1_is_an_error_naming_the_line(tmp_path):
    from llmrec.errors import DataFormatError

    folder = tmp_path / "ml-100k"
    write_tiny_ml100k(folder, "latin-1")
    lines = (folder / "u.item").read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"Toy Story", "Toy Störy".encode())  # UTF-8 bytes, latin-1 file
    (folder / "u.item").write_bytes(b"\n".join(lines))
    with pytest.raises(DataFormatError, match=r"u\.item, line 3: expected one encoding for the whole file"):
        load_ml_100k(folder)


def test_catalogue_sizes_report_items_no_interaction_names(scientific, games):
    assert scientific.meta["items_without_interactions"] == 1
    assert games.meta["items_without_interactions"] == 3
    assert len(scientific.items) == 4385  # still in the catalogue: full ranking scores them


def test_an_incomplete_local_folder_is_an_error_never_a_download(tmp_path, monkeypatch):
    import llmrec.data.download as download

    def no_network(*args, **kwargs):
        raise AssertionError("load_dataset tried to download into an existing folder")

    monkeypatch.setattr(download, "download_movielens", no_network)
    write_tiny_ml100k(tmp_path / "ml-100k", "latin-1")
    (tmp_path / "ml-100k" / "u.user").unlink()
    for allowed in (True, False):
        with pytest.raises(DatasetNotFoundError) as err:
            load_dataset("ml-100k", tmp_path, download=allowed)
        message = str(err.value)
        assert f"{tmp_path / 'ml-100k'} exists but lacks u.user" in message
        assert "nothing was downloaded" in message
    # An empty folder is incomplete too: every file is named.
    (tmp_path / "ml-latest-small").mkdir()
    with pytest.raises(DatasetNotFoundError, match="lacks ratings.csv, movies.csv"):
        load_dataset("ml-latest-small", tmp_path)


def test_on_unknown_items_reaches_the_loader_or_is_ignored_with_a_warning(tmp_path, require_data, caplog):
    write_tiny_ml100k(tmp_path / "ml-100k", "latin-1")
    with open(tmp_path / "ml-100k" / "u.data", "a") as handle:
        handle.write("2\t77\t4\t881250952\n")
    with pytest.raises(ValueError, match="--on-unknown-items drop"):
        load_dataset("ml-100k", tmp_path, download=False)
    assert load_dataset("ml-100k", tmp_path, download=False, on_unknown_items="drop").meta[
        "dropped_unknown_items"] == 1
    with pytest.raises(ValueError, match="on_unknown_items must be 'error' or 'drop'"):
        load_dataset("ml-100k", tmp_path, download=False, on_unknown_items="ignore")
    source = require_data("job-views")
    with caplog.at_level("WARNING", logger="llmrec.data.registry"):
        assert load_dataset("job-views", source.parent, download=False, on_unknown_items="drop").name == "job-views"
    assert "has no unknown-item check" in caplog.text
