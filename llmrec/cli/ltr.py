"""``llmrec ltr``: train the learned hybrid ranker and evaluate it beside the scorers it combines.

    llmrec ltr --dataset amazon-games --split predefined --mode sampled --num-negatives 19 \\
        --max-cases 200 --features popularity itemcf bm25 embedding sasrec llmrank \\
        --set sasrec.epochs=5 --set llmrank.max_history=10 --output-dir runs/ltr/games

The ranking model (LambdaMART, or ``--model logistic``) learns from training users' last known items
with every feature scorer built on the events before them; it is saved in ``--output-dir`` with the
trained feature models, and ``llmrec evaluate --scorers ltr --load ltr=FOLDER`` reuses it. With
``--compare`` each feature scorer is evaluated alone in the same table (the proof rule: the hybrid
beside its parts on the same cases and lists), and ``--ablate NAME`` adds the hybrid refitted
without NAME (e.g. the LLM feature) on the same fitting lists.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.runargs import method_flags
    from llmrec.ltr.config import LTRConfig

    parser = subparsers.add_parser(
        "ltr", help="train the learned hybrid ranker (LambdaMART over every scorer, LLM included) and evaluate it",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    method_flags(parser, LTRConfig, "learned hybrid ranker")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="SCORER.OPTION=VALUE",
                        help="an option of a feature scorer, e.g. sasrec.epochs=5 or llmrank.mode=first-token")
    parser.add_argument("--compare", action="store_true", help="also evaluate every feature scorer alone")
    parser.add_argument("--ablate", action="append", default=[], metavar="SCORER",
                        help="also evaluate the hybrid refitted without this feature scorer (repeatable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from llmrec.cli.evaluate import scorer_options
    from llmrec.cli.options import parse_assignments
    from llmrec.cli.runargs import run_config_from_args
    from llmrec.ltr.config import LTRConfig
    from llmrec.ltr.model import LTRScorer
    from llmrec.run import build_context, load_split
    from llmrec.run import run as run_path

    ltr_config = LTRConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(LTRConfig) if f.init})
    unknown = sorted(set(args.ablate) - set(ltr_config.features))
    if unknown:
        raise ValueError(f"--ablate names scorers that are not features: {unknown} (features: {ltr_config.features})")
    options = scorer_options(["ltr"], parse_assignments(args.settings, "--set"))
    config = run_config_from_args(args)
    if config.out_dir is None:
        config.out_dir = args.load or ltr_config.output_dir
    split = load_split(config)
    context = build_context(split, config, {**options, "ltr": dataclasses.asdict(ltr_config)},
                            {"ltr": args.load} if args.load else {})
    hybrid = context.build("ltr")
    if args.ablate and not isinstance(hybrid, LTRScorer):
        raise ValueError("--ablate needs a hybrid trained in this run (not --load)")
    scorers = list(getattr(hybrid, "scorers", [])) if args.compare else []
    extra = [hybrid.without([name], ltr_config, name=f"{ltr_config.name} without {name}")
             for name in args.ablate if isinstance(hybrid, LTRScorer)]
    run_path(config, [*scorers, hybrid, *extra], split=split)
    return 0
