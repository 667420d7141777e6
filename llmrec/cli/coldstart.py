"""``llmrec coldstart enrich | simulate | evaluate``: the generation paradigm's cold-start recipes.

    llmrec coldstart enrich --dataset ml-100k --split temporal --out outputs/coldstart/enriched.csv
    llmrec coldstart simulate --dataset ml-100k --split temporal --out outputs/coldstart/simulated.csv
    llmrec coldstart evaluate --dataset ml-100k --split temporal \\
        --enriched-text outputs/coldstart/enriched.csv --simulated-events outputs/coldstart/simulated.csv

``enrich``: a packaged LLM describes the cold-start items (catalogue items without a known event);
answers are validated, cached and resumable. ``simulate``: the LLM's P(Yes) for users pre-filtered
by embedding similarity turns into simulated interactions on those items, from known events only.
``evaluate``: popularity, newest-first, item-CF, the text ranker, the hybrid and its LLM variants on
one split, with all / warm / long-tail / cold-start rows (see llmrec.coldstart.evaluate).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from llmrec.cli.options import add_dataclass_arguments, dataclass_from_args

DICT_FIELDS = ("embedding",)  # dict options have no flag; the Python API takes them


def _shared(config_cls: type) -> tuple[str, ...]:
    from llmrec.run import RunConfig

    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    return tuple(f.name for f in dataclasses.fields(config_cls) if f.name in run_fields)


def _add(subparsers: argparse._SubParsersAction, name: str, help_text: str, config_cls: type, func,
         out: bool = True) -> None:
    from llmrec.cli.runargs import add_run_arguments

    parser = subparsers.add_parser(name, help=help_text, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, skip=_shared(config_cls), dataset="ml-100k", split="temporal",
                      out_dir="outputs/coldstart")
    add_dataclass_arguments(parser.add_argument_group(f"{name} options"), config_cls, skip=DICT_FIELDS)
    if out:
        parser.add_argument("--out", default=None,
                            help="file to write (default: <out-dir>/<dataset>_<command>_<model>.csv)")
    parser.set_defaults(func=func, config_cls=config_cls)


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.coldstart.enrich import EnrichConfig
    from llmrec.coldstart.evaluate import ColdStartEvalConfig
    from llmrec.coldstart.simulate import SimulateConfig

    parser = subparsers.add_parser("coldstart", help="cold-start items: LLM-enriched text, simulated interactions, "
                                   "the hybrid's comparison", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="coldstart_command", metavar="STEP", required=True)
    _add(commands, "enrich", "an LLM describes the cold-start items (validated, cached, resumable)", EnrichConfig,
         run_enrich)
    _add(commands, "simulate", "LLM-simulated interactions on the cold-start items (known events only)",
         SimulateConfig, run_simulate)
    _add(commands, "evaluate", "baselines, the hybrid and its LLM variants on one split", ColdStartEvalConfig,
         run_evaluate, out=False)


def _configs(args: argparse.Namespace):
    from llmrec.cli.runargs import run_config_from_args

    return run_config_from_args(args), dataclass_from_args(args.config_cls, args)


def _out(args: argparse.Namespace, run_config, step: str, model: str) -> Path:
    if args.out:
        return Path(args.out)
    tag = Path(model).name.replace(".gguf", "")
    return Path(run_config.out_dir or ".") / f"{run_config.dataset}_{step}_{tag}.csv"


def run_enrich(args: argparse.Namespace) -> int:
    from llmrec.coldstart.enrich import enrich_items, select_item_ids
    from llmrec.coldstart.files import write_enriched
    from llmrec.run import load_split

    run_config, config = _configs(args)
    split = load_split(run_config)
    ids = select_item_ids(split, config.items, run_config.part)
    print(f"enriching {len(ids)} {config.items} items of {split.dataset.name} with {config.model} ...")
    result = enrich_items(split.dataset, ids, config)
    path = write_enriched(_out(args, run_config, "enriched", config.model), result)
    print(json.dumps(result.summary(), indent=1))
    for item_id, text in list(result.texts.items())[:3]:
        print(f"  {item_id}: {text}")
    print(f"wrote {path}")
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from llmrec.coldstart.files import write_simulated
    from llmrec.coldstart.simulate import simulate_interactions
    from llmrec.run import load_split

    run_config, config = _configs(args)
    split = load_split(run_config)
    print(f"simulating interactions on the cold-start items of {split.dataset.name} with {config.model} ...")
    result = simulate_interactions(split, config, part=run_config.part)
    path = write_simulated(_out(args, run_config, "simulated", config.model), result)
    print(json.dumps(result.summary(), indent=1))
    print(f"wrote {path}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from llmrec.coldstart.evaluate import evaluate_coldstart

    run_config, config = _configs(args)
    evaluate_coldstart(run_config, config)
    return 0
