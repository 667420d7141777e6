"""``llmrec evaluate``: any registered scorers on one split and one candidate set, one table.

    llmrec evaluate --dataset amazon-scientific --split predefined \\
        --scorers popularity itemcf bm25 embedding sasrec learn --set sasrec.epochs=5
    llmrec evaluate --dataset amazon-games --mode sampled --num-negatives 19 --max-cases 100 \\
        --scorers popularity itemcf llmrank --set llmrank.mode=score
    llmrec evaluate --dataset ml-100k --split temporal --task pointwise --scorers item-prior tallrec

Every run goes through ``llmrec.run``: the same split, candidates, evaluator and report for every
scorer; the table and chart say full or sampled and how many users out of the total.
"""

from __future__ import annotations

import argparse


def scorer_options(names: list[str], assignments: dict[str, dict[str, str]]) -> dict[str, dict]:
    """Typed options per scorer from ``--set`` strings (checked against each scorer's config)."""
    from llmrec.cli.options import convert_value
    from llmrec.registry import get_spec

    out: dict[str, dict] = {}
    for scorer, values in assignments.items():
        spec = get_spec(scorer)
        if spec.config_cls is None:
            raise ValueError(f"scorer {scorer!r} takes no options (got {sorted(values)})")
        out[scorer] = {k: convert_value(spec.config_cls, k, v) for k, v in values.items()}
    unused = sorted(set(out) - set(names))
    if unused and not any(get_spec(n).composes for n in names):  # a hybrid's --set may name its parts
        raise ValueError(f"--set names scorers that are not evaluated: {unused}")
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.runargs import add_run_arguments
    from llmrec.registry import scorer_specs

    specs = scorer_specs()
    listing = "; ".join(f"{name}: {spec.description}" for name, spec in specs.items())
    parser = subparsers.add_parser(
        "evaluate", help="evaluate registered scorers on one split and candidate set (full, sampled, recalled, given)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scorers", nargs="+", default=["popularity", "itemcf", "embedding"], choices=list(specs),
                        metavar="SCORER", help=f"registered scorers to compare ({listing})")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="SCORER.OPTION=VALUE",
                        help="a scorer option, e.g. sasrec.epochs=5 or llmrank.mode=generate (repeatable); "
                             "options are each scorer's config fields")
    parser.add_argument("--load", action="append", default=[], metavar="SCORER=FOLDER",
                        help="evaluate a saved model instead of training one, e.g. sasrec=runs/sasrec")
    add_run_arguments(parser, dataset=None)
    for action in parser._actions:
        if action.dest == "dataset":
            action.required = True
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.cli.options import parse_assignments, parse_pairs
    from llmrec.cli.runargs import run_config_from_args
    from llmrec.run import run as run_path

    config = run_config_from_args(args)
    options = scorer_options(args.scorers, parse_assignments(args.settings, "--set"))
    load = parse_pairs(args.load, "--load")
    run_path(config, args.scorers, options=options, load=load)
    return 0
