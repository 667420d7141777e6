"""TALLRec instruction data: builders from interactions, MIND impressions and Amazon sequences,
and reading/writing TALLRec's Alpaca-style JSON (splits: ``llmrec.tallrec.split``).

Every builder returns ``InstructionExample``s: the TALLRec fields (instruction, input, output,
label) plus where the example came from (user, target item, history item ids, the target's
timestamp), so a split can be checked for leakage and a no-LLM baseline can score the same
examples. Histories hold only events before the target, so no example sees its own label.

MovieLens the TALLRec way: a user's ratings in time order; for each rating with ``history_len``
ratings before it, the previous ``history_len`` items are split into liked (``is_liked``: rating
> 3, the "preference") and not liked ("unpreference"), and the answer is whether the target is
liked. :func:`question_example` renders one question from a history; the builders and the
``tallrec`` scorer both call it, so a scored prompt is exactly a trained prompt. Catalogue text
goes through ``llmrec.llm.sanitize.clean_catalogue_text`` in :func:`render_example`.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.loaders.tallrec import TallRecExample, read_tallrec_json
from llmrec.data.schema import ITEM, LABEL, LIKE_THRESHOLD, RATING, TIME, USER, Dataset, is_liked
from llmrec.errors import DataFormatError
from llmrec.llm.sanitize import clean_catalogue_text
from llmrec.tallrec.evidence import (
    Stats,
    check_evidence,
    evidence_text,
    items_before,
    residuals_before,
    user_before,
)
from llmrec.tallrec.model import template_environment
from llmrec.utils.io import atomic_write

#: What a prompt's evidence lines are rendered from: (mode, item stats, user stats, rating scale).
EvidenceSpec = tuple[str, Stats | None, Stats | None, float]
#: The label of a question rendered for scoring: its answer is what the model is asked for.
UNLABELLED = -1
# Titles repeat across tens of thousands of examples; the cleaner is pure, so clean each once.
_clean = functools.lru_cache(maxsize=1 << 16)(clean_catalogue_text)


@dataclass(frozen=True)
class InstructionExample(TallRecExample):
    """A TALLRec example with its provenance (empty for examples read from TALLRec's own files)."""

    user_id: str = ""
    item_id: str = ""
    history: tuple[str, ...] = field(default_factory=tuple)
    """Item ids shown in the prompt (preference and unpreference), oldest first."""
    timestamp: int | None = None
    """When the target event happened (MIND: the impression). Questions sharing a history (the Yes/No
    twins of ``sequence_examples``, one MIND impression) share it, so a split by time keeps them together."""
    stats: tuple[Stats | None, Stats | None] | None = field(default=None, compare=False)
    """(item, user) rating statistics known before the target (``rating_examples(with_stats=True)``):
    what a collaborative prior is fitted on and computed from; not written to TALLRec JSON."""

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("label")  # the answer lives in "output", as in TALLRec's files
        for derived in ("offset", "stats"):  # computed from the events, never part of TALLRec's format
            out.pop(derived)
        out["history"] = list(self.history)
        return out


def render_example(preference: Sequence[str], unpreference: Sequence[str], target: str, label: int,
                   domain: str = "movie", evidence: str = "", **provenance) -> InstructionExample:
    """One example in TALLRec's exact wording (prompts/tallrec/instruction.j2 and input.j2).

    Every title goes through the project's one catalogue-text cleaner here, the one place TALLRec
    puts item text into a prompt: a title can never break the quoting or open an Alpaca section.
    ``evidence``: collaborative evidence lines (``llmrec.tallrec.evidence``), put just before the
    question; empty: TALLRec's own text, word for word.
    """
    env = template_environment()
    instruction = env.get_template("instruction.j2").render(domain=domain).strip()
    text = env.get_template("input.j2").render(preference=[_clean(t) for t in preference],
                                               unpreference=[_clean(t) for t in unpreference],
                                               target=_clean(target), domain=domain, evidence=evidence).strip()
    output = "Yes." if label == 1 else "No." if label == 0 else ""
    return InstructionExample(instruction, text, output, int(label), **provenance)


def question_example(items: Sequence[str], liked: Sequence[bool], target: str, titles: Mapping[str, str],
                     domain: str, label: int = UNLABELLED, evidence: EvidenceSpec | None = None,
                     **provenance) -> InstructionExample:
    """The question about ``target`` after the history ``items`` (oldest first, already cut to the
    window shown; ``liked`` aligned): items without a title are left out, as the builders do.
    ``evidence``: (mode, item stats, user stats, rating scale) for the evidence lines."""
    window = [(i, bool(like)) for i, like in zip(items, liked, strict=True) if i in titles]
    title = titles.get(target, str(target))
    text = ""
    if evidence is not None:
        mode, item_stats, user_stats, scale = evidence
        text = evidence_text(mode, item_stats, user_stats, _clean(title), domain, scale)
    return render_example([titles[i] for i, like in window if like], [titles[i] for i, like in window if not like],
                          title, label, domain, evidence=text,
                          history=tuple(i for i, _ in window), item_id=str(target), **provenance)


def prompt_domain(dataset: Dataset, default: str = "movie") -> str:
    """The noun of the prompts: the data set's domain, ``default`` when it only says "item"."""
    return dataset.domain if dataset.domain != "item" else default


def item_titles(dataset: Dataset) -> dict[str, str]:
    """item id -> title (the catalogue's ``title``; else its item text); items without text are left out."""
    if "title" in dataset.items.columns:
        titles = dataset.items["title"]
    else:
        from llmrec.data.text import item_text

        titles = item_text(dataset)
    return {str(i): str(t).strip() for i, t in titles.items() if isinstance(t, str) and t.strip()}


def movielens_examples(dataset: Dataset, history_len: int = 10, like_threshold: float = LIKE_THRESHOLD,
                       min_history: int | None = None, evidence: str = "none") -> list[InstructionExample]:
    """TALLRec's MovieLens examples: liked = ``is_liked(rating, like_threshold)``; see the module docstring.

    ``min_history``: fewest earlier ratings a target needs (default ``history_len``: a full window).
    ``evidence``: collaborative evidence from events strictly before each target (see ``rating_examples``).
    """
    if RATING not in dataset.interactions.columns:
        raise DataFormatError(dataset.source or dataset.name, f"a '{RATING}' column", field=RATING,
                              got=list(dataset.interactions.columns))
    return rating_examples(dataset.interactions, item_titles(dataset), prompt_domain(dataset), history_len,
                           like_threshold, min_history, evidence=evidence)


def rating_examples(events: pd.DataFrame, titles: Mapping[str, str], domain: str = "movie", history_len: int = 10,
                    like_threshold: float = LIKE_THRESHOLD, min_history: int | None = None,
                    evidence: str = "none", with_stats: bool = False) -> list[InstructionExample]:
    """The MovieLens way over any rated ``events`` (e.g. only the events known before a test part).

    ``evidence`` (none | item | user | both): collaborative evidence in each prompt, computed from
    ``events`` strictly before the example's own target (``llmrec.tallrec.evidence``).
    ``with_stats``: keep those (item, user) statistics on each example (``stats``), for a prior."""
    min_history = history_len if min_history is None else min_history
    if not 1 <= min_history <= history_len:
        raise ValueError(f"need 1 <= min_history <= history_len, got {min_history} and {history_len}")
    check_evidence(evidence)
    examples: list[InstructionExample] = []
    events = events.reset_index(drop=True)
    item_stats = items_before(events, like_threshold) if evidence in ("item", "both") or with_stats else None
    residuals = residuals_before(events, item_stats) if with_stats and item_stats is not None else None
    scale = rating_scale(events)
    # Sorted by (user, time) with a stable sort (as the schema does), so "before" is the file order on ties.
    events = events.assign(_row=np.arange(len(events))).sort_values([USER, TIME], kind="stable")
    for user, group in events.groupby(USER, sort=True):
        items = [str(i) for i in group[ITEM].to_list()]
        ratings = group[RATING].to_numpy(dtype=float)
        liked = is_liked(ratings, like_threshold)
        times = group[TIME].to_numpy()
        rows = group["_row"].to_numpy()
        habits = (user_before(ratings, like_threshold, None if residuals is None else residuals[rows])
                  if evidence in ("user", "both") or with_stats else None)
        for i in range(min_history, len(items)):
            lo = max(0, i - history_len)
            if items[i] not in titles or not any(it in titles for it in items[lo:i]):
                continue
            before = (None if item_stats is None else item_stats[rows[i]], None if habits is None else habits[i])
            # Each side is shown only when its evidence mode asks (the template reads the mode).
            spec = None if evidence == "none" else (evidence, *before, scale)
            examples.append(question_example(items[lo:i], liked[lo:i], items[i], titles, domain, int(liked[i]),
                                             evidence=spec, user_id=str(user), timestamp=int(times[i]),
                                             stats=before if with_stats else None))
    return examples


def rating_scale(events: pd.DataFrame, default: float = 5.0) -> float:
    """The top of the rating scale the evidence speaks of ("out of 5"): the highest known rating."""
    if RATING not in events.columns or events.empty:
        return default
    top = float(events[RATING].max())
    return top if np.isfinite(top) and top > 0 else default


def mind_examples(dataset: Dataset, history_len: int = 10, negatives_per_impression: int = 4,
                  seed: int = 0, max_impressions: int | None = None) -> list[InstructionExample]:
    """From MIND impressions: target = an impressed news item, answer = clicked or not.

    Preference: the user's last ``history_len`` clicks before the impression (click history and
    earlier impressions); unpreference: news shown to the user earlier and not clicked. Every click
    of an impression is kept with up to ``negatives_per_impression`` seeded non-clicks. News without
    a title are skipped.
    """
    impressions = dataset.meta.get("impressions")
    if impressions is None or LABEL not in dataset.interactions.columns:
        raise DataFormatError(dataset.source or dataset.name, "a MIND data set (meta['impressions'], label column)",
                              field="impressions", got=sorted(dataset.meta))
    titles = item_titles(dataset)
    rng = random.Random(seed)
    inter = dataset.interactions
    # Per-user numpy arrays: one boolean mask per impression instead of a pandas filter.
    by_user = {u: (g[TIME].to_numpy(), g[ITEM].to_numpy(), g[LABEL].to_numpy())
               for u, g in inter.groupby(USER, sort=False)}
    examples: list[InstructionExample] = []
    for count, ((user, _imp), rows) in enumerate(impressions.groupby([USER, "impression_id"], sort=True)):
        if max_impressions is not None and count >= max_impressions:
            break
        when = int(rows[TIME].iloc[0])
        times, items, labels = by_user[user]
        earlier = times < when
        liked = [i for i in items[earlier & (labels == 1)] if i in titles][-history_len:]
        disliked = [i for i in items[earlier & (labels == 0)] if i in titles][-history_len:]
        shown = [(i, int(lab)) for i, lab in zip(rows[ITEM], rows[LABEL], strict=True) if i in titles]
        positives = [i for i, lab in shown if lab == 1]
        negatives = [i for i, lab in shown if lab == 0]
        negatives = rng.sample(negatives, min(len(negatives), negatives_per_impression))
        for item, label in [(i, 1) for i in positives] + [(i, 0) for i in negatives]:
            examples.append(render_example([titles[i] for i in liked], [titles[i] for i in disliked], titles[item],
                                           label, "news", user_id=str(user), item_id=str(item),
                                           history=tuple(liked + disliked), timestamp=when))
    return examples


def sequence_examples(dataset: Dataset, history_len: int = 10, seed: int = 0,
                      max_users: int | None = None) -> list[InstructionExample]:
    """From next-item sequences (Amazon): per user, the true next item (Yes) and one seeded
    random catalogue item the user never interacted with (No); all history items are preferences.
    The two twins share the history and the target's timestamp, so every split keeps them together.

    Uses the data set's predefined sequences (``eval_sequences``) when it has them, else each
    user's last interaction as the target.
    """
    titles = item_titles(dataset)
    pool = sorted(titles)
    rng = random.Random(seed)
    inter = dataset.interactions
    # The time of a (user, item) event: its last occurrence (a predefined target is its user's last event).
    when = {(str(u), str(i)): int(t) for u, i, t in inter[[USER, ITEM, TIME]].itertuples(index=False)}
    if dataset.eval_sequences is not None:
        sequences = [(str(u), list(h), str(t)) for u, h, t in dataset.eval_sequences[[USER, "history", "target"]]
                     .itertuples(index=False)]
    else:
        sequences = [(str(u), g[ITEM].to_list()[:-1], g[ITEM].iloc[-1])
                     for u, g in inter.groupby(USER, sort=True) if len(g) >= 2]
    if max_users is not None:
        sequences = sequences[:max_users]
    domain = prompt_domain(dataset, "item")
    examples: list[InstructionExample] = []
    for user, history, target in sequences:
        shown = [i for i in history if i in titles][-history_len:]
        if not shown or target not in titles:
            continue
        seen = set(history) | {target}
        negative = rng.choice(pool)
        while negative in seen:
            negative = rng.choice(pool)
        stamp = when.get((user, target))
        for item, label in ((target, 1), (negative, 0)):
            examples.append(render_example([titles[i] for i in shown], [], titles[item], label, domain,
                                           user_id=user, item_id=item, history=tuple(shown), timestamp=stamp))
    return examples


def build_examples(dataset: Dataset, history_len: int = 10, seed: int = 0,
                   evidence: str = "none") -> list[InstructionExample]:
    """The builder that fits the data set: ratings -> MovieLens way, MIND -> impressions, else sequences.
    ``evidence`` (rated data only) is passed to the MovieLens way."""
    rated = RATING in dataset.interactions.columns and "impressions" not in dataset.meta
    if check_evidence(evidence) != "none" and not rated:
        raise DataFormatError(dataset.source or dataset.name, f"rated interactions (a '{RATING}' column) for "
                              f"evidence {evidence!r}", field=RATING, got=list(dataset.interactions.columns))
    if "impressions" in dataset.meta:
        return mind_examples(dataset, history_len=history_len, seed=seed)
    if RATING in dataset.interactions.columns:
        return movielens_examples(dataset, history_len=history_len, evidence=evidence)
    return sequence_examples(dataset, history_len=history_len, seed=seed)


def few_shot_subset(examples: Sequence[TallRecExample], shots: int, seed: int) -> list[TallRecExample]:
    """A seeded random subset of ``shots`` examples (all of them when ``shots`` is 0 or too large)."""
    if shots <= 0 or shots >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    return [examples[i] for i in sorted(rng.sample(range(len(examples)), shots))]


def write_examples(path: str | Path, examples: Sequence[InstructionExample | TallRecExample]) -> Path:
    """TALLRec's JSON (a list of instruction / input / output), with provenance fields where known.
    Written atomically: an interrupted write leaves no half file."""
    rows = [e.to_json() if isinstance(e, InstructionExample) else
            {"instruction": e.instruction, "input": e.input, "output": e.output} for e in examples]
    path = Path(path)
    with atomic_write(path) as fh:
        json.dump(rows, fh, ensure_ascii=False, indent=1)
    return path


def read_examples(path: str | Path) -> list[InstructionExample]:
    """Read TALLRec's JSON (validated by the loader) and keep provenance fields when the file has them."""
    path = Path(path)
    base = read_tallrec_json(path)
    raw = json.loads(path.read_text(encoding="utf-8-sig"))
    out = []
    for index, (example, entry) in enumerate(zip(base, raw, strict=True)):
        history = entry.get("history", [])
        if not isinstance(history, list):
            raise DataFormatError(path, "a list of item ids", field=f"[{index}].history", got=history)
        stamp = entry.get("timestamp")
        if stamp is not None and not isinstance(stamp, int):
            raise DataFormatError(path, "an integer timestamp", field=f"[{index}].timestamp", got=stamp)
        out.append(InstructionExample(example.instruction, example.input, example.output, example.label,
                                      user_id=str(entry.get("user_id", "")), item_id=str(entry.get("item_id", "")),
                                      history=tuple(str(h) for h in history), timestamp=stamp))
    return out


def titles_in_input(text: str) -> tuple[list[str], list[str], str]:
    """Parse a TALLRec input back into (preference titles, unpreference titles, target title)."""
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in text.splitlines() if ":" in line}

    def titles(key: str) -> list[str]:
        value = lines.get(key, "")
        if len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
            return []
        return value[1:-1].split('", "')

    target = re.search(r'"(.*)"\?\s*$', text.strip())
    return titles("User Preference"), titles("User Unpreference"), target.group(1) if target else ""


def frame(examples: Sequence[InstructionExample]) -> pd.DataFrame:
    """Examples as a table (user, item, label, history length) for quick checks."""
    return pd.DataFrame({"user_id": [e.user_id for e in examples], "item_id": [e.item_id for e in examples],
                         "label": [e.label for e in examples], "history": [len(e.history) for e in examples]})
