"""A fitted item index on disk (JSON): the scheme, whether it is leaky, its options and every item's
ID tokens, so a saved P5 model names items exactly as it was trained to."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from llmrec.p5.indexing import INDEXES, ItemIndex, _NumberedIndex
from llmrec.utils.io import write_json

FORMAT = "llmrec.p5.item_index/1"


def save_index(index: ItemIndex, path: str | Path) -> Path:
    key = next(k for k, cls in INDEXES.items() if isinstance(index, cls) and type(index) is cls)
    options = {f.name: getattr(index, f.name) for f in dataclasses.fields(index)  # type: ignore[arg-type]
               if isinstance(getattr(index, f.name), (int, float, str, bool))}
    tokens = {item: list(index.tokens(item)) for item in index.items()}
    return write_json(path, {"format": FORMAT, "scheme": key, "name": index.name, "leaky": index.leaky,
                             "options": options, "tokens": tokens})


def load_index(path: str | Path) -> ItemIndex:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable item-index file ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: expected an item-index file with format {FORMAT!r}")
    if data.get("scheme") not in INDEXES:
        raise ValueError(f"{path}: field 'scheme' must be one of {sorted(INDEXES)}, got {data.get('scheme')!r}")
    tokens = data.get("tokens")
    if not isinstance(tokens, dict) or not all(isinstance(v, list) and v and all(isinstance(t, str) for t in v)
                                               for v in tokens.values()):
        raise ValueError(f"{path}: field 'tokens' must map every item id to a non-empty list of token strings")
    index = INDEXES[data["scheme"]](**data.get("options", {}))
    index._assign({str(item): tuple(toks) for item, toks in tokens.items()})
    if isinstance(index, _NumberedIndex):
        index._number(index.items())  # restores number() / item_at(); the tokens come out the same
    return index
