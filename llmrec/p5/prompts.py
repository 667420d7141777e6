"""P5's prompt families as template files: ``prompts/p5/<family>/<phrasing>.j2``.

Every family has several phrasings the model is trained on (``seen_1``, ``seen_2``, ...) and one it
never sees in training (``held_out``), to measure whether it generalises to a new wording. Fields a
template may use: ``history`` (the user's recent items as ID tokens, oldest first), ``candidate``
(one item's ID), ``candidates`` (a list of IDs), ``rating``. Templates are whitespace-tokenised
words, so every field is written with spaces around it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import jinja2

from llmrec.p5.indexing import ItemIndex

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts" / "p5"
FAMILIES = ("sequential", "direct_yesno", "direct_pick", "rating", "explanation")
HELD_OUT = "held_out"
ITEM_SEPARATOR = " , "


class PromptSet:
    """The templates of every family, loaded once from ``folder``."""

    def __init__(self, folder: str | Path = PROMPTS_DIR):
        self.folder = Path(folder)
        env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
        self.sources: dict[str, dict[str, str]] = {}
        self._templates: dict[tuple[str, str], jinja2.Template] = {}
        for family in FAMILIES:
            files = sorted((self.folder / family).glob("*.j2"))
            if not files:
                raise FileNotFoundError(f"P5 prompt family {family!r} has no templates in {self.folder / family}")
            if not any(f.stem == HELD_OUT for f in files) or len(files) < 2:
                raise ValueError(f"P5 prompt family {family!r} ({self.folder / family}) needs at least one seen "
                                 f"phrasing and one named {HELD_OUT}.j2, found {[f.stem for f in files]}")
            self.sources[family] = {f.stem: f.read_text(encoding="utf-8").strip() for f in files}
            for name, source in self.sources[family].items():
                try:
                    self._templates[family, name] = env.from_string(source)
                except jinja2.TemplateSyntaxError as err:
                    raise ValueError(f"{self.folder / family / (name + '.j2')}, line {err.lineno}: {err.message}") \
                        from None

    def phrasings(self, family: str, seen: bool = True) -> list[str]:
        """The phrasings of ``family`` trained on (``seen``) or the held-out one."""
        names = sorted(self.sources[self._family(family)])
        return [n for n in names if (n != HELD_OUT) == seen]

    def render(self, family: str, phrasing: str, **fields: object) -> str:
        key = (self._family(family), phrasing)
        if key not in self._templates:
            raise ValueError(f"P5 family {family!r} has no phrasing {phrasing!r}; it has "
                             f"{sorted(self.sources[key[0]])}")
        try:
            text = self._templates[key].render(**fields)
        except jinja2.UndefinedError as err:  # a template naming a field P5 does not fill
            raise ValueError(f"{self.folder / key[0] / (phrasing + '.j2')}: {err.message}; the fields are "
                             "history, candidate, candidates and rating") from None
        return " ".join(text.split())

    def words(self) -> set[str]:
        """Every literal word of every template (held-out ones included), for a word-level vocabulary."""
        out: set[str] = set()
        for family in self.sources.values():
            for source in family.values():
                out.update(w for w in jinja2.Environment().from_string(source).render(
                    history="", candidate="", candidates="", rating="").split())
        return out

    @staticmethod
    def _family(family: str) -> str:
        if family not in FAMILIES:
            raise ValueError(f"unknown P5 prompt family {family!r}; families: {list(FAMILIES)}")
        return family


@functools.lru_cache(maxsize=4)
def default_prompts(folder: str = str(PROMPTS_DIR)) -> PromptSet:
    return PromptSet(folder)


def item_text(index: ItemIndex, item: str) -> str:
    """An item as prompt text: its ID tokens separated by spaces."""
    return " ".join(index.tokens(item))


def history_text(index: ItemIndex, items: Sequence[str]) -> str:
    """A history as prompt text; items the index does not know are left out (nothing to name them by)."""
    return ITEM_SEPARATOR.join(item_text(index, i) for i in items if i in index)
