"""``llmrec data``: look at and split the registered data sets.

    llmrec data list
    llmrec data info  --dataset ml-100k [--data-dir D] [--no-download] [--on-unknown-items drop] [--json]
    llmrec data split --dataset ml-100k --split temporal --out DIR [--test-ratio 0.3] ...

A MovieLens set is downloaded only when its folder is absent (``--no-download``: never); a folder
that exists but lacks files is an error naming them. ``--on-unknown-items drop`` drops and counts
interactions that name items missing from the catalogue instead of stopping at the first.

``split`` writes DIR/train.csv, valid.csv, test.csv (each atomically) and DIR/summary.json, and
prints the split's summary (sizes, training items, cold-start test items).
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.data.splits import SPLITS

    parser = subparsers.add_parser("data", help="list, describe and split data sets", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    data_dir_help = "folder holding the data sets (default: $LLMREC_DATA_DIR, else ~/.cache/llmrec/data)"
    listing = actions.add_parser("list", help="the data sets load_dataset knows, and whether they are here")
    listing.add_argument("--data-dir", default=None, help=data_dir_help)
    listing.set_defaults(func=run_list)

    commands = (("info", "print a data set's summary", run_info),
                ("split", "split a data set and write train/valid/test CSV files", run_split))
    for name, helptext, func in commands:
        sub = actions.add_parser(name, help=helptext)
        sub.add_argument("--dataset", required=True, help="a registered data set (see `llmrec data list`)")
        sub.add_argument("--data-dir", default=None, help=data_dir_help)
        sub.add_argument("--no-download", action="store_true",
                         help="never download; fail if the files are absent")
        sub.add_argument("--on-unknown-items", choices=["error", "drop"], default="error",
                         help="interactions naming items missing from the catalogue stop the load (error, "
                              "the default) or are dropped and counted (drop)")
        sub.set_defaults(func=func)
        if name == "info":
            sub.add_argument("--json", action="store_true", help="print the summary as JSON")
        else:
            sub.add_argument("--split", required=True, choices=sorted(SPLITS), help="how to split")
            sub.add_argument("--out", required=True, help="output folder for train.csv, valid.csv, test.csv")
            sub.add_argument("--test-ratio", type=float, default=None,
                             help="temporal / random: share of events in test")
            sub.add_argument("--valid-ratio", type=float, default=None,
                             help="temporal: share of events in valid")
            sub.add_argument("--min-events", type=int, default=None,
                             help="leave_one_out: users with fewer events stay in train")
            sub.add_argument("--seed", type=int, default=None, help="random: seed")


def _load(args: argparse.Namespace):
    from llmrec.data.registry import load_dataset

    return load_dataset(args.dataset, args.data_dir, download=not args.no_download,
                        on_unknown_items=args.on_unknown_items)


def _print_table(summary: dict) -> None:
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        print(f"{key:<{width}}  {shown}")


def run_list(args: argparse.Namespace) -> int:
    from llmrec.data.paths import resolve_data_dir
    from llmrec.data.registry import DATASETS, find_folder

    root = resolve_data_dir(args.data_dir)
    for spec in DATASETS.values():
        folder = find_folder(spec, root)
        state = f"present in {folder}" if folder else ("downloadable" if spec.downloadable else "absent")
        print(f"{spec.name:<18} {state}\n{'':<18} {spec.description}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    summary = _load(args).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(summary)
    return 0


def run_split(args: argparse.Namespace) -> int:
    from llmrec.data.splits import SPLITS, make_split
    from llmrec.utils.io import atomic_write, write_json

    dataset = _load(args)
    accepted = inspect.signature(SPLITS[args.split]).parameters
    options = {"test_ratio": args.test_ratio, "valid_ratio": args.valid_ratio, "min_events": args.min_events,
               "seed": args.seed}
    given = {k: v for k, v in options.items() if v is not None}
    ignored = [k for k in given if k not in accepted]
    if ignored:
        raise SystemExit(f"llmrec data split: error: --{ignored[0].replace('_', '-')} does not apply to "
                         f"--split {args.split}")
    split = make_split(dataset, args.split, **given)
    out = Path(args.out)
    for part in ("train", "valid", "test"):
        with atomic_write(out / f"{part}.csv") as handle:
            getattr(split, part).to_csv(handle, index=False)
    summary = {"dataset": dataset.name, **split.summary(), "options": given}
    write_json(out / "summary.json", summary)
    _print_table(summary)
    print(f"wrote {out / 'train.csv'}, {out / 'valid.csv'}, {out / 'test.csv'}")
    return 0
