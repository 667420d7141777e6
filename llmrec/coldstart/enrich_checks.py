"""Checks on LLM-written item descriptions: model output is untrusted input, like catalogue text.

:func:`clean_output` turns a raw answer into lines; :func:`check_output` judges them and returns a
:class:`Verdict`: the first rule broken (a reason of :data:`REASONS`) or None, and the answer's
new content as one line. Before the rules, sentences said twice are dropped (small models loop).
The rules, in the order they are tried:

``empty``
    No letter or digit is left after cleaning (chat markers, markdown, code fences removed).
``language``
    Meant to catch a switch to another language, nothing subtler. Either fewer than
    ``min_latin_share`` of the letters are Latin script (Chinese, Cyrillic, ...), or the answer
    holds at least 3 function words of German, French, Spanish, Italian, Portuguese or Dutch and
    more of them than English function words. Words that occur in the item's own fields are not
    counted, so restating "Belle de jour" is not French.
``echo``
    The answer repeats the prompt: it shares a run of ``echo_ngram`` words with the prompt's
    instruction text (the template's own words, item fields excluded); or, once lines that only
    restate an input field are set aside, nothing is left, or more than ``max_copied_share`` of
    the words left lie in runs of 4+ words copied from the prompt (fields included).
``invented_field``
    The answer states a field the input does not have, or one that disagrees with it. A *field* is
    a ``Label: value`` pair: any label (at most four words) at the start of a line, and anywhere in
    a line one of the metadata labels of ``_METADATA_LABELS`` (Director, Cast, Year, Price, ...)
    followed by a colon. Allowed: the labels the prompt asks for and other descriptive ones
    (``_DESCRIPTIVE_LABELS``: Description, Keywords, Themes, Audience, ...), a restated title
    (``Toy Story: ...``), and an input field restated in agreement (``_FIELD_SYNONYMS`` maps labels
    to columns): a title whose words are at least half in the input title, a genre / category /
    brand list whose every entry occurs in the input value, a date whose years all occur in the
    input. Any other label is invented. So is a person credit in free text ("directed by X",
    "starring X", "written by X", ... followed by a capitalised name) whose name the input lacks.
    Besides, when the input fields hold a year (the catalogue has dates), every year 1880-2029
    written anywhere in the answer must be one of them (``check_years``; decades such as "1980s"
    are not years): a small model's dates and credits are guesses.
``too_short`` / ``too_long``
    The new content (restated fields left out) has fewer than ``min_chars`` characters or
    ``min_words`` words / more than ``max_chars`` or ``max_words``. Words are runs of letters or
    digits.
``repetition``
    More than ``max_repeated_share`` of the content's words lie in 4-word runs that occur twice.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmrec.llm.sanitize import clean_catalogue_text

REASONS = ("empty", "language", "echo", "invented_field", "too_short", "too_long", "repetition")


@dataclass(frozen=True)
class Bounds:
    """The thresholds of the rules above (``EnrichConfig`` documents each)."""

    min_chars: int = 40
    max_chars: int = 700
    min_words: int = 6
    max_words: int = 120
    min_latin_share: float = 0.9
    echo_ngram: int = 6
    max_copied_share: float = 0.6
    check_years: bool = True
    max_repeated_share: float = 0.5


# --- cleaning -------------------------------------------------------------------------------------
# A turn marker means the model has finished its answer and started talking to itself: cut there.
_TURN = re.compile(
    r"<\|(?:im_end|im_start|endoftext|eot_id|end|user|assistant|system)\|>|<(?:start_of_turn|end_of_turn|eos|/s)>"
    r"|\[/?INST\]|^\s*#{2,}\s*(?:instruction|input|response)\s*:|^\s*(?:user|human)\s*:",
    re.IGNORECASE | re.MULTILINE)
_MARKER = re.compile(r"<\|[^<>|\s]{1,64}\|>|<(?:bos|pad|unk|s)>")
_ROLE_PREFIX = re.compile(r"^\s*(?:assistant|model)\s*(?::|\n)", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•>#]+|\d{1,2}[.)])\s+")
_EMPHASIS = re.compile(r"\*\*|__|`")
_DESCRIPTION_LABEL = re.compile(r"^\s*(?:description|summary)\s*:\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def clean_output(raw: str, truncated: bool = False) -> list[str]:
    """The answer's non-empty lines, each one clean catalogue line (markers neutralised).

    Cuts at the first chat-turn marker, drops a leading role name, code fences, bullets and
    markdown emphasis, and the label of a ``Description:`` line. ``truncated`` (the answer hit
    ``max_new_tokens``) drops the unfinished last sentence or list entry when something remains.
    """
    text = unicodedata.normalize("NFKC", raw or "")
    match = _TURN.search(text)
    if match:
        text = text[: match.start()]
    text = _MARKER.sub(" ", _ROLE_PREFIX.sub("", text, count=1))
    lines = []
    for line in text.splitlines():
        if line.strip().startswith("```"):
            continue
        line = _DESCRIPTION_LABEL.sub("", _EMPHASIS.sub("", _BULLET.sub("", line)))
        line = clean_catalogue_text(line)
        if line:
            lines.append(line)
    if truncated and lines and not lines[-1].endswith((".", "!", "?")):
        last = lines[-1]
        ends = [m.end() for m in _SENTENCE_END.finditer(last)]
        if _label(last) is not None and "," in last:
            lines[-1] = last[: last.rindex(",")].rstrip()  # an unfinished keyword list loses its last entry
        elif ends:
            lines[-1] = last[: ends[-1]]
        elif len(lines) > 1:
            lines.pop()
    return lines


def join_lines(lines: Sequence[str]) -> str:
    """One line: each line ends with punctuation (a full stop added where it has none)."""
    parts = [line if line.endswith((".", "!", "?", ":", ";", ",")) else line + "." for line in lines]
    return " ".join(parts)


# --- words ------------------------------------------------------------------------------------------
_WORD = re.compile(r"[^\W_]+")
_YEAR = re.compile(r"(?<![\d.,])(18[89]\d|19\d\d|20[0-2]\d)(?!\d|'?s\b)")


def words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def years(text: str) -> set[str]:
    return set(_YEAR.findall(text))


def _ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


# --- language ---------------------------------------------------------------------------------------
_ENGLISH = frozenset(
    "the a an and of to in is are was were it its this that these for with on as by from at his her their "
    "who which be been has have or about into after while when they he she them than but not can will".split())
# Function words of other Latin-script languages that are not also common English words.
_FOREIGN = frozenset(
    "der das und ist ein eine einer mit von nicht auf für dem den des sich auch wird "  # de
    "le la les et est une des du pour dans avec qui sur pas au aux ce cette sont "  # fr
    "el los las y es una del por con para que se su sus como más muy "  # es
    "il di che è della delle gli per sono nel alla "  # it
    "os do da não uma com em são "  # pt
    "het een van en niet op voor zijn".split())  # nl


def _latin_share(text: str) -> float:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 1.0
    latin = sum(1 for ch in letters if ch.isascii() or unicodedata.name(ch, "").startswith("LATIN"))
    return latin / len(letters)


def _is_other_language(text: str, known_words: set[str], bounds: Bounds) -> bool:
    if _latin_share(text) < bounds.min_latin_share:
        return True
    tokens = [w for w in words(text) if w not in known_words]
    foreign = sum(w in _FOREIGN for w in tokens)
    english = sum(w in _ENGLISH for w in tokens)
    return foreign >= 3 and foreign > english


# --- echo -------------------------------------------------------------------------------------------
def _repeats_instruction(text: str, instruction_segments: Sequence[str], bounds: Bounds) -> bool:
    instruction: set[tuple[str, ...]] = set()
    for segment in instruction_segments:
        instruction |= _ngrams(words(segment), bounds.echo_ngram)
    return bool(_ngrams(words(text), bounds.echo_ngram) & instruction)


def _copied_share(text: str, prompt_text: str) -> float:
    """Share of the words of ``text`` that lie in runs of 4+ words found in the prompt."""
    out = words(text)
    copied = _ngrams(words(prompt_text), 4)
    covered = [False] * len(out)
    for i in range(len(out) - 3):
        if tuple(out[i : i + 4]) in copied:
            covered[i : i + 4] = [True] * 4
    return sum(covered) / len(out) if out else 0.0


# --- invented fields --------------------------------------------------------------------------------
_DESCRIPTIVE_LABELS = frozenset({
    "description", "short description", "summary", "synopsis", "plot", "story", "overview", "premise",
    "keywords", "keyword", "key words", "tags", "attributes", "themes", "theme", "mood", "tone", "style",
    "audience", "target audience", "setting", "features", "key features", "highlights", "uses", "use",
    "applications", "ideal for", "perfect for", "suitable for", "best for", "note"})
# Labels that restate an input column, by column name. A label here whose column the input lacks
# is an invented field ("Brand:" for a movie).
_FIELD_SYNONYMS: dict[str, tuple[str, ...]] = {
    "title": ("title", "name", "movie", "film", "product", "product name"),
    "genres": ("genre", "genres"),
    "release_date": ("release date", "release", "released", "year", "release year", "date"),
    "category": ("category", "categories"),
    "categories": ("category", "categories"),
    "brand": ("brand", "manufacturer", "maker"),
}
_LIST_FIELDS = {"genres", "category", "categories", "brand"}
# Factual metadata a small model is prone to make up; caught anywhere in a line when followed by ":".
_METADATA_LABELS = (
    "director", "directors", "directed by", "cast", "starring", "stars", "actors", "actor", "actress", "writer",
    "writers", "written by", "screenplay", "producer", "producers", "produced by", "studio", "distributor",
    "runtime", "running time", "duration", "rating", "rated", "mpaa rating", "imdb rating", "score", "year",
    "release date", "release year", "released", "country", "language", "budget", "box office", "awards", "award",
    "price", "cost", "msrp", "brand", "manufacturer", "model", "model number", "sku", "upc", "isbn", "author",
    "publisher", "dimensions", "weight", "color", "colour", "size", "warranty", "genre", "genres", "category")
_INLINE_LABEL = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _METADATA_LABELS), key=len, reverse=True))
                           + r")\s*:\s*([^.;|]*)", re.IGNORECASE)
# A person credit in free text ("directed by Francis Ford Coppola", "starring Tom Hanks"): the name is
# invented unless the input fields hold it.
_CREDIT = re.compile(r"\b(?:(?:directed|written|produced|created|composed|narrated|developed|designed|invented)"
                     r" by|starring|stars|featuring|voiced by)\s+((?:[A-Z][\w.'-]+\s?){1,4})")
_LINE_LABEL = re.compile(r"^([A-Za-z][A-Za-z0-9'&/() -]{0,40}?)\s*:\s*(.*)$")


def _label(line: str) -> tuple[str, str] | None:
    """``(label, value)`` when the line starts with a label of at most four words."""
    match = _LINE_LABEL.match(line)
    if match is None or len(match.group(1).split()) > 4 or match.group(2).startswith("//"):
        return None
    return " ".join(match.group(1).lower().split()), match.group(2).strip()


def _agrees(column: str, value: str, fields: Mapping[str, str]) -> bool:
    given = fields[column]
    if column == "title":
        said = words(value)
        return bool(said) and sum(w in set(words(given)) for w in said) * 2 >= len(said)
    if column in _LIST_FIELDS:
        entries = [e.strip().lower() for e in re.split(r"[,/&|]| and ", value) if e.strip()]
        return bool(entries) and all(e in given.lower() for e in entries)
    said_years = years(value)
    if said_years:
        return said_years <= years(given)
    return bool(words(value)) and set(words(value)) <= set(words(given))


def _field_ok(label: str, value: str, fields: Mapping[str, str]) -> bool:
    """Whether ``Label: value`` is allowed (see the module docstring)."""
    if label in _DESCRIPTIVE_LABELS:
        return True
    title = fields.get("title", "")
    if title and " ".join(words(title)).startswith(" ".join(words(label))):
        return True  # "Star Wars: ..." restates the title, it is not a field
    columns = [c for c, synonyms in _FIELD_SYNONYMS.items() if label in synonyms and c in fields]
    return any(_agrees(c, value, fields) for c in columns)


def invented_field(lines: Sequence[str], fields: Mapping[str, str], check_years: bool = True) -> str | None:
    """The first invented ``Label: value`` (or unknown year) in the answer, else None."""
    for line in lines:
        found = _label(line)
        if found is not None and not _field_ok(*found, fields):
            return line
        for match in _INLINE_LABEL.finditer(line):
            if match.start() == 0 and found is not None:
                continue  # the line's own label, judged above
            if not _field_ok(" ".join(match.group(1).lower().split()), match.group(2).strip(), fields):
                return match.group(0)
    given = " ".join(fields.values()).lower()
    for line in lines:
        for match in _CREDIT.finditer(line):
            if match.group(1).strip().lower() not in given:
                return match.group(0)
    known = set().union(*(years(v) for v in fields.values())) if fields else set()
    if check_years and known:
        for line in lines:
            if years(line) - known:
                return line
    return None


@dataclass(frozen=True)
class Verdict:
    """``reason``: the first rule broken (None: accepted); ``text``: the answer's new content, one line."""

    reason: str | None
    text: str


def _dedupe(lines: Sequence[str]) -> list[str]:
    """Lines with every sentence that already occurred (same words) removed: small models loop."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for line in lines:
        kept, start = [], 0
        for end in [m.end() for m in _SENTENCE_END.finditer(line)] + [len(line)]:
            sentence = line[start:end].strip()
            start = end
            key = tuple(words(sentence))
            if sentence and (not key or key not in seen):
                seen.add(key)
                kept.append(sentence)
        if kept:
            out.append(" ".join(kept))
    return out


def _restates_input(line: str, fields: Mapping[str, str]) -> bool:
    """A line that only restates an input field (in agreement): it adds nothing to the catalogue text."""
    found = _label(line)
    if found is None:
        return False
    label, value = found
    return any(_agrees(c, value, fields) for c, synonyms in _FIELD_SYNONYMS.items()
               if label in synonyms and c in fields)


def _repeated_share(tokens: Sequence[str], n: int = 4) -> float:
    counts: dict[tuple[str, ...], int] = {}
    for gram in (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)):
        counts[gram] = counts.get(gram, 0) + 1
    covered = [False] * len(tokens)
    for i in range(len(tokens) - n + 1):
        if counts[tuple(tokens[i : i + n])] > 1:
            covered[i : i + n] = [True] * n
    return sum(covered) / len(tokens) if tokens else 0.0


def check_output(lines: Sequence[str], *, fields: Mapping[str, str], instruction_segments: Sequence[str],
                 prompt_text: str, bounds: Bounds) -> Verdict:
    """Judge the cleaned answer (``clean_output``) against the item's ``fields`` and its prompt.

    The accepted text leaves out repeated sentences and lines that only restate an input field
    ("Genres: Comedy"), since the enriched text already starts with the catalogue text.
    """
    lines = _dedupe(lines)
    full = join_lines(lines)
    if not any(ch.isalnum() for ch in full):
        return Verdict("empty", full)
    known_words = set().union(*(words(v) for v in fields.values())) if fields else set()
    if _is_other_language(full, known_words, bounds):
        return Verdict("language", full)
    if _repeats_instruction(full, instruction_segments, bounds):
        return Verdict("echo", full)
    if invented_field(lines, fields, bounds.check_years) is not None:
        return Verdict("invented_field", full)
    text = join_lines([line for line in lines if not _restates_input(line, fields)])
    if not text or _copied_share(text, prompt_text) > bounds.max_copied_share:
        return Verdict("echo", full)  # nothing but the catalogue entry said again
    n_words = len(words(text))
    if len(text) < bounds.min_chars or n_words < bounds.min_words:
        return Verdict("too_short", text)
    if len(text) > bounds.max_chars or n_words > bounds.max_words:
        return Verdict("too_long", text)
    if _repeated_share(words(text)) > bounds.max_repeated_share:
        return Verdict("repetition", text)
    return Verdict(None, text)


__all__ = ["REASONS", "Bounds", "Verdict", "check_output", "clean_output", "invented_field", "join_lines", "words",
           "years"]
