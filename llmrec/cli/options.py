"""Turn a config dataclass (fields with ``metadata={"help": ...}``) into argparse flags and back.

One source of truth: the dataclass holds defaults and help text; the CLI never repeats them.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def _base_type(tp: Any) -> Any:
    """``int | None`` -> int; ``str`` -> str (string annotations are resolved by the caller)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return tp


def add_dataclass_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                            skip: tuple[str, ...] = ()) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        tp = _base_type(hints[f.name])
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
        elif typing.get_origin(tp) in (list, tuple):
            item = typing.get_args(tp)[0] if typing.get_args(tp) else str
            parser.add_argument(flag, dest=f.name, nargs="+", type=item, default=default,
                                help=f"{help_text} (default: {default})")
        else:
            parser.add_argument(flag, dest=f.name, type=tp if tp in (int, float, str) else str, default=default,
                                help=f"{help_text} (default: {default})")


def dataclass_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # T is a dataclass type by contract
    values = {f.name: getattr(args, f.name) for f in fields if f.init and hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)


def convert_value(cls: type, name: str, text: str) -> Any:
    """``text`` as the type of ``cls``'s field ``name`` ("none" -> None; lists comma-separated)."""
    hints = typing.get_type_hints(cls)
    if name not in hints:
        fields = sorted(f.name for f in dataclasses.fields(cls) if f.init)
        raise ValueError(f"{cls.__name__} has no option {name!r}; its options: {fields}")
    optional = type(None) in typing.get_args(hints[name])
    if optional and text.strip().lower() in ("none", "null", ""):
        return None
    tp = _base_type(hints[name])
    if tp is bool:
        if text.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"option {name!r} takes true or false, got {text!r}")
        return text.strip().lower() in ("true", "1", "yes")
    if typing.get_origin(tp) in (list, tuple):
        item = typing.get_args(tp)[0] if typing.get_args(tp) else str
        return [item(v) for v in text.split(",") if v]
    try:
        return tp(text) if tp in (int, float, str) else text
    except ValueError:
        raise ValueError(f"option {name!r} takes a {tp.__name__}, got {text!r}") from None


def parse_assignments(items: list[str] | None, what: str) -> dict[str, dict[str, str]]:
    """``["sasrec.epochs=5", "llmrank.mode=generate"]`` -> ``{"sasrec": {"epochs": "5"}, ...}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        scorer, dot, option = key.partition(".")
        if not sep or not dot or not scorer or not option:
            raise ValueError(f"{what} {item!r}: expected SCORER.OPTION=VALUE, e.g. sasrec.epochs=5")
        out.setdefault(scorer, {})[option.replace("-", "_")] = value
    return out


def parse_pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """``["sasrec=runs/sasrec"]`` -> ``{"sasrec": "runs/sasrec"}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{what} {item!r}: expected SCORER=FOLDER, e.g. sasrec=runs/sasrec")
        out[key] = value
    return out
