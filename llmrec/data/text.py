"""Item-to-text: one description per item, from whichever text fields the catalogue has.

Templates are jinja2 files under ``prompts/item_text/``: one per data set (``ml-100k.j2``,
``amazon-scientific.j2``, ...), ``default.j2`` for any other catalogue, and ``learn.j2`` for
LEARN's "title, category, brand, price, keywords and attributes" sentence. A template sees the
item's fields as variables; missing (NaN) and empty fields are left undefined, so ``{% if x %}``
and ``select`` skip them. Whitespace in the result is collapsed to single spaces.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM, Dataset

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "prompts" / "item_text"
DEFAULT_TEMPLATE = "default"
LEARN_TEMPLATE = "learn"

_SPACES = re.compile(r"\s+")
_DOUBLE_PERIOD = re.compile(r"(?<!\.)\.\.(?=\s|$)")  # "Co., Inc.. Brand" -> "Co., Inc. Brand"; keeps "..."


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # Plain text, not HTML: no autoescaping. Undefined (not Strict) so absent fields are falsy.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=False,
                              keep_trailing_newline=False)


def available_templates() -> list[str]:
    """Names of the item-text templates shipped under prompts/item_text/."""
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.j2") if not p.stem.startswith("_"))


def load_template(template: str | Path | None, dataset_name: str | None = None) -> jinja2.Template:
    """Resolve ``template``: None -> the data set's own template, else the default; a name in
    ``available_templates()``; a path to a .j2 file; or inline jinja2 source."""
    env = _environment()
    if template is None:
        own = dataset_name and (TEMPLATE_DIR / f"{dataset_name}.j2").is_file()
        return env.get_template(f"{dataset_name if own else DEFAULT_TEMPLATE}.j2")
    text = str(template)
    if (TEMPLATE_DIR / f"{text}.j2").is_file() and "/" not in text:
        return env.get_template(f"{text}.j2")
    if "{{" in text or "{%" in text:
        return env.from_string(text)
    path = Path(text).expanduser()
    if path.is_file():
        return env.from_string(path.read_text(encoding="utf-8"))
    raise ValueError(f"unknown item-text template {text!r}: give one of {', '.join(available_templates())}, "
                     "a path to a .j2 file, or jinja2 source")


def _items_of(dataset_or_items: Dataset | pd.DataFrame) -> tuple[pd.DataFrame, str | None, str | None]:
    if isinstance(dataset_or_items, Dataset):
        return dataset_or_items.items, dataset_or_items.name, dataset_or_items.domain
    if isinstance(dataset_or_items, pd.DataFrame):
        items = dataset_or_items.set_index(ITEM) if ITEM in dataset_or_items.columns else dataset_or_items
        return items, None, None
    raise TypeError(f"expected a Dataset or an items DataFrame, got {type(dataset_or_items).__name__}")


def _value(value: object) -> object:
    """A field as a template sees it: None when missing or empty; numbers without a spurious .0."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    if isinstance(value, int | np.integer):
        return str(value)
    if isinstance(value, str):
        value = _SPACES.sub(" ", value).strip()
        return value or None
    if isinstance(value, Iterable):  # e.g. a list of keywords
        parts = [str(v).strip() for v in value if _value(v) is not None]
        return ", ".join(parts) or None
    return str(value)


def _render(items: pd.DataFrame, template: jinja2.Template, fields: Sequence[str] | None,
            extra: dict) -> pd.Series:
    if fields is not None:
        unknown = [f for f in fields if f not in items.columns]
        if unknown:
            raise ValueError(f"fields {unknown} are not item columns; the items have {list(items.columns)}")
        items = items[list(fields)]
    columns = list(items.columns)
    texts = []
    for item_id, row in zip(items.index, items.itertuples(index=False, name=None), strict=True):
        context = {c: v for c, v in zip(columns, map(_value, row), strict=True) if v is not None}
        rendered = template.render(**extra, **context, item_id=item_id)
        texts.append(_DOUBLE_PERIOD.sub(".", _SPACES.sub(" ", rendered).strip()))
    return pd.Series(texts, index=items.index.copy(), name="text", dtype="str")


def item_text(
    dataset_or_items: Dataset | pd.DataFrame,
    template: str | Path | None = None,
    fields: Sequence[str] | None = None,
) -> pd.Series:
    """One description per item (Series indexed by item_id, empty string where nothing is known).

    ``template``: None picks ``prompts/item_text/<dataset name>.j2`` (or ``default.j2``); else a
    template name, a .j2 path or inline jinja2 source. ``fields`` restricts the item columns the
    template may use (e.g. ``["title"]`` for a title-only ablation). Templates also see
    ``domain`` (the data set's item noun) and ``item_id``.
    """
    items, name, domain = _items_of(dataset_or_items)
    return _render(items, load_template(template, name), fields, {"domain": domain or "item"})


def learn_item_text(
    dataset_or_items: Dataset | pd.DataFrame, fields: Sequence[str] | None = None
) -> pd.Series:
    """LEARN's item text: "title: ..., category: ..., brand: ..., price: ..., keywords: ...,
    attributes: ..." from whichever of these the catalogue has (genres stand in for category,
    tags for keywords)."""
    items, _, domain = _items_of(dataset_or_items)
    return _render(items, load_template(LEARN_TEMPLATE), fields, {"domain": domain or "item"})
