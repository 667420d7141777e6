"""LLM-simulated interactions for cold-start items (the generation paradigm's "book recipe").

For each cold item (a catalogue item without any known event) the users with known events are
pre-filtered by embedding cosine (a user is the mean of their known items' unit text embeddings),
so the LLM sees ``prefilter_users`` users per item, not the whole population. Each prefiltered user
is asked "would you watch / buy it?" (``prompts/coldstart/<prompt>.j2``: their ``history_items``
most recent known titles and the item's catalogue text, all cleaned with ``clean_catalogue_text``)
and scored, not generated: P(Yes) is the softmax of the logits of "Yes" and "No" as the first
answer token. The top ``keep_users`` by P(Yes) (at least ``min_p_yes``) become simulated events,
marked ``simulated``, one step after the last known timestamp and rated as likes. ``augment_split``
appends them to the training part, so a CF model (item-CF, SASRec) can be retrained with them.

Leakage rule: everything comes from ``split.known(part)`` and the catalogue, never from
``split.held(part)``. Cold items are the catalogue items without a known event (not "the test
items": which items the test period holds is itself test information); user vectors, prompt
histories and the users considered all come from known events. Changing or removing the test
events changes nothing here (the tests check it).

Cache and resumption: the two logits of every (user, item) prompt live in one sqlite file
(``<cache_dir>/simulate.sqlite``) keyed by the sha256 of (model identity, prompt template source,
chat or plain, the rendered prompt, which holds the user's history and the item text). Each batch
is committed when scored, so a re-run after a crash or ``kill -9`` scores only the missing pairs.
Non-finite logits are cached too (a deterministic model gives them again) and counted as rejected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from llmrec.coldstart.enrich import DEFAULT_CACHE_DIR, EnrichConfig, _load, load_prompt
from llmrec.coldstart.enrich_cache import AnswerStore, model_identity
from llmrec.data.schema import ITEM, LABEL, LIKE_THRESHOLD, RATING, TIME, USER
from llmrec.data.splits import _SEQ, Split
from llmrec.data.text import item_text
from llmrec.embed.encoder import Encoder
from llmrec.embed.files import render_item_texts
from llmrec.llm.base import LanguageModel, Prompt
from llmrec.llm.sanitize import clean_catalogue_text

CACHE_FILE = "simulate.sqlite"
ANSWERS = ("Yes", "No")
COLUMNS = (USER, ITEM, TIME, RATING, "simulated", "p_yes", "prefilter_rank")
KEY_VERSION = 1
MAX_TITLE_CHARS = 120  # a history line: a title, not a description
MAX_ITEM_CHARS = 300


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class SimulateConfig:
    model: str = field(default="smollm2-135m", metadata=_help(
        "packaged LLM name (smollm2-135m, qwen2.5-0.5b, gemma3-270m), model folder or .gguf file"))
    prompt: str = field(default="would_like", metadata=_help(
        "prompt template: a name under prompts/coldstart/ (without .j2) or a path to a .j2 file"))
    prefilter_users: int = field(default=20, metadata=_help(
        "users per cold item sent to the LLM: the top ones by embedding cosine (bounds the cost)"))
    keep_users: int = field(default=5, metadata=_help(
        "simulated interactions per cold item: the top P(Yes) among the prefiltered users"))
    min_p_yes: float = field(default=0.0, metadata=_help("keep only users with P(Yes) at least this"))
    history_items: int = field(default=10, metadata=_help("most recent known items shown per user in the prompt"))
    embedding: dict[str, Any] = field(default_factory=dict, metadata=_help(
        "options of the registered 'embedding' scorer used for the prefilter (model, cache_dir, ...)"))
    items: str = field(default="cold", metadata=_help(
        "which items get simulated users: 'cold' (catalogue items without any known event)"))
    batch_size: int = field(default=8, metadata=_help("pairs per scoring batch, each committed to the cache"))
    cache_dir: str | None = field(default=DEFAULT_CACHE_DIR, metadata=_help(
        "folder of the P(Yes) cache (simulate.sqlite); None keeps nothing between runs"))
    show_progress: bool = field(default=True, metadata=_help("show a progress bar over items"))
    device: str | None = field(default=None, metadata=_help("torch device for the LLM (None: automatic)"))
    seed: int = field(default=0, metadata=_help("seed of the embedding scorer's build context (scoring is "
                                                "deterministic)"))

    def __post_init__(self) -> None:
        for name in ("prefilter_users", "keep_users", "history_items", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.keep_users > self.prefilter_users:
            raise ValueError(f"keep_users ({self.keep_users}) cannot exceed prefilter_users ({self.prefilter_users})")
        if not 0.0 <= self.min_p_yes <= 1.0:
            raise ValueError(f"min_p_yes must lie in [0, 1], got {self.min_p_yes}")
        if self.items != "cold":
            raise ValueError(f"items must be 'cold', got {self.items!r}")


@dataclass
class SimulateResult:
    """What ``simulate_interactions`` gives back."""

    events: pd.DataFrame  # one row per simulated event (COLUMNS), by item, then P(Yes) from the highest
    llm_calls: int = 0  # distinct (user, item) prompts the model scored in this run (not from the cache)
    cache_hits: int = 0
    items: int = 0  # cold items processed
    seconds: float = 0.0  # wall seconds of the run, model loading excluded
    load_seconds: float = 0.0
    model_id: str = ""
    rejected: int = 0  # prefiltered pairs whose logits were not finite (never kept)

    def summary(self) -> dict[str, Any]:
        pairs = self.llm_calls + self.cache_hits
        return {"items": self.items, "events": int(len(self.events)),
                "users": int(self.events[USER].nunique()) if len(self.events) else 0,
                "llm_calls": self.llm_calls, "cache_hits": self.cache_hits, "rejected": self.rejected,
                "seconds": round(self.seconds, 2), "load_seconds": round(self.load_seconds, 2),
                "seconds_per_item": round(self.seconds / self.items, 3) if self.items else 0.0,
                "calls_per_item": round(pairs / self.items, 2) if self.items else 0.0, "model_id": self.model_id}


def p_yes(logits: Sequence[float] | np.ndarray) -> float:
    """Softmax probability of the first of two logits (Yes, No); NaN when either is not finite."""
    yes, no = (float(v) for v in np.asarray(logits, dtype=float).reshape(-1)[:2])
    if not (math.isfinite(yes) and math.isfinite(no)):
        return math.nan
    return 1.0 / (1.0 + math.exp(min(no - yes, 700.0)))  # clipped: exp overflows past ~709


def known_events(split: Split, part: str = "test") -> pd.DataFrame:
    """The events known before ``part``, time-ordered per user: all this module ever reads of the events."""
    known = split.known(part)
    order = [USER, TIME, _SEQ] if _SEQ in known.columns else [USER, TIME]
    return known.sort_values(order, kind="stable").reset_index(drop=True)


def _item_vectors(split: Split, part: str, config: SimulateConfig, encoder: Encoder | None,
                  needed: set[str]) -> tuple[pd.Index, np.ndarray]:
    """Item ids and unit text embeddings: the registered embedding scorer's, or ``encoder``'s (tests)."""
    if encoder is None:
        from llmrec.registry import BuildContext, build_scorer  # the registry, never a method folder

        context = BuildContext(split, part, seed=config.seed, show_progress=config.show_progress)
        scorer: Any = build_scorer("embedding", context, **{"show_progress": False, **config.embedding})
        return pd.Index([str(i) for i in scorer.item_ids]), np.asarray(scorer.item_vectors, dtype=np.float32)
    texts = render_item_texts(split.dataset, config.embedding.get("template"), config.embedding.get("fields"))
    texts = texts[texts.index.isin(needed)]
    vectors = encoder.encode(list(texts), batch_size=int(config.embedding.get("batch_size", 64)), show_progress=False)
    return pd.Index(texts.index), np.asarray(vectors, dtype=np.float32)


def _user_matrix(histories: dict[str, list[str]], ids: pd.Index, vectors: np.ndarray) -> np.ndarray:
    """One unit row per user: the normalised mean of their known items' vectors (zero when none is embedded)."""
    out = np.zeros((len(histories), vectors.shape[1]), dtype=np.float32)
    for row, history in enumerate(histories.values()):
        positions = ids.get_indexer(history)
        if (positions >= 0).any():
            out[row] = vectors[positions[positions >= 0]].mean(axis=0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


@dataclass
class _Job:
    user_id: str
    item_id: str
    rank: int
    key: str
    prompt: Prompt


def simulate_interactions(split: Split, config: SimulateConfig | None = None, llm: LanguageModel | None = None,
                          part: str = "test", item_ids: Sequence[str] | None = None,
                          encoder: Encoder | None = None) -> SimulateResult:
    """Simulated events for ``item_ids`` (default: the cold items), from the events known before ``part``.

    ``llm``: a loaded model, else ``config.model`` is loaded on first need (never when the cache
    answers everything). ``encoder``: embed item texts with it instead of the registered scorer.
    """
    config = config or SimulateConfig()
    started = time.perf_counter()
    dataset = split.dataset
    known = known_events(split, part)
    if not len(known):
        raise ValueError(f"no events are known before {part!r}: nothing to pre-filter users with")
    catalogue = set(dataset.items.index.astype(str))
    targets = split.unseen_items(part) if item_ids is None else list(dict.fromkeys(str(i) for i in item_ids))
    missing = [i for i in targets if i not in catalogue]
    if missing:
        raise KeyError(f"{len(missing)} item ids are not in the catalogue, e.g. {missing[:5]}")
    histories = {str(u): g[ITEM].astype(str).tolist() for u, g in known.groupby(USER, sort=True)}
    users = np.array(list(histories), dtype=object)
    holders = known.groupby(ITEM)[USER].agg(set).to_dict()
    ids, vectors = _item_vectors(split, part, config, encoder, set(known[ITEM].astype(str)) | set(targets))
    user_matrix = _user_matrix(histories, ids, vectors)
    has_vector = np.linalg.norm(user_matrix, axis=1) > 0
    template, source = load_prompt(config.prompt)
    model_id, chat = model_identity(config.model, llm)
    texts = item_text(dataset).fillna("").astype(str)
    texts.index = texts.index.astype(str)
    titles = dataset.items["title"].fillna("").astype(str) if "title" in dataset.items.columns else texts
    titles.index = titles.index.astype(str)

    def title(i: str) -> str:  # history lines are titles (the full text when an item has no title)
        return clean_catalogue_text(titles.get(i) or texts.get(i, i), MAX_TITLE_CHARS)

    shown = {u: [title(i) for i in h[-config.history_items:]] for u, h in histories.items()}
    jobs: dict[str, list[_Job]] = {}
    for item in targets:
        jobs[item] = []
        position = ids.get_indexer([item])[0]
        if position < 0:
            continue
        cosine = user_matrix @ vectors[position]
        # A user who already knows the item (a warm item passed in item_ids) is no candidate for it.
        candidates = np.flatnonzero(has_vector & ~np.isin(users, list(holders.get(item, ()))))
        # Ties go to the user id sorted first (users are sorted), so a run is reproducible.
        order = candidates[np.argsort(-cosine[candidates], kind="stable")][: config.prefilter_users]
        text = clean_catalogue_text(texts.get(item, ""), MAX_ITEM_CHARS)
        for rank, k in enumerate(order, start=1):
            body = template.render(domain=dataset.domain, history=shown[users[k]], item=text, chat=chat).strip()
            # A plain prompt ends in "Answer: ": the backend moves the space into the option (" Yes").
            prompt: Prompt = [{"role": "user", "content": body}] if chat else body + " "
            jobs[item].append(_Job(str(users[k]), item, rank, _key(model_id, source, chat, prompt), prompt))
    # The answer store of enrich, in its own file: the "output" is the JSON [yes, no] of the two logits.
    store = AnswerStore(Path(config.cache_dir).expanduser() / CACHE_FILE if config.cache_dir else None)
    result = SimulateResult(events=pd.DataFrame(), items=len(targets), model_id=model_id)
    try:
        answers = {k: json.loads(out) for k, (out, _) in store.get_many(
            list({j.key for js in jobs.values() for j in js})).items()}
        result.cache_hits = len(answers)
        bar = tqdm(total=len(targets), desc=f"simulate ({getattr(llm, 'name', config.model)})", unit="item",
                   disable=not config.show_progress)
        for item in targets:
            todo = list({j.key: j for j in jobs[item] if j.key not in answers}.values())
            if todo and llm is None:
                tick = time.perf_counter()
                # enrich's loader (same options, same check that the chat template is as expected).
                llm = _load(EnrichConfig(model=config.model, batch_size=config.batch_size, device=config.device),
                            chat)
                result.load_seconds = time.perf_counter() - tick
            for start in range(0, len(todo), config.batch_size):
                batch = todo[start : start + config.batch_size]
                assert llm is not None
                scored = [_logits(llm, j.prompt) for j in batch]
                # One transaction per batch: a killed run loses at most the batch in flight.
                store.put_many([(j.key, model_id, j.item_id, f"user {j.user_id}: {json.dumps(j.prompt)}",
                                 json.dumps(s), 0) for j, s in zip(batch, scored)])
                answers.update((j.key, s) for j, s in zip(batch, scored))
                result.llm_calls += len(batch)
            bar.update(1)
        bar.close()
    finally:
        store.close()
    last = int(known[TIME].max())
    rating = max(float(known[RATING].max()), LIKE_THRESHOLD + 1.0) if RATING in known.columns else LIKE_THRESHOLD + 1.0
    rows: list[tuple[Any, ...]] = []
    for item in targets:
        scored_jobs = [(p_yes(answers[j.key]), j) for j in jobs[item]]
        result.rejected += sum(math.isnan(p) for p, _ in scored_jobs)
        kept = sorted(((p, j) for p, j in scored_jobs if not math.isnan(p) and p >= config.min_p_yes),
                      key=lambda pj: (-pj[0], pj[1].rank))[: config.keep_users]
        rows.extend((j.user_id, item, last + 1, rating, True, p, j.rank) for p, j in kept)
    result.events = _typed(pd.DataFrame(rows, columns=list(COLUMNS)))
    result.seconds = time.perf_counter() - started - result.load_seconds
    return result


def _key(model_id: str, source: str, chat: bool, prompt: Prompt) -> str:
    request = {"v": KEY_VERSION, "model": model_id, "template": source, "chat": chat, "prompt": prompt,
               "options": list(ANSWERS)}
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def _logits(llm: LanguageModel, prompt: Prompt) -> tuple[float, float]:
    values = np.asarray(llm.next_token_logits(prompt, list(ANSWERS)), dtype=float).reshape(-1)
    # Model output is untrusted too: a wrong shape is a rejected pair (NaN), not a crash.
    return (float(values[0]), float(values[1])) if values.shape == (2,) else (math.nan, math.nan)


def _typed(events: pd.DataFrame) -> pd.DataFrame:
    return events.astype({USER: str, ITEM: str, TIME: "int64", RATING: "float64", "simulated": bool,
                          "p_yes": "float64", "prefilter_rank": "int64"})[list(COLUMNS)].reset_index(drop=True)


# --- using them ----------------------------------------------------------------------------------
def augment_split(split: Split, events: pd.DataFrame) -> Split:
    """A new split whose train part also holds ``events``, with a bool ``simulated`` column (False for real rows).

    Only for building and training scorers (``build_scorer("itemcf", BuildContext(augmented, "test"))``):
    evaluate with the original split, or simulated items would enter test users' histories and be
    taken out of their candidates. The split given is not changed. Simulated rows get the train
    part's rating / label columns (a like) and each user's next ``event_seq`` after their known events.
    """
    for column in (USER, ITEM, TIME):
        if column not in events.columns:
            raise ValueError(f"simulated events need a {column!r} column, got {list(events.columns)}")
    dataset = split.dataset
    sim = pd.DataFrame({USER: events[USER].astype(str).to_numpy(), ITEM: events[ITEM].astype(str).to_numpy(),
                        TIME: events[TIME].astype("int64").to_numpy()})
    for column, known_ids in ((USER, set(dataset.interactions[USER])), (ITEM, set(dataset.items.index.astype(str)))):
        unknown = sorted(set(sim[column]) - known_ids)
        if unknown:
            raise ValueError(f"{len(unknown)} simulated {column}s are not in {dataset.name}, e.g. {unknown[:5]}")
    known = pd.concat([split.train, split.valid], ignore_index=True)
    clash = sim.merge(known[[USER, ITEM]].drop_duplicates(), on=[USER, ITEM])
    if len(clash):
        raise ValueError(f"{len(clash)} simulated events repeat known ones, e.g. user {clash[USER].iloc[0]!r} "
                         f"item {clash[ITEM].iloc[0]!r}: were they built for another split?")
    train = split.train.copy()
    train["simulated"] = train["simulated"].fillna(False).astype(bool) if "simulated" in train.columns else False
    if RATING in train.columns:
        sim[RATING] = events[RATING].astype(float).to_numpy() if RATING in events.columns else LIKE_THRESHOLD + 1.0
    if LABEL in train.columns:
        sim[LABEL] = 1
    if _SEQ in train.columns:
        after = known.groupby(USER)[_SEQ].max()
        sim[_SEQ] = sim[USER].map(after).fillna(-1).astype("int64") + 1 + sim.groupby(USER).cumcount()
    sim["simulated"] = True
    out = pd.concat([train, sim], ignore_index=True)
    out = out.sort_values([USER, TIME], kind="stable").reset_index(drop=True)
    return dataclasses.replace(split, train=out)
