"""The scorer registry: every method folder registers how to build its scorer (peft's
``register_peft_method`` style).

A method folder is a package under ``llmrec/`` with a ``scorer.py`` that calls :func:`register_scorer`
with a name, a builder and its config dataclass. Nothing here lists the methods: the registry is
the method folders, discovered on first use, so adding a method is adding a folder.

A builder is ``build(context: BuildContext, config) -> Scorer``. It may learn only from what the
context says a model may know (``context.known``: the events before the evaluated part) and from
item text; trained methods train (saving to their config's ``output_dir``) or load ``context.load_dir(name)``.
A hybrid takes other scorers through ``context.build(name)``, never by importing another method.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from llmrec.data.splits import Split
from llmrec.scoring import Scorer

TASKS = ("ranking", "pointwise")


@dataclass
class BuildContext:
    """What a scorer builder may use: the split, the part being evaluated, saved models to load."""

    split: Split
    part: str = "test"
    load: dict[str, str] = field(default_factory=dict)
    """Scorer name -> folder of a saved model to load instead of training."""
    seed: int = 0
    show_progress: bool = True
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Scorer name -> config options, for scorers built through ``build`` (hybrids, channels)."""
    _item_text: dict[str, str] | None = field(default=None, repr=False)

    @property
    def dataset(self):
        return self.split.dataset

    @property
    def known(self) -> pd.DataFrame:
        """Interactions a model may learn from when ``part`` is evaluated (never its targets)."""
        return self.split.known(self.part)

    def item_text(self) -> dict[str, str]:
        """Item id -> the data set's item text (its jinja2 template), computed once."""
        if self._item_text is None:
            from llmrec.data.text import item_text

            self._item_text = {str(k): str(v) for k, v in item_text(self.dataset).items()}
        return self._item_text

    def load_dir(self, name: str) -> str | None:
        return self.load.get(name)

    def build(self, name: str, /, **options: Any) -> Scorer:
        """Another registered scorer on the same split and part (for hybrids and recall channels)."""
        return build_scorer(name, self, **{**self.options.get(name, {}), **options})


ScorerBuilder = Callable[[BuildContext, Any], Scorer]


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    build: ScorerBuilder
    config_cls: type | None
    description: str
    trains: bool = False
    """True when building trains a model (or loads one saved by an earlier run)."""
    uses_llm: bool = False
    tasks: tuple[str, ...] = ("ranking",)
    """Evaluations it is meant for: ranking (any candidates) and/or pointwise (one candidate per pair)."""
    composes: bool = False
    """True for hybrids that build other registered scorers (their options may name those scorers)."""

    def make_config(self, **options: Any) -> Any:
        """The config dataclass from ``options``; an unknown option is an error naming the valid ones."""
        if self.config_cls is None:
            if options:
                raise ValueError(f"scorer {self.name!r} takes no options, got {sorted(options)}")
            return None
        names = {f.name for f in dataclasses.fields(self.config_cls) if f.init}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ValueError(f"scorer {self.name!r} has no option {unknown[0]!r}; its options: {sorted(names)}")
        return self.config_cls(**options)


_REGISTRY: dict[str, ScorerSpec] = {}
_DISCOVERED = False


def register_scorer(name: str, build: ScorerBuilder, config_cls: type | None = None, description: str = "",
                    trains: bool = False, uses_llm: bool = False, tasks: tuple[str, ...] = ("ranking",),
                    composes: bool = False) -> None:
    """Make a scorer available by name to ``llmrec evaluate``, the run module and hybrids."""
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"unknown task {bad[0]!r} for scorer {name!r}; tasks are {TASKS}")
    old = _REGISTRY.get(name)
    if old is not None and old.build is not build:
        raise ValueError(f"scorer {name!r} is registered twice ({old.build.__module__} and {build.__module__})")
    _REGISTRY[name] = ScorerSpec(name, build, config_cls, description, trains, uses_llm, tuple(tasks), composes)


def method_packages() -> list[str]:
    """Sub-packages of ``llmrec`` that are method folders (they hold a ``scorer.py``)."""
    root = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(root)])
                  if m.ispkg and (root / m.name / "scorer.py").is_file())


def scorer_specs() -> dict[str, ScorerSpec]:
    """Every registered scorer (importing each method folder's ``scorer.py`` once)."""
    global _DISCOVERED
    if not _DISCOVERED:
        for package in method_packages():
            importlib.import_module(f"llmrec.{package}.scorer")
        _DISCOVERED = True
    return dict(sorted(_REGISTRY.items()))


def get_spec(name: str) -> ScorerSpec:
    specs = scorer_specs()
    if name not in specs:
        raise ValueError(f"unknown scorer {name!r}; registered: {', '.join(specs)}")
    return specs[name]


def build_scorer(name: str, context: BuildContext, config: Any = None, /, **options: Any) -> Scorer:
    """Build the scorer ``name`` for ``context`` (from ``config``, or a config made of ``options``)."""
    spec = get_spec(name)
    if config is None:
        config = spec.make_config(**options)
    elif options:
        config = dataclasses.replace(config, **options)
    scorer = spec.build(context, config)
    if not isinstance(scorer, Scorer):
        raise TypeError(f"the builder of {name!r} returned {type(scorer).__name__}, not a Scorer")
    return scorer
