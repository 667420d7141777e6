"""LLM feature generation (the generation paradigm's recipe): an LLM describes cold-start items.

From an item's catalogue fields (MovieLens: title, genres, release date; Amazon: title, category,
brand; every column but URL/image ones) a packaged LLM writes a short description and keywords,
from the jinja2 prompt ``prompts/coldstart/<prompt>.j2`` (chat messages for instruct models, a
plain completion ending in a ``Description:`` cue for base models). Every field is cleaned with
``clean_catalogue_text`` first. Answers are untrusted: ``enrich_checks`` cleans and judges each
one; a rejected item keeps its plain catalogue text, and rejections are counted by reason.

The enriched text of an item is its catalogue text followed by the accepted LLM text:
``enriched_items`` adds the LLM text as a column (``llm_text``), ``enriched_template`` gives an
item-text template that appends that column to a catalogue template, ``enriched_item_texts``
renders both. ``write_enriched`` / ``read_enriched`` carry results between commands.

Cache and resumption: raw answers live in one sqlite file (``<cache_dir>/enrich.sqlite``), keyed by
the sha256 of (model identity, prompt template source, chat or plain, domain, the item's cleaned
fields with their labels, generation parameters); see ``enrich_cache``. The model identity is the
name plus the fingerprint of the model folder's bytes (``folder_fingerprint``), or of the weights
in memory for a model built in code, so a changed prompt, model or item never serves a stale
answer. Each batch is committed in one transaction as soon as it is generated: after a crash or
``kill -9`` a re-run generates only the missing items. Validation runs on every read (it is
cheap), so changing a bound never needs a new generation.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from tqdm.auto import tqdm

from llmrec.coldstart.enrich_cache import AnswerStore, cache_key, model_identity
from llmrec.coldstart.enrich_checks import REASONS, Bounds, check_output, clean_output
from llmrec.data.schema import Dataset
from llmrec.data.splits import Split
from llmrec.data.text import DEFAULT_TEMPLATE, available_templates, item_text
from llmrec.llm.base import LanguageModel, LLMError, Prompt
from llmrec.llm.sanitize import clean_catalogue_text
from llmrec.utils.paths import cache_root

PROMPT_DIR = Path(__file__).resolve().parents[2] / "prompts" / "coldstart"
DEFAULT_CACHE_DIR = str(cache_root() / "coldstart")
CACHE_FILE = "enrich.sqlite"
STATUSES = ("accepted", *REASONS, "no_text")
FILE_COLUMNS = ("item_id", "text", "status")
ENRICHED_COLUMN = "llm_text"  # the catalogue column that carries the accepted LLM text
# Columns that are addresses, not descriptions: a URL in a prompt only invites the model to echo it.
_NOT_TEXT = re.compile(r"url|link|image|img|thumbnail", re.IGNORECASE)
FIELD_LABELS = {"title": "Title", "genres": "Genres", "release_date": "Release date", "category": "Category",
                "categories": "Categories", "brand": "Brand", "abstract": "Abstract", "tags": "Tags"}
# Marks each field value when rendering the prompt's instruction text (what an echo repeats).
_SLOT = "\x00"


@dataclass
class EnrichConfig:
    model: str = field(default="smollm2-135m", metadata={
        "help": "packaged LLM name (smollm2-135m, qwen2.5-0.5b, gemma3-270m), model folder or .gguf file"})
    prompt: str = field(default="describe", metadata={
        "help": "prompt template: a name under prompts/coldstart/ (without .j2) or a path to a .j2 file"})
    fields: list[str] | None = field(default=None, metadata={
        "help": "item columns shown to the LLM (None: every column except URL / image ones)"})
    domain: str | None = field(default=None, metadata={
        "help": "the item noun in the prompt (movie, product); None: the Dataset's domain, else 'item'"})
    max_new_tokens: int = field(default=80, metadata={"help": "most tokens the LLM writes per item"})
    batch_size: int = field(default=8, metadata={
        "help": "items per generation batch; each batch is committed to the cache when done"})
    max_field_chars: int = field(default=300, metadata={"help": "each field is cut to this many characters"})
    min_chars: int = field(default=40, metadata={"help": "reject answers with fewer characters (too_short)"})
    max_chars: int = field(default=700, metadata={"help": "reject answers with more characters (too_long)"})
    min_words: int = field(default=6, metadata={"help": "reject answers with fewer words (too_short)"})
    max_words: int = field(default=120, metadata={"help": "reject answers with more words (too_long)"})
    min_latin_share: float = field(default=0.9, metadata={
        "help": "reject answers whose letters are less than this share Latin script (language)"})
    echo_ngram: int = field(default=6, metadata={
        "help": "reject answers sharing a run of this many words with the prompt's instructions (echo)"})
    max_copied_share: float = field(default=0.6, metadata={
        "help": "reject answers with more than this share of words copied from the prompt in 4-word runs (echo)"})
    check_years: bool = field(default=True, metadata={
        "help": "when the fields hold a year, reject answers naming any other year (invented_field)"})
    max_repeated_share: float = field(default=0.5, metadata={
        "help": "reject answers with more than this share of words in repeated 4-word runs (repetition)"})
    cache_dir: str | None = field(default=DEFAULT_CACHE_DIR, metadata={
        "help": "folder of the answer cache (enrich.sqlite); None keeps nothing between runs"})
    items: str = field(default="cold", metadata={
        "help": "which items the command enriches: 'cold' (test items without training events) or 'all'"})
    show_progress: bool = field(default=True, metadata={"help": "show a progress bar over generated items"})
    device: str | None = field(default=None, metadata={"help": "torch device for the LLM (None: automatic)"})

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "batch_size", "max_field_chars", "echo_ngram"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.min_chars <= self.max_chars or not 0 <= self.min_words <= self.max_words:
            raise ValueError("length bounds need 0 <= min_chars <= max_chars and 0 <= min_words <= max_words")
        for name in ("min_latin_share", "max_copied_share", "max_repeated_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.items not in ("cold", "all"):
            raise ValueError(f"items must be 'cold' or 'all', got {self.items!r}")

    @property
    def bounds(self) -> Bounds:
        return Bounds(self.min_chars, self.max_chars, self.min_words, self.max_words, self.min_latin_share,
                      self.echo_ngram, self.max_copied_share, self.check_years, self.max_repeated_share)


@dataclass
class EnrichResult:
    """What ``enrich_items`` (or ``read_enriched``) gives back."""

    texts: dict[str, str]
    """Accepted LLM text by item id (one line, restated fields left out)."""
    status: dict[str, str]
    """Every requested item: ``accepted``, a rejection reason (``REASONS``) or ``no_text``."""
    answers: dict[str, str] = field(default_factory=dict)
    """The cleaned one-line answer of every generated item, rejected ones included (for inspection)."""
    llm_calls: int = 0
    """Items the model generated in this run (the rest came from the cache)."""
    cache_hits: int = 0
    seconds: float = 0.0
    """Wall seconds of the run, model loading excluded."""
    generation_seconds: float = 0.0
    load_seconds: float = 0.0
    model_id: str = ""

    @property
    def rejected(self) -> dict[str, int]:
        """Rejected answers by reason (every reason present, zeros included)."""
        return {reason: sum(s == reason for s in self.status.values()) for reason in REASONS}

    @property
    def no_text(self) -> int:
        """Items with no catalogue text at all: never sent to the model, kept as they are."""
        return sum(s == "no_text" for s in self.status.values())

    @property
    def seconds_per_item(self) -> float:
        """Generation seconds per item the model generated (0 when everything came from the cache)."""
        return self.generation_seconds / self.llm_calls if self.llm_calls else 0.0

    def summary(self) -> dict[str, Any]:
        return {"items": len(self.status), "accepted": len(self.texts), "rejected": self.rejected,
                "no_text": self.no_text, "llm_calls": self.llm_calls, "cache_hits": self.cache_hits,
                "seconds": round(self.seconds, 2), "load_seconds": round(self.load_seconds, 2),
                "seconds_per_item": round(self.seconds_per_item, 3), "model_id": self.model_id}


# --- prompts and fields ---------------------------------------------------------------------------
def load_prompt(prompt: str) -> tuple[jinja2.Template, str]:
    """The template and its source text (part of the cache key): a name under prompts/coldstart/ or a path."""
    path = PROMPT_DIR / f"{prompt}.j2"
    if "/" in prompt or prompt.endswith(".j2"):
        path = Path(prompt).expanduser()
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROMPT_DIR.glob("*.j2")))
        raise FileNotFoundError(f"cold-start prompt {prompt!r} not found ({path}); known: {known}")
    source = path.read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
    return env.from_string(source), source


def _cell(value: object) -> str:
    """A catalogue cell as prompt text: missing -> "", integral floats without ".0", lists joined."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else (str(int(value)) if value.is_integer() else f"{value:g}")
    if isinstance(value, list | tuple):
        return ", ".join(filter(None, map(_cell, value)))
    return str(value)


def item_fields(row: Mapping[str, object], columns: Sequence[str], max_chars: int) -> list[dict[str, str]]:
    """The non-empty cleaned fields of one item, in column order, as the template sees them."""
    out = []
    for column in columns:
        value = clean_catalogue_text(_cell(row.get(column)), max_chars)
        if value:
            out.append({"name": column, "label": FIELD_LABELS.get(column, column.replace("_", " ").capitalize()),
                        "value": value})
    return out


# --- enrichment ------------------------------------------------------------------------------------
@dataclass
class _Job:
    item_id: str
    fields: list[dict[str, str]]
    user_text: str
    prompt: Prompt
    key: str
    instruction: list[str]


def _catalogue(items: pd.DataFrame | Dataset, config: EnrichConfig) -> tuple[pd.DataFrame, str, list[str]]:
    domain = config.domain or (items.domain if isinstance(items, Dataset) else None) or "item"
    frame = items.items if isinstance(items, Dataset) else items
    frame = frame.set_index("item_id") if "item_id" in frame.columns else frame
    frame = frame.set_axis(frame.index.astype(str), axis=0)
    if frame.index.has_duplicates:
        raise ValueError(f"duplicate item id {frame.index[frame.index.duplicated()][0]!r} in the catalogue")
    columns = list(config.fields) if config.fields is not None else [
        c for c in frame.columns if not _NOT_TEXT.search(str(c))]
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise ValueError(f"fields {unknown} are not item columns; the items have {list(frame.columns)}")
    return frame, domain, columns


def enrich_items(items: pd.DataFrame | Dataset, item_ids: Sequence[str], config: EnrichConfig | None = None,
                 llm: LanguageModel | None = None) -> EnrichResult:
    """Describe ``item_ids`` with the LLM (``llm``, else ``config.model`` loaded on first need).

    Answers come from the cache where present; the rest are generated in batches of
    ``config.batch_size``, each committed when done. Every answer is then checked; see
    ``enrich_checks`` for the rules. Items without any text are not sent (status ``no_text``).
    """
    config = config or EnrichConfig()
    started = time.perf_counter()
    frame, domain, columns = _catalogue(items, config)
    ids = list(dict.fromkeys(str(i) for i in item_ids))
    missing = [i for i in ids if i not in frame.index]
    if missing:
        raise KeyError(f"{len(missing)} item ids are not in the catalogue, e.g. {missing[:5]}")
    template, source = load_prompt(config.prompt)
    model_id, chat = model_identity(config.model, llm)
    stop = [] if chat else ["\n\n"]  # a base model would go on to invent the next catalogue entry
    params = {"max_new_tokens": config.max_new_tokens, "temperature": 0.0, "stop": stop}
    status: dict[str, str] = {}
    jobs: list[_Job] = []
    for item_id in ids:
        fields = item_fields(frame.loc[item_id].to_dict(), columns, config.max_field_chars)
        if not fields:
            status[item_id] = "no_text"
            continue
        user_text = template.render(domain=domain, fields=fields, chat=chat).strip()
        blanks = [{**f, "value": _SLOT} for f in fields]
        instruction = template.render(domain=domain, fields=blanks, chat=chat).split(_SLOT)
        prompt: Prompt = [{"role": "user", "content": user_text}] if chat else user_text
        jobs.append(_Job(item_id, fields, user_text, prompt,
                         cache_key(model_id, source, chat, domain, fields, params), instruction))
        status[item_id] = ""
    store = AnswerStore(Path(config.cache_dir).expanduser() / CACHE_FILE if config.cache_dir else None)
    result = EnrichResult(texts={}, status=status, model_id=model_id)
    try:
        answers = store.get_many([j.key for j in jobs])
        result.cache_hits = sum(j.key in answers for j in jobs)
        todo = sorted((j for j in jobs if j.key not in answers), key=lambda j: len(j.user_text))
        if todo and llm is None:
            llm = _load(config, chat)
            result.load_seconds = time.perf_counter() - started
        bar = tqdm(total=len(todo), desc=f"enrich ({getattr(llm, 'name', config.model)})", unit="item",
                   disable=not config.show_progress)
        for start in range(0, len(todo), config.batch_size):
            batch = todo[start : start + config.batch_size]
            tick = time.perf_counter()
            assert llm is not None
            generations = llm.generate([j.prompt for j in batch], max_new_tokens=config.max_new_tokens,
                                       temperature=0.0, stop=stop or None)
            result.generation_seconds += time.perf_counter() - tick
            store.put_many([(j.key, model_id, j.item_id, j.user_text, g.text, g.completion_tokens)
                            for j, g in zip(batch, generations, strict=True)])
            for j, g in zip(batch, generations, strict=True):
                answers[j.key] = (g.text, g.completion_tokens)
                result.cache_hits += int(g.cached)  # the backend's own response cache answered
                result.llm_calls += int(not g.cached)
            bar.update(len(batch))
        bar.close()
    finally:
        store.close()
    for job in jobs:
        output, tokens = answers[job.key]
        lines = clean_output(output, truncated=tokens >= config.max_new_tokens)
        values = {f["name"]: f["value"] for f in job.fields}
        verdict = check_output(lines, fields=values, instruction_segments=job.instruction,
                               prompt_text=job.user_text, bounds=config.bounds)
        status[job.item_id] = verdict.reason or "accepted"
        result.answers[job.item_id] = verdict.text
        if verdict.reason is None:
            result.texts[job.item_id] = verdict.text
    result.seconds = time.perf_counter() - started - result.load_seconds
    return result


def _load(config: EnrichConfig, chat: bool) -> LanguageModel:
    from llmrec.llm.registry import load_llm

    kwargs: dict[str, Any] = {"batch_size": config.batch_size, "show_progress": False}
    if config.device is not None:
        kwargs["device"] = config.device
    llm = load_llm(config.model, **kwargs)
    if bool(getattr(llm, "has_chat_template", True)) != chat:
        raise LLMError(f"{config.model!r} was expected to {'have' if chat else 'lack'} a chat template")
    return llm


def select_item_ids(split: Split, which: str = "cold", part: str = "test") -> list[str]:
    """``cold``: the catalogue items without a known event before ``part`` (not "the test items":
    which items the test period holds is itself test information); ``all``: the whole catalogue."""
    if which == "cold":
        return split.unseen_items(part)
    if which == "all":
        return [str(i) for i in split.dataset.items.index]
    raise ValueError(f"which must be 'cold' or 'all', got {which!r}")


# --- enriched catalogue ----------------------------------------------------------------------------
def enriched_items(items: pd.DataFrame, result: EnrichResult | Mapping[str, str],
                   column: str = ENRICHED_COLUMN) -> pd.DataFrame:
    """The catalogue with the accepted LLM text as a new text column (missing where none was accepted)."""
    texts = result.texts if isinstance(result, EnrichResult) else dict(result)
    if column in items.columns:
        raise ValueError(f"the catalogue already has a column {column!r}; pick another name")
    out = items.copy()
    index = out.index.astype(str)
    unknown = sorted(set(texts) - set(index))
    if unknown:
        raise KeyError(f"{len(unknown)} enriched items are not in the catalogue, e.g. {unknown[:5]}")
    out[column] = pd.Series([texts.get(i) for i in index], index=out.index, dtype=object)
    return out


def enriched_template(base: str = DEFAULT_TEMPLATE, column: str = ENRICHED_COLUMN) -> str:
    """Inline item-text template (for ``item_text`` / ``EmbeddingRankerConfig.template``): the
    catalogue template ``base`` of prompts/item_text/, then ". " and the ``column`` text if any."""
    if base not in available_templates():
        raise ValueError(f"unknown item-text template {base!r}; known: {', '.join(available_templates())}")
    if not column.isidentifier():
        raise ValueError(f"column {column!r} must be a valid template variable name")
    return ('{%- set catalogue_text -%}{% include "' + base + '.j2" %}{%- endset -%}'
            "{{- [catalogue_text | trim, " + column + '] | select | join(". ") -}}')


def enriched_text_options(embedding_options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Options for the ``embedding`` scorer so it reads the enriched catalogue: the item-text
    template it would use (``embedding_options["template"]``, else the default) plus the LLM text."""
    base = (embedding_options or {}).get("template") or DEFAULT_TEMPLATE
    return {"template": enriched_template(base, ENRICHED_COLUMN)}


def enriched_item_texts(items: pd.DataFrame, result: EnrichResult | Mapping[str, str], base: str = DEFAULT_TEMPLATE,
                        column: str = ENRICHED_COLUMN) -> pd.Series:
    """Each item's catalogue text followed by its accepted LLM text (just the catalogue text if none)."""
    return item_text(enriched_items(items, result, column), template=enriched_template(base, column))
