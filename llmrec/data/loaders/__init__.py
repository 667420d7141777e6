"""Loaders for real data formats, one module per source format; each returns a ``Dataset``.

Every loader takes the data set's folder and fails with ``DataFormatError`` naming the file,
the 1-based line and the field when a file does not have the expected shape.
"""

from llmrec.data.loaders.goodbooks import load_goodbooks_items
from llmrec.data.loaders.job_views import load_job_views
from llmrec.data.loaders.mind import load_mind
from llmrec.data.loaders.movielens_100k import load_ml_100k
from llmrec.data.loaders.movielens_latest import load_ml_latest_small
from llmrec.data.loaders.recbole import load_amazon_games, load_amazon_scientific, split_amazon_text
from llmrec.data.loaders.tallrec import TallRecExample, parse_answer, read_tallrec_json

__all__ = [
    "load_ml_100k",
    "load_ml_latest_small",
    "load_amazon_games",
    "load_amazon_scientific",
    "split_amazon_text",
    "load_mind",
    "load_job_views",
    "load_goodbooks_items",
    "read_tallrec_json",
    "TallRecExample",
    "parse_answer",
]
