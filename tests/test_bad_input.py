"""Bad files fail with DataFormatError naming the file, the 1-based line, the field and what was
expected. Every bad file is a real file (or its first rows) with one thing broken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmrec.data.loaders import (
    load_amazon_games,
    load_amazon_scientific,
    load_job_views,
    load_mind,
    load_ml_100k,
    load_ml_latest_small,
    read_tallrec_json,
)
from llmrec.errors import DataFormatError

pytestmark = pytest.mark.realdata


def lines_of(path: Path, n: int | None = None, encoding: str = "utf-8") -> list[str]:
    lines = path.read_text(encoding=encoding).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines[:n] if n else lines


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


def replace_field(line: str, sep: str, index: int, value: str) -> str:
    fields = line.split(sep)
    fields[index] = value
    return sep.join(fields)


def assert_points_at(err: pytest.ExceptionInfo, file: str, line: int | None, field: str | None = None,
                     ) -> None:
    error = err.value
    assert Path(error.source).name == file, str(error)
    assert error.line == line, str(error)
    if field is not None:
        assert error.field == field, str(error)
    message = str(error)
    assert file in message and "expected" in message
    if line is not None:
        assert f"line {line}" in message


# --- MovieLens 100K -----------------------------------------------------------------------------------
@pytest.fixture
def ml100k(tmp_path, require_data):
    """A MovieLens 100K folder whose u.data holds the first 50 real ratings."""
    source = require_data("ml-100k")
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ("u.item", "u.genre", "u.user"):
        shutil.copy(source / name, folder / name)
    rows = lines_of(source / "u.data", 50, encoding="latin-1")
    write_lines(folder / "u.data", rows)
    return folder, rows


def test_u_data_row_with_a_missing_field(ml100k):
    folder, rows = ml100k
    rows[2] = rows[2].rsplit("\t", 1)[0]
    write_lines(folder / "u.data", rows)
    with pytest.raises(DataFormatError, match="4 tab-separated fields") as err:
        load_ml_100k(folder)
    assert_points_at(err, "u.data", 3)
    assert err.value.got == rows[2]


def test_u_data_with_commas_instead_of_tabs(ml100k):
    folder, rows = ml100k
    write_lines(folder / "u.data", [r.replace("\t", ",") for r in rows])
    with pytest.raises(DataFormatError, match="looks comma-separated") as err:
        load_ml_100k(folder)
    assert_points_at(err, "u.data", 1)


@pytest.mark.parametrize(("field", "index", "value", "expected"), [
    ("rating", 2, "x", "a rating"), ("timestamp", 3, "88125O949", "a unix time"),
    ("timestamp", 3, "881250949.5", "a unix time"), ("user_id", 0, "", "an integer user id"),
])
def test_u_data_non_numeric_values(ml100k, field, index, value, expected):
    folder, rows = ml100k
    rows[4] = replace_field(rows[4], "\t", index, value)
    write_lines(folder / "u.data", rows)
    with pytest.raises(DataFormatError, match=expected) as err:
        load_ml_100k(folder)
    assert_points_at(err, "u.data", 5, field)
    assert err.value.got == value


def test_u_data_unknown_movie_errors_or_is_dropped_and_counted(ml100k):
    folder, rows = ml100k
    rows[6] = replace_field(rows[6], "\t", 1, "99999")
    rows[9] = replace_field(rows[9], "\t", 1, "99998")
    write_lines(folder / "u.data", rows)
    with pytest.raises(DataFormatError, match=r"listed in u\.item \(2 rows name 2 unknown ids") as err:
        load_ml_100k(folder)
    assert_points_at(err, "u.data", 7, "item_id")
    dataset = load_ml_100k(folder, on_unknown_items="drop")
    assert len(dataset.interactions) == 48 and dataset.meta["dropped_unknown_items"] == 2
    with pytest.raises(ValueError, match="on_unknown_items"):
        load_ml_100k(folder, on_unknown_items="ignore")


def test_u_data_empty_file(ml100k):
    folder, _ = ml100k
    (folder / "u.data").write_text("")
    with pytest.raises(DataFormatError, match="empty file") as err:
        load_ml_100k(folder)
    assert_points_at(err, "u.data", 1)


def test_u_item_bad_genre_flag_and_duplicate_id(ml100k):
    folder, _ = ml100k
    items = lines_of(folder / "u.item", encoding="latin-1")
    broken = list(items)
    broken[9] = replace_field(broken[9], "|", 5, "2")  # the first genre flag ("unknown")
    write_lines(folder / "u.item", broken, encoding="latin-1")
    with pytest.raises(DataFormatError, match="one of '0', '1'") as err:
        load_ml_100k(folder)
    assert_points_at(err, "u.item", 10, "genre:unknown")
    duplicated = [*items[:20], items[3], *items[20:]]
    write_lines(folder / "u.item", duplicated, encoding="latin-1")
    with pytest.raises(DataFormatError, match="already on line 4") as err:
        load_ml_100k(folder)
    assert_points_at(err, "u.item", 21, "movie_id")


# --- MovieLens latest (CSV with a header) -------------------------------------------------------------
@pytest.fixture
def ml_latest(tmp_path, require_data):
    source = require_data("ml-latest-small")
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    shutil.copy(source / "movies.csv", folder / "movies.csv")
    rows = lines_of(source / "ratings.csv", 41)
    write_lines(folder / "ratings.csv", rows)
    return folder, rows


def test_ratings_csv_missing_column(ml_latest):
    folder, rows = ml_latest
    write_lines(folder / "ratings.csv", [",".join(r.split(",")[:2] + r.split(",")[3:]) for r in rows])
    with pytest.raises(DataFormatError, match="userId, movieId, rating, timestamp") as err:
        load_ml_latest_small(folder)
    assert_points_at(err, "ratings.csv", 1, "rating")


def test_ratings_csv_invalid_utf8(ml_latest):
    folder, rows = ml_latest
    data = ("\n".join(rows) + "\n").encode()
    cut = data.index(rows[3].encode())
    (folder / "ratings.csv").write_bytes(data[:cut] + b"\xff" + data[cut:])
    with pytest.raises(DataFormatError, match="UTF-8 text") as err:
        load_ml_latest_small(folder)
    assert_points_at(err, "ratings.csv", 4)


def test_ratings_csv_extra_field_and_bad_timestamp(ml_latest):
    folder, rows = ml_latest
    extra = list(rows)
    extra[4] += ",5"
    write_lines(folder / "ratings.csv", extra)
    with pytest.raises(DataFormatError, match="4 comma-separated fields .*found 5") as err:
        load_ml_latest_small(folder)
    assert_points_at(err, "ratings.csv", 5)
    late = list(rows)
    late[10] = replace_field(late[10], ",", 3, "yesterday")
    write_lines(folder / "ratings.csv", late)
    with pytest.raises(DataFormatError, match="unix time") as err:
        load_ml_latest_small(folder)
    assert_points_at(err, "ratings.csv", 11, "timestamp")


def test_movies_csv_lines_count_quoted_newlines(ml_latest):
    """A quoted title spanning two lines shifts every later row by one physical line."""
    folder, _ = ml_latest
    movies = lines_of(folder / "movies.csv", 30)
    assert "Grumpier Old Men (1995)" in movies[3]
    movies[3] = movies[3].replace("Grumpier Old Men (1995)", '"Grumpier Old\nMen (1995)"')
    movies[19] = replace_field(movies[19], ",", 0, "abc")
    write_lines(folder / "movies.csv", movies)
    with pytest.raises(DataFormatError, match="an integer movie id") as err:
        load_ml_latest_small(folder)
    assert_points_at(err, "movies.csv", 21, "movieId")  # written as line 20, one newline earlier


def test_empty_csv(ml_latest):
    folder, _ = ml_latest
    (folder / "ratings.csv").write_text("")
    with pytest.raises(DataFormatError, match="header line naming userId") as err:
        load_ml_latest_small(folder)
    assert_points_at(err, "ratings.csv", 1)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(DataFormatError, match="at least one data row") as err:
        load_ml_latest_small(folder)
    assert_points_at(err, "ratings.csv", 2)


# --- RecBole .inter files -----------------------------------------------------------------------------
@pytest.fixture
def games(tmp_path, require_data):
    source = require_data("amazon-games")
    folder = tmp_path / "amazon-games"
    folder.mkdir()
    shutil.copy(source / "Games.item", folder / "Games.item")
    rows = lines_of(source / "Games-6k.valid.inter", 31)
    write_lines(folder / "Games-6k.valid.inter", rows)
    return folder, rows


def test_inter_empty_history(games):
    folder, rows = games
    rows[2] = replace_field(rows[2], "\t", 1, "")
    write_lines(folder / "Games-6k.valid.inter", rows)
    with pytest.raises(DataFormatError, match="non-empty space-separated item history") as err:
        load_amazon_games(folder)
    assert_points_at(err, "Games-6k.valid.inter", 3, "item_id_list")


def test_inter_header_is_read_by_name(games):
    folder, rows = games
    # Columns in another order still load (names, not positions)...
    swapped = ["\t".join([r.split("\t")[0], r.split("\t")[2], r.split("\t")[1]]) for r in rows]
    write_lines(folder / "Games-6k.valid.inter", swapped)
    assert len(load_amazon_games(folder).eval_sequences) == 30
    # ...and a missing column is named.
    write_lines(folder / "Games-6k.valid.inter", ["\t".join(r.split("\t")[::2]) for r in rows])
    with pytest.raises(DataFormatError, match="user_id, item_id_list, item_id") as err:
        load_amazon_games(folder)
    assert_points_at(err, "Games-6k.valid.inter", 1, "item_id_list")


def test_inter_unknown_items_in_history_and_target(games):
    folder, rows = games
    history = rows[3].split("\t")[1].split()
    rows[3] = replace_field(rows[3], "\t", 1, " ".join(["999999", *history[1:]]))
    rows[5] = replace_field(rows[5], "\t", 2, "999998")
    write_lines(folder / "Games-6k.valid.inter", rows)
    with pytest.raises(DataFormatError, match=r"listed in Games\.item \(2 events name 2 unknown ids") as err:
        load_amazon_games(folder)
    assert_points_at(err, "Games-6k.valid.inter", 4, "item_id_list")
    assert err.value.got == "999999"
    dataset = load_amazon_games(folder, on_unknown_items="drop")
    assert dataset.meta["dropped_unknown_items"] == 2
    assert len(dataset.eval_sequences) == 29  # the row whose target is unknown has no case


def test_inter_target_must_be_one_item_and_users_unique(games):
    folder, rows = games
    bad = list(rows)
    bad[7] = replace_field(bad[7], "\t", 2, "13 14")
    write_lines(folder / "Games-6k.valid.inter", bad)
    with pytest.raises(DataFormatError, match="one item id") as err:
        load_amazon_games(folder)
    assert_points_at(err, "Games-6k.valid.inter", 8, "item_id")
    write_lines(folder / "Games-6k.valid.inter", [*rows, rows[2]])
    with pytest.raises(DataFormatError, match="one row per user") as err:
        load_amazon_games(folder)
    assert_points_at(err, "Games-6k.valid.inter", 32, "user_id")


def test_inter_empty_file(games):
    folder, _ = games
    (folder / "Games-6k.valid.inter").write_text("")
    with pytest.raises(DataFormatError, match="empty file") as err:
        load_amazon_games(folder)
    assert_points_at(err, "Games-6k.valid.inter", 1)


@pytest.fixture
def scientific(tmp_path, require_data):
    folder = tmp_path / "amazon-scientific"
    shutil.copytree(require_data("amazon-scientific"), folder)
    return folder


def test_scientific_index_missing_from_item2index(scientific):
    rows = lines_of(scientific / "Scientific.valid.inter")
    rows[3] = replace_field(rows[3], "\t", 2, "99999")
    write_lines(scientific / "Scientific.valid.inter", rows)
    with pytest.raises(DataFormatError, match="item2index") as err:
        load_amazon_scientific(scientific)
    assert_points_at(err, "Scientific.valid.inter", 4, "item_id")


def test_scientific_train_rows_must_match_valid(scientific):
    rows = lines_of(scientific / "Scientific.train.inter")
    # Line 3 is user 0's prefix "0 .. 9" -> 10; make its history disagree with the other rows.
    assert rows[2] == "0\t0 1 2 3 4 5 6 7 8 9\t10"
    rows[2] = replace_field(rows[2], "\t", 1, "0 1 2 3 4 5 6 7 8 77")
    write_lines(scientific / "Scientific.train.inter", rows)
    with pytest.raises(DataFormatError, match="prefixes of one sequence") as err:
        load_amazon_scientific(scientific)
    assert_points_at(err, "Scientific.train.inter", 3, "item_id_list")


def test_scientific_valid_history_must_end_the_train_sequence(scientific):
    rows = lines_of(scientific / "Scientific.valid.inter")
    history = rows[1].split("\t")[1].split()
    rows[1] = replace_field(rows[1], "\t", 1, " ".join(history[:-1]))  # user 0: drop its last item
    write_lines(scientific / "Scientific.valid.inter", rows)
    with pytest.raises(DataFormatError, match="training sequence") as err:
        load_amazon_scientific(scientific)
    assert_points_at(err, "Scientific.valid.inter", 2, "item_id_list")


def test_scientific_duplicate_index(scientific):
    rows = lines_of(scientific / "Scientific.item2index")
    rows[5] = replace_field(rows[5], "\t", 1, rows[2].split("\t")[1])
    write_lines(scientific / "Scientific.item2index", rows)
    with pytest.raises(DataFormatError, match="already on line 3") as err:
        load_amazon_scientific(scientific)
    assert_points_at(err, "Scientific.item2index", 6, "index")


# --- MIND ---------------------------------------------------------------------------------------------
@pytest.fixture
def mind(tmp_path, require_data):
    source = require_data("mind-small-sample", "MINDsmall_train")
    folder = tmp_path / "MINDsmall_train"
    folder.mkdir()
    shutil.copy(source / "news.tsv", folder / "news.tsv")
    rows = lines_of(source / "behaviors.tsv", 40)
    write_lines(folder / "behaviors.tsv", rows)
    return folder, rows


def test_mind_bad_time(mind):
    folder, rows = mind
    rows[1] = replace_field(rows[1], "\t", 2, "2019-11-13 05:53:12")
    write_lines(folder / "behaviors.tsv", rows)
    with pytest.raises(DataFormatError, match="11/12/2019 2:14:46 PM") as err:
        load_mind(folder)
    assert_points_at(err, "behaviors.tsv", 2, "time")


def test_mind_bad_impression_label(mind):
    folder, rows = mind
    shown = rows[6].split("\t")[4].split()
    shown[1] = shown[1][:-1] + "2"
    rows[6] = replace_field(rows[6], "\t", 4, " ".join(shown))
    write_lines(folder / "behaviors.tsv", rows)
    with pytest.raises(DataFormatError, match="NEWSID-0 or NEWSID-1") as err:
        load_mind(folder)
    assert_points_at(err, "behaviors.tsv", 7, "impressions")
    assert err.value.got == shown[1]


def test_mind_wrong_field_count_and_invalid_utf8(mind):
    folder, rows = mind
    bad = list(rows)
    bad[11] = "\t".join(bad[11].split("\t")[:4])
    write_lines(folder / "behaviors.tsv", bad)
    with pytest.raises(DataFormatError, match="5 tab-separated fields") as err:
        load_mind(folder)
    assert_points_at(err, "behaviors.tsv", 12)
    write_lines(folder / "behaviors.tsv", rows)
    news = (folder / "news.tsv").read_bytes().split(b"\n")
    news[8] = news[8].replace(b" ", b" \xe9\xff ", 1)
    (folder / "news.tsv").write_bytes(b"\n".join(news))
    with pytest.raises(DataFormatError, match="UTF-8") as err:
        load_mind(folder)
    assert_points_at(err, "news.tsv", 9)


# --- job views (R-style CSV) --------------------------------------------------------------------------
@pytest.fixture
def job_views(tmp_path, require_data):
    folder = tmp_path / "job-views"
    folder.mkdir()
    rows = lines_of(require_data("job-views", "Job_Views.csv"), 30)
    write_lines(folder / "Job_Views.csv", rows)
    return folder, rows


def test_job_views_missing_column_and_bad_time(job_views):
    folder, rows = job_views
    header = rows[0].split(",")
    drop = header.index('"View.Start"')
    write_lines(folder / "Job_Views.csv", [",".join(f for i, f in enumerate(r.split(",")) if i != drop)
                                           for r in rows[:1]] + rows[1:])
    with pytest.raises(DataFormatError, match="View.Start") as err:
        load_job_views(folder)
    assert_points_at(err, "Job_Views.csv", 1, "View.Start")

    broken = list(rows)
    broken[2] = broken[2].replace('"Macy\'s Seasonal', '"Macy\'s\nSeasonal', 1)  # a quoted newline
    broken[9] = broken[9].replace(" UTC", "", 1)
    write_lines(folder / "Job_Views.csv", broken)
    with pytest.raises(DataFormatError, match="2014-12-12 20:12:35 UTC") as err:
        load_job_views(folder)
    assert_points_at(err, "Job_Views.csv", 11, "View.Start")


# --- TALLRec JSON -------------------------------------------------------------------------------------
@pytest.fixture
def tallrec_entries(require_data):
    return json.loads(require_data("tallrec", "movie", "valid.json").read_text())[:5]


def test_tallrec_bad_answer_named_by_index(tmp_path, tallrec_entries):
    tallrec_entries[2]["output"] = "Probably."
    path = tmp_path / "valid.json"
    path.write_text(json.dumps(tallrec_entries))
    with pytest.raises(DataFormatError, match=r"field '\[2\]\.output': expected an answer") as err:
        read_tallrec_json(path)
    assert err.value.got == "Probably."


def test_tallrec_missing_field_and_accepted_spellings(tmp_path, tallrec_entries):
    path = tmp_path / "valid.json"
    del tallrec_entries[0]["input"]
    path.write_text(json.dumps(tallrec_entries))
    with pytest.raises(DataFormatError, match=r"\[0\]\.input") as err:
        read_tallrec_json(path)
    assert err.value.got == "nothing"
    tallrec_entries[0]["input"] = "User Preference: \nUser Unpreference: "
    tallrec_entries[1]["output"], tallrec_entries[3]["output"] = " yes", "NO"
    path.write_text(json.dumps(tallrec_entries))
    labels = [e.label for e in read_tallrec_json(path)]
    assert labels[1] == 1 and labels[3] == 0


def test_tallrec_invalid_json_and_empty_file(tmp_path, tallrec_entries):
    path = tmp_path / "valid.json"
    text = json.dumps(tallrec_entries, indent=4)
    broken = text.replace('"output": "No."', '"output": No.', 1)
    path.write_text(broken)
    with pytest.raises(DataFormatError, match="valid JSON") as err:
        read_tallrec_json(path)
    assert err.value.line == broken[: broken.index("No.\n")].count("\n") + 1
    path.write_text("")
    with pytest.raises(DataFormatError, match="valid JSON") as err:
        read_tallrec_json(path)
    assert err.value.line == 1
    path.write_text("{}")
    with pytest.raises(DataFormatError, match="non-empty JSON list"):
        read_tallrec_json(path)


# --- hardening: ranges, hints, orphan catalogue items, the CLI's data flags ---------------------------
@pytest.mark.parametrize("value", ["17", "0", "3.5", "-1"])
def test_u_data_rating_outside_whole_stars_1_to_5(ml100k, value):
    folder, rows = ml100k
    rows[11] = replace_field(rows[11], "\t", 2, value)
    write_lines(folder / "u.data", rows)
    with pytest.raises(DataFormatError, match=r"a rating from 1 to 5 \(whole stars\)") as err:
        load_ml_100k(folder)
    assert_points_at(err, "u.data", 12, "rating")
    assert err.value.got == value


@pytest.mark.parametrize("value", ["7", "0", "0.25", "5.5"])
def test_ratings_csv_rating_outside_half_stars(ml_latest, value):
    folder, rows = ml_latest
    rows[6] = replace_field(rows[6], ",", 2, value)
    write_lines(folder / "ratings.csv", rows)
    with pytest.raises(DataFormatError, match=r"a rating from 0\.5 to 5 \(half stars\)") as err:
        load_ml_latest_small(folder)
    assert_points_at(err, "ratings.csv", 7, "rating")


def test_unknown_item_hint_names_the_api_and_the_cli(ml100k, games):
    folder, rows = ml100k
    rows[6] = replace_field(rows[6], "\t", 1, "99999")
    write_lines(folder / "u.data", rows)
    games_folder, inter = games
    inter[5] = replace_field(inter[5], "\t", 2, "999998")
    write_lines(games_folder / "Games-6k.valid.inter", inter)
    for load, where in ((lambda: load_ml_100k(folder), "u.data"), (lambda: load_amazon_games(games_folder), "inter")):
        with pytest.raises(DataFormatError) as err:
            load()
        message = str(err.value)
        assert "on_unknown_items='drop'" in message and "--on-unknown-items drop" in message, where


def test_catalogue_items_no_interaction_names_are_counted(scientific, caplog):
    rows = lines_of(scientific / "Scientific.text")
    rows.append("B0NEWASIN1\tA brand new product. Industrial & Scientific. Acme.")
    write_lines(scientific / "Scientific.text", rows)
    with caplog.at_level("WARNING", logger="llmrec.data.loaders.recbole"):
        dataset = load_amazon_scientific(scientific)
    # The real files already hold one such ASIN; the added one makes two.
    assert dataset.meta["items_without_interactions"] == 2 and "B0NEWASIN1" in dataset.items.index
    assert "2 of the 4386 items in Scientific.text are named by no interaction" in caplog.text


def test_cli_data_and_embed_take_on_unknown_items_and_no_download(ml100k, tmp_path, capsys):
    from llmrec.cli import main

    folder, rows = ml100k
    rows[6] = replace_field(rows[6], "\t", 1, "99999")
    write_lines(folder / "u.data", rows)
    data_dir = str(folder.parent)
    assert main(["data", "info", "--dataset", "ml-100k", "--data-dir", data_dir, "--no-download"]) == 1
    assert "--on-unknown-items drop" in capsys.readouterr().err
    assert main(["data", "info", "--dataset", "ml-100k", "--data-dir", data_dir, "--no-download",
                 "--on-unknown-items", "drop", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["interactions"] == 49
    # embed --dataset passes the same flags to load_dataset (it fails on the data before any model).
    argv = ["embed", "--dataset", "ml-100k", "--data-dir", data_dir, "--out", str(tmp_path / "e"),
            "--model", str(tmp_path / "never" / "loaded"), "--no-download"]
    assert main(argv) == 1 and "--on-unknown-items drop" in capsys.readouterr().err
    assert main([*argv, "--on-unknown-items", "drop"]) == 1
    assert "never/loaded" in capsys.readouterr().err  # got past the data, to the (absent) model
    empty = tmp_path / "empty-data-dir"
    assert main(["embed", "--dataset", "ml-100k", "--data-dir", str(empty), "--no-download",
                 "--out", str(tmp_path / "e2")]) == 1
    assert "not found" in capsys.readouterr().err and not empty.exists()
