"""Prompt templates over item texts, shared by the LLM methods that render histories and candidates
as titles (the LlamaRec reranker, the next-title LM): a jinja2 template file under
``prompts/<method>/`` (or any ``.j2`` path) and item texts cleaned by ``clean_catalogue_text``
(one line, chat control tokens neutralised, cut to ``max_item_chars``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import jinja2

from llmrec.llm.sanitize import clean_catalogue_text

PROMPTS_ROOT = Path(__file__).resolve().parents[2] / "prompts"
#: Past-tense verbs of the data sets' domains, for "A user <verb> these <noun>s".
VERBS = {"movie": "watched", "game": "played", "news": "read", "book": "read", "job": "viewed"}


class ItemPromptTemplate:
    """``prompts/<method>/<template>.j2`` (or ``template`` as a .j2 path), the cleaned text of items, how
    much history a prompt shows and, with ``evidence='popularity'``, each item's popularity bucket
    (``llmrec.data.sequences.popularity_buckets`` of the known events)."""

    def __init__(self, method: str, template: str, item_text: Mapping[str, str], domain: str = "item",
                 history_len: int = 10, max_item_chars: int = 60, evidence: str = "none",
                 popularity: Mapping[str, int] | None = None) -> None:
        path = Path(template) if template.endswith(".j2") else PROMPTS_ROOT / method / f"{template}.j2"
        if not path.is_file():
            raise FileNotFoundError(f"{method} prompt template not found: {path}")
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(path.parent)), autoescape=False,
                                 undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
        self.method = method
        self.template = env.get_template(path.name)
        self.item_text = item_text
        self.domain = domain
        self.verb = VERBS.get(domain, "interacted with")
        self.max_item_chars = max_item_chars
        self.history_len = history_len
        self.evidence = evidence
        self.popularity = popularity or {}
        if evidence == "popularity" and popularity is None:
            raise ValueError("evidence='popularity' needs the popularity buckets of the known events")

    def text(self, item: str) -> str:
        if item not in self.item_text:
            raise KeyError(f"{self.method}: item {item!r} has no text in the catalogue (every candidate and history "
                           "item must be a catalogue item)")
        return clean_catalogue_text(self.item_text[item], self.max_item_chars) or f"{self.domain} {item}"
