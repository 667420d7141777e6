"""Turn a model's free-text ranking into candidate indices. Model output is untrusted: never raise.

The prompt labels candidates ``[1]`` .. ``[n]`` and asks for those labels one per line, but small
models answer in many shapes. The answer is NFKC-normalised first (fullwidth ``［１］`` is ``[1]``).
A whole answer that is JSON (``{"ranking": [3, 1, 2]}``, ``[3, 1, 2]``, ``["Halo 3", ...]``, in a
code fence or not) is read as that list. Otherwise each non-empty line (an ``Answer:`` prefix
removed) is read by the first rule that applies:

1. labels the prompt assigned, when the line is label-shaped and names at least one of them: a
   leading bracketed label, optionally after a rank number or bullet (``[3] ...``, ``2. [3] ...``,
   ``(3)``; a chain ``[3] > [1] > [2]`` counts whole, but text after the label does not, so an
   echoed title that itself holds ``[5]`` cannot add a candidate), or labels alone (``3``,
   ``3, 1, 2``). First, so that an item titled ``1`` or ``[2]`` cannot take over the labels: the
   labels are the prompt's contract, item titles are untrusted catalogue text. One exception: a
   single label followed by text, where the whole line is exactly another candidate's title and
   the text is not the labelled candidate's own title (``2. [3] Rank me`` echoing the item titled
   "[3] Rank me"), is that title; a bare label is always a label;
2. a candidate title matched exactly after normalisation, with a rank number, bullet and quotes
   taken off (in ``1. Halo 3`` the 1 is a rank, not a label). A title that looks like a label but
   is not one of this prompt's labels (``1942`` among 20 candidates) is read as the title;
3. a label-shaped line naming no assigned label (``[25]`` of 20): out-of-candidate;
4. bracketed labels inside prose: ``I would put [4] first, then [2]``. The prose is cut into
   clauses (at ``.``, ``;``, ``!``, ``?``, commas and "but"/"however"/"whereas"/"while"); a label
   after a negative cue in its clause (``not``, ``avoid``, ``never``, ``instead of``, ``n't``, ...)
   is *rejected*, not ranked: ``Not [3]`` ranks nothing and ``The best is [2]. I would avoid [5].``
   ranks only [2]. Rejected candidates are listed in ``ParseResult.rejected``;
5. a candidate title matched approximately: the best rapidfuzz ``WRatio`` at or above the threshold
   among titles between half and double the line's length;
6. otherwise a list-shaped line (numbered, bulleted) names something that is not a candidate and
   counts as out-of-candidate; any other line is unparseable.

Where negation is not read, on purpose (reading it there would not be sound):

* a line that starts with a label is a ranking entry whatever follows it: the text after a label
  is usually the echoed title, and titles hold negative words ("No Man's Sky", "Don't Starve"), so
  ``[3] not good`` still ranks [3];
* quoted text inside prose is skipped when looking for cues (``Pick [3] "Never Alone"``), for the
  same reason; an unquoted title with a negative word before a later label in the same clause can
  still reject that label;
* cue words are English and local to a clause: a double negative (``I would not avoid [2]``) or
  a negation that spans sentences is not understood; such a label is rejected, never ranked.

Labels that are not candidates count as out-of-candidate, repeats as duplicates. Nothing here
knows which candidate is the target: parsing cannot favour it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process, utils

_BULLET = r"(?:[-*•·>]+\s*)?"
_RANK_PREFIX = r"(?:(?:rank(?:ed)?\s*)?#?\d{1,3}\s*[.):\-]\s+)?"
_LEADING_LABEL = re.compile(rf"^{_BULLET}{_RANK_PREFIX}[\[(](\w{{1,4}})[\])]", re.IGNORECASE)
_ANY_BRACKET_LABEL = re.compile(r"[\[(](\w{1,4})[\])]")
_LABEL_CHAIN_REST = re.compile(r"^(?:[\s,;>|/\-–→]*[\[(]\w{1,4}[\])])*[\s.,;]*$")
_LABEL_LIST = re.compile(r"^[\s\[\]()#,;>|/\-–→]*\w{1,4}(?:[\s\[\]()#,;>|/\-–→]+\w{1,4})*[\s\[\]().,;]*$")
_RANK_OR_BULLET = re.compile(rf"^{_BULLET}(?:(?:rank(?:ed)?\s*)?#?\d{{1,3}}\s*[.):\-]\s+)?", re.IGNORECASE)
_LIST_SHAPED = re.compile(r"^(?:[-*•·]+\s*\S|(?:rank(?:ed)?\s*)?#?\d{1,3}\s*[.):\-]\s+\S)", re.IGNORECASE)
_ANSWER_PREFIX = re.compile(r"^\s*(?:final\s+)?(?:answer|ranking|ranked list|output|result)s?\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’`«»"
_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_JSON_KEYS = ("ranking", "ranked", "rank", "order", "answer", "recommendations", "result", "items", "labels")
_CLAUSE_SPLIT = re.compile(r"[.;!?](?=\s|$)|,|\b(?:but|however|whereas|while)\b", re.IGNORECASE)
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|«[^»]*»")
_NEGATION = re.compile(
    r"\b(?:not|no|never|avoid\w*|skip\w*|exclud\w*|except|dislike\w*|nor|neither|without|worst|least|"
    r"instead\s+of|rather\s+than|other\s+than|cannot|against)\b|n[’']t\b", re.IGNORECASE)


@dataclass
class ParseResult:
    """What one answer said: candidate indices (0-based, best first, no repeats) and what went wrong."""

    order: list[int] = field(default_factory=list)
    lines: int = 0
    """Non-empty lines read."""
    unparseable_lines: int = 0
    out_of_candidate: int = 0
    duplicates: int = 0
    by_label: int = 0
    by_title: int = 0
    rejected: list[int] = field(default_factory=list)
    """Candidates named after a negative cue in prose ("I would avoid [5]"): not in ``order``."""

    @property
    def failed(self) -> bool:
        """True when not a single candidate could be read from the answer."""
        return not self.order


def parse_ranking(
    text: str,
    labels: Sequence[str],
    titles: Sequence[str],
    fuzzy_threshold: float = 85.0,
) -> ParseResult:
    """Read ``text`` as a ranking of the candidates labelled ``labels`` with display ``titles``.

    Never raises for any string; the result's ``order`` is a duplicate-free subset of
    ``range(len(labels))`` in the order the answer gave.
    """
    result = ParseResult()
    label_index = {_nfkc(str(lab)).lower(): i for i, lab in enumerate(labels)}
    norm_titles = [utils.default_process(_nfkc(str(t))) for t in titles]
    exact_title: dict[str, int] = {}
    for i, t in enumerate(norm_titles):
        if t:
            exact_title.setdefault(t, i)
    seen: set[int] = set()

    def take(index: int | None, how: str) -> None:
        if index is None:
            result.out_of_candidate += 1
        elif index in seen:
            result.duplicates += 1
        else:
            seen.add(index)
            result.order.append(index)
            if how == "label":
                result.by_label += 1
            else:
                result.by_title += 1

    def read(line: str, listed: bool = False) -> None:
        tokens = _label_tokens(line)
        query = utils.default_process(_strip_decoration(line))
        titled = exact_title.get(query)
        # 1. our own labels: they win over any title that looks like one (an item titled "1")...
        if tokens is not None and any(tok.lower() in label_index for tok in tokens):
            if titled is None or not _echoed_title(line, tokens, titled, label_index, norm_titles):
                for tok in tokens:
                    take(label_index.get(tok.lower()), "label")
                return
        # 2. ...except the echo of a title that starts like a label ("2. [3] Rank me"), and titles
        #    that look like labels but are none of ours ("1942" of 20 candidates)
        if titled is not None:
            take(titled, "title")
            return
        # 3. label-shaped, but no label of this prompt: "[25]" of 20
        if tokens is not None:
            for tok in tokens:
                take(label_index.get(tok.lower()), "label")
            return
        # 4. bracketed labels inside prose: "I would put [4] first, then [2]"; "avoid [5]" rejects
        if _ANY_BRACKET_LABEL.search(line):
            for tok, negated in _prose_labels(line):
                index = label_index.get(tok.lower())
                if not negated:
                    take(index, "label")
                elif index is not None and index not in result.rejected:
                    result.rejected.append(index)
            return
        # 5. a title, approximately
        match = _fuzzy_title(query, norm_titles, fuzzy_threshold)
        if match is not None:
            take(match, "title")
        # 6. a list entry naming something we do not have, or noise
        elif listed or _LIST_SHAPED.match(line):
            result.out_of_candidate += 1
        else:
            result.unparseable_lines += 1

    text = _nfkc(str(text))
    lines = [_ANSWER_PREFIX.sub("", raw.strip()).strip() for raw in text.splitlines()]
    lines = [line for line in lines if line]
    result.lines = len(lines)
    entries = _json_entries(text)
    if entries is not None:
        for entry in entries:
            if isinstance(entry, str):
                if entry.strip():
                    read(entry.strip(), listed=True)
            else:
                take(label_index.get(str(entry)), "label")
        return result
    for line in lines:
        read(line)
    return result


def _nfkc(text: str) -> str:
    # Fullwidth brackets and digits ("［１］") are the labels they look like.
    return unicodedata.normalize("NFKC", text)


def _label_tokens(line: str) -> list[str] | None:
    """The label tokens of a label-shaped line, or None when the line is not label-shaped.

    Label-shaped: a leading bracketed label (plus a chain of further bracketed labels and nothing
    else), or nothing but short words and separators where every word is a number or one letter
    ("3, 1, 2", "B > A"); "Not [3]" is prose, not a list.
    """
    m = _LEADING_LABEL.match(line)
    if m:
        rest = line[m.end():]
        return [m.group(1)] + (_ANY_BRACKET_LABEL.findall(rest) if _LABEL_CHAIN_REST.match(rest) else [])
    if _LABEL_LIST.match(line):
        tokens = re.findall(r"\w{1,4}", line)
        if all(tok.isdigit() or len(tok) == 1 for tok in tokens):
            return tokens
    return None


def _echoed_title(line: str, tokens: list[str], titled: int, label_index: dict[str, int],
                  norm_titles: list[str]) -> bool:
    """True when a leading-label line is really the echo of candidate ``titled``'s title.

    Only a single label followed by text qualifies, and only when that text is not the labelled
    candidate's own title: "[1] Halo 3" names candidate 1 even if another item is titled so.
    """
    m = _LEADING_LABEL.match(line)
    if m is None or len(tokens) != 1:
        return False
    labelled = label_index.get(tokens[0].lower())
    rest = utils.default_process(_strip_decoration(line[m.end():]))
    return bool(rest) and labelled is not None and labelled != titled and rest != norm_titles[labelled]


def _prose_labels(line: str) -> list[tuple[str, bool]]:
    """Bracketed labels of a prose line in order, each with whether a negative cue precedes it in
    its clause (quoted text, usually an echoed title, never counts as a cue)."""
    out = []
    start = 0
    bounds = [m.start() for m in _CLAUSE_SPLIT.finditer(line)] + [len(line)]
    for end in bounds:
        clause = line[start:end]
        for m in _ANY_BRACKET_LABEL.finditer(clause):
            before = _QUOTED.sub(" ", clause[: m.start()])
            out.append((m.group(1), bool(_NEGATION.search(before))))
        start = end
    return out


def _json_entries(text: str) -> list[Any] | None:
    """The ranked entries of an answer that is JSON, or None when it is not.

    Accepted: a list, or an object holding a list under a ranking-like key (else its only list),
    as the whole answer or inside one code fence. Entries are labels (integers, "3", "[3]") or
    titles (other strings); anything else in the list is ignored. JSON inside prose is not read:
    "I would avoid [5]" must not become the list [5].
    """
    stripped = text.strip()
    fence = _FENCE.match(stripped)
    if fence:
        stripped = fence.group(1).strip()
    if not stripped.startswith(("[", "{")):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, dict):
        lists = {str(k).lower(): v for k, v in value.items() if isinstance(v, list)}
        key = next((k for k in _JSON_KEYS if k in lists), None)
        if key is None and len(lists) == 1:
            key = next(iter(lists))
        if key is None:
            return None
        value = lists[key]
    if not isinstance(value, list):
        return None
    entries: list[Any] = []
    for entry in value:
        if isinstance(entry, bool):
            continue
        if isinstance(entry, float) and entry.is_integer():
            entry = int(entry)
        if isinstance(entry, (int, str)):
            entries.append(entry)
    return entries


def _strip_decoration(line: str) -> str:
    line = _RANK_OR_BULLET.sub("", line, count=1).strip()
    line = line.strip(_QUOTES + " ").rstrip(".,;").strip(_QUOTES + " ")
    return line


def _fuzzy_title(query: str, norm_titles: list[str], threshold: float) -> int | None:
    # A lone number or a couple of letters fuzz-match far too much; those are labels, not titles.
    if len(query) < 4:
        return None
    # WRatio alone scores any line sharing one word with a much longer title at ~85 (its partial
    # token-set component); only titles of comparable length (half to double) may match.
    eligible = [i for i, t in enumerate(norm_titles) if t and 0.5 <= len(query) / len(t) <= 2.0]
    if not eligible:
        return None
    best = process.extractOne(query, [norm_titles[i] for i in eligible], scorer=fuzz.WRatio, processor=None,
                              score_cutoff=threshold)
    return None if best is None else eligible[int(best[2])]


def complete_order(parsed: Sequence[int], fallback: Sequence[int]) -> list[int]:
    """The parsed order followed by every candidate it left out, in ``fallback`` order (label-blind)."""
    seen = set(parsed)
    return list(parsed) + [i for i in fallback if i not in seen]
