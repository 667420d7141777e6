"""Item-to-text on real rows of every data set: the right fields, in order, missing ones skipped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data.loaders import (
    load_amazon_games,
    load_amazon_scientific,
    load_goodbooks_items,
    load_job_views,
    load_mind,
    load_ml_100k,
    load_ml_latest_small,
    split_amazon_text,
)
from llmrec.data.text import available_templates, item_text, learn_item_text

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def ml100k(require_data):
    return load_ml_100k(require_data("ml-100k"))


@pytest.fixture(scope="module")
def scientific(require_data):
    return load_amazon_scientific(require_data("amazon-scientific"))


def assert_clean(texts: pd.Series, items: pd.DataFrame) -> None:
    """No rendered missing value, no whitespace runs, no ".." the source fields do not have."""
    assert texts.index.equals(items.index)
    assert not texts.str.contains(r"(?:^|: )(?:nan|None|<NA>)(?:$|[.,])", regex=True).any()
    assert not texts.str.contains(r"\s{2,}|^\s|\s$", regex=True).any()
    source_has = items.astype(str).apply(lambda col: col.str.contains("..", regex=False)).any(axis=1)
    assert not texts[~source_has].str.contains(r"(?<!\.)\.\.(?!\.)", regex=True).any()


def test_templates_exist_for_every_registered_dataset():
    assert {"default", "learn", "ml-100k", "ml-latest-small", "amazon-games", "amazon-scientific", "mind",
            "job-views", "goodbooks"} <= set(available_templates())


def test_ml100k_title_and_genres(ml100k):
    texts = item_text(ml100k)
    assert_clean(texts, ml100k.items)
    assert texts["1"] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert texts["543"].startswith("Misérables, Les (1995). Genres: ")
    # Only the title when genres are missing (NaN) or excluded.
    items = ml100k.items.copy()
    items.loc["1", "genres"] = np.nan
    assert item_text(items, template="ml-100k")["1"] == "Toy Story (1995)"
    assert item_text(ml100k, fields=["title"])["2"] == "GoldenEye (1995)"


def test_template_forms_and_errors(ml100k, tmp_path):
    inline = item_text(ml100k, template="A {{ domain }}: {{ title }}")
    assert inline["1"] == "A movie: Toy Story (1995)"
    path = tmp_path / "mine.j2"
    path.write_text("{{ title }} ({{ item_id }})\n")
    assert item_text(ml100k, template=path)["3"] == "Four Rooms (1995) (3)"
    with pytest.raises(ValueError, match="unknown item-text template"):
        item_text(ml100k, template="no-such-template")
    with pytest.raises(ValueError, match="not item columns"):
        item_text(ml100k, fields=["price"])
    with pytest.raises(TypeError):
        item_text(["Toy Story"])


def test_ml_latest_tags(require_data):
    data = load_ml_latest_small(require_data("ml-latest-small"))
    texts = item_text(data)
    assert_clean(texts, data.items)
    assert texts["1"] == ("Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy. "
                          "Tags: Pixar")
    no_genre = data.items.index[data.items["genres"].isna()][0]
    assert "Genres" not in texts[no_genre]


def test_scientific_title_category_brand(scientific):
    texts = item_text(scientific)
    assert_clean(texts, scientific.items)
    assert texts["B0000223UV"] == (
        "Gorilla Original Gorilla Glue, Waterproof Polyurethane Glue, 8 ounce Bottle, Brown. Category: "
        "Industrial & Scientific Tapes, Adhesives & Sealants Urethane Adhesives. Brand: Gorilla")
    learn = learn_item_text(scientific)
    assert learn["B0000223UV"] == (
        "title: Gorilla Original Gorilla Glue, Waterproof Polyurethane Glue, 8 ounce Bottle, Brown, "
        "category: Industrial & Scientific Tapes, Adhesives & Sealants Urethane Adhesives, brand: Gorilla")


def test_scientific_text_split_round_trips(require_data):
    """title + category + brand put back together give the source text for every real row,
    including brands with periods ("Mr. Heater") and rows without a category."""
    raw = pd.read_csv(require_data("amazon-scientific", "Scientific.text"), sep="\t", dtype=str,
                      keep_default_na=False, quoting=3)
    parts = split_amazon_text(raw["text:token_seq"]).fillna("")
    rebuilt = parts["title"] + ". " + parts["category"] + ". " + parts["brand"] + "."
    # Equal up to whitespace (fields are stripped: "5-1/2 Inch\xa0. Industrial ...").
    assert (rebuilt.str.replace(r"\s", "", regex=True)
            == raw["text:token_seq"].str.replace(r"\s", "", regex=True)).all()
    mr = raw["text:token_seq"].str.contains(". Mr. Heater. ", regex=False)
    assert (parts.loc[mr, "brand"] == "Mr. Heater").all() and mr.any()
    assert (parts["category"] == "").sum() > 0


def test_learn_form_on_amazon_shaped_items(scientific):
    """Price, keywords (a list) and attributes appear in LEARN's order; missing ones are skipped."""
    items = scientific.items.head(3).copy()
    items["price"] = [12.99, np.nan, 5.0]
    items["keywords"] = [["glue", "adhesive"], [], None]
    items["attributes"] = ["waterproof", "", np.nan]
    texts = learn_item_text(items)
    first = texts.iloc[0]
    order = [first.index(f"{k}: ") for k in ("title", "category", "brand", "price", "keywords", "attributes")]
    assert order == sorted(order)
    assert "price: 12.99, keywords: glue, adhesive, attributes: waterproof" in first
    assert not any(f"{k}:" in texts.iloc[1] for k in ("price", "keywords", "attributes"))
    assert texts.iloc[2].endswith(", price: 5")
    generic = item_text(items)  # a bare DataFrame uses the generic template
    assert "Price: 12.99. Keywords: glue, adhesive. Attributes: waterproof" in generic.iloc[0]


def test_games_titles(require_data):
    games = load_amazon_games(require_data("amazon-games"))
    texts = item_text(games)
    assert texts["0"] == "Fire Emblem: The Sacred Stones"
    assert (texts == games.items["title"].str.split().str.join(" ")).all()


def test_mind_news_with_and_without_text(require_data):
    mind = load_mind(require_data("mind-small-sample", "MINDsmall_train"))
    texts = item_text(mind)
    assert_clean(texts[texts != ""], mind.items[texts != ""])
    assert texts["N34700"].startswith(
        "New Florida Majority celebrates grand opening of Fort Lauderdale office | PHOTOS. "
        "Category: news / newspolitics. As music blasted")
    assert texts["N34700"].endswith("elected officials, ...")  # the source's ellipsis survives
    assert (texts == "").sum() == mind.meta["items_without_text"]


def test_job_views_position_company_place(require_data):
    jobs = load_job_views(require_data("job-views"))
    texts = item_text(jobs)
    assert_clean(texts, jobs.items)
    assert texts["73666"] == "Cashiers & Valets Needed! at WallyPark, Newark, New Jersey"
    with_industry = jobs.items.index[jobs.items["industry"].notna()][0]
    assert texts[with_industry].endswith(f"Industry: {jobs.items.loc[with_industry, 'industry']}")


def test_goodbooks_authors_and_year(require_data):
    books = load_goodbooks_items(require_data("goodbooks-10k"))
    texts = item_text(books, template="goodbooks")
    assert texts["1"] == "The Hunger Games (The Hunger Games, #1) by Suzanne Collins (2008)"
    no_year = books.index[books["year"].isna()][0]
    assert not texts[no_year].endswith(")") or "(" in books.loc[no_year, "title"]
    assert item_text(books)["2"].endswith("Authors: J.K. Rowling, Mary GrandPré")
