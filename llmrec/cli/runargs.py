"""Flags and glue shared by the commands that evaluate (evaluate, learn, sasrec, rerank): every one
of them builds a ``llmrec.run.RunConfig`` from the same flags and calls ``llmrec.run.run``."""

from __future__ import annotations

import argparse
import dataclasses

from llmrec.cli.options import add_dataclass_arguments, dataclass_from_args


def add_run_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = (), **defaults) -> None:
    """The RunConfig flags (data, split, candidates, evaluation); ``skip`` leaves out flags a
    method's own config also has (e.g. ``seed``, ``batch_size``), which then keep RunConfig's default."""
    from llmrec.data.splits import SPLIT_HELP
    from llmrec.run import RunConfig

    group = parser.add_argument_group("data, split, candidates and evaluation")
    add_dataclass_arguments(group, RunConfig, skip=skip)
    for action in group._group_actions:
        if action.dest == "split":
            action.help = f"{SPLIT_HELP} (default: %(default)s)"
    parser.set_defaults(**defaults)


def run_config_from_args(args: argparse.Namespace, **overrides):
    from llmrec.run import RunConfig

    return dataclass_from_args(RunConfig, args, **overrides)


def method_flags(parser: argparse.ArgumentParser, config_cls: type, title: str) -> None:
    """A method's config fields as flags, next to the RunConfig flags they do not repeat."""
    from llmrec.run import RunConfig

    shared = {f.name for f in dataclasses.fields(RunConfig)}
    add_run_arguments(parser, skip=tuple(f.name for f in dataclasses.fields(config_cls) if f.name in shared),
                      dataset="amazon-scientific", out_dir=None)
    parser.add_argument("--load", default=None, help="evaluate a model saved in this folder instead of training one")
    add_dataclass_arguments(parser.add_argument_group(title), config_cls)


def run_method(args: argparse.Namespace, name: str) -> int:
    """Evaluate one registered trained method from its own flags (``llmrec learn | sasrec``)."""
    from llmrec.registry import get_spec
    from llmrec.run import run as run_path

    spec = get_spec(name)
    if spec.config_cls is None:
        raise ValueError(f"scorer {name!r} has no config to read flags into")
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(spec.config_cls) if f.init}
    config = run_config_from_args(args)
    if config.out_dir is None:  # metrics beside the model they measure
        config.out_dir = args.load or options.get("output_dir") or f"outputs/{name}"
    run_path(config, [name], options={name: options}, load={name: args.load} if args.load else {})
    return 0
