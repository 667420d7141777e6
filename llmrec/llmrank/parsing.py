"""Turn a model's free-text ranking into candidate indices. Model output is untrusted: never raise.

The prompt labels candidates ``[1]`` .. ``[n]`` and asks for those labels one per line, but small
models answer in many shapes. Each non-empty line (an ``Answer:`` prefix removed) is read by the
first rule that applies:

1. a candidate title matched exactly after normalisation, with a rank number, bullet and quotes
   taken off (in ``1. Halo 3`` the 1 is a rank, not a label). First, so that a title which looks
   like a label (``[3] Rank me``, ``1942``) is read as that title;
2. a leading bracketed label, optionally after a rank number or bullet: ``[3] ...``, ``2. [3] ...``,
   ``(3)``; a chain ``[3] > [1] > [2]`` counts whole, but text after the label does not, so an
   echoed title that itself holds ``[5]`` cannot add a candidate;
3. labels alone: a bare number or a list such as ``3, 1, 2``;
4. bracketed labels inside prose: ``I would put [4] first, then [2]``;
5. a candidate title matched approximately: the best rapidfuzz ``WRatio`` at or above the threshold
   among titles between half and double the line's length;
6. otherwise a list-shaped line (numbered, bulleted) names something that is not a candidate and
   counts as out-of-candidate; any other line is unparseable.

Labels that are not candidates (``[25]`` of 20) count as out-of-candidate, repeats as duplicates.
Nothing here knows which candidate is the target: parsing cannot favour it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    label_index = {str(lab).lower(): i for i, lab in enumerate(labels)}
    norm_titles = [utils.default_process(str(t)) for t in titles]
    exact_title = {}
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

    for raw in str(text).splitlines():
        line = _ANSWER_PREFIX.sub("", raw.strip()).strip()
        if not line:
            continue
        result.lines += 1
        # 1. a candidate's title, exactly: checked first so that a title which looks like a label
        #    ("[3] Rank me", "1942") is read as the title it is
        title = _strip_decoration(line)
        query = utils.default_process(title)
        if query in exact_title:
            take(exact_title[query], "title")
            continue
        # 2. our own label format at the start of the line (a chain "[3] > [1]" counts whole)
        m = _LEADING_LABEL.match(line)
        if m:
            rest = line[m.end():]
            chain = [m.group(1)] + (_ANY_BRACKET_LABEL.findall(rest) if _LABEL_CHAIN_REST.match(rest) else [])
            for tok in chain:
                take(label_index.get(tok.lower()), "label")
            continue
        # 3. labels alone: "3", "3, 1, 2", "3 > 1"
        if _LABEL_LIST.match(line):
            for tok in re.findall(r"\w{1,4}", line):
                take(label_index.get(tok.lower()), "label")
            continue
        # 4. bracketed labels inside prose: "I would put [4] first, then [2]"
        brackets = _ANY_BRACKET_LABEL.findall(line)
        if brackets:
            for tok in brackets:
                take(label_index.get(tok.lower()), "label")
            continue
        # 5. a title, approximately
        match = _fuzzy_title(query, norm_titles, fuzzy_threshold)
        if match is not None:
            take(match, "title")
            continue
        # 6. a list entry naming something we do not have, or noise
        if _LIST_SHAPED.match(line):
            result.out_of_candidate += 1
        else:
            result.unparseable_lines += 1
    return result


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
