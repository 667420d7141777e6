"""``llmrec ptum pretrain | finetune``: PTUM, a user model pretrained on unlabelled behaviour
sequences (masked and next-K behaviour prediction), then fine-tuned where labels are few.

* ``pretrain``: pretrain on the events known before the evaluated part, save, and evaluate the
  pretrained user vector as a next-item scorer on the one path (``llmrec evaluate --scorers ptum``).
* ``finetune --task demographics``: gender / age band / occupation of MovieLens users from a
  fraction of the labelled training users, from a pretrained encoder (``--load``) or from scratch
  (``--scratch``); prints accuracy, macro-F1 and AUC per seed and their mean, and writes JSON.
  ``--holdout valid`` evaluates on a slice of the training users instead of the test users, for
  choosing settings (``--finetune-encoder``, epochs, learning rate) without touching the test users.
* ``finetune --task next-item --load DIR --next-item-epochs N``: fine-tune a pretrained encoder on
  next-item prediction (``--user-fraction``: from a seeded share of the users; ``--no-pretrain``
  instead of ``--load``: from a random encoder) and evaluate it on the one path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

TASKS = ("demographics", "next-item")


def register(subparsers: argparse._SubParsersAction) -> None:
    import dataclasses

    from llmrec.cli.options import add_dataclass_arguments
    from llmrec.cli.runargs import add_run_arguments, method_flags
    from llmrec.ptum.config import PTUMConfig
    from llmrec.ptum.data import HOLDOUTS, TARGETS
    from llmrec.run import RunConfig

    parser = subparsers.add_parser("ptum", help="PTUM: pretrain a user model on behaviours, fine-tune with few labels",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="ptum_command", metavar="ACTION", required=True)

    pretrain = sub.add_parser("pretrain", help="pretrain on the known events, save, evaluate as a next-item scorer")
    method_flags(pretrain, PTUMConfig, "PTUM model, pretraining tasks and training")
    pretrain.set_defaults(func=run_pretrain, dataset="ml-100k")

    finetune = sub.add_parser("finetune", help="fine-tune on demographics (few labels) or next-item prediction")
    # method_flags' layout, without RunConfig's --task (ranking / pointwise): here --task names the
    # fine-tuning task, and next-item evaluation is always ranking.
    shared = {f.name for f in dataclasses.fields(RunConfig)}
    add_run_arguments(finetune, skip=(*(f.name for f in dataclasses.fields(PTUMConfig) if f.name in shared), "task"),
                      dataset="ml-100k", out_dir=None)
    finetune.add_argument("--load", default=None, help="the pretrained model folder (written by `ptum pretrain`)")
    add_dataclass_arguments(finetune.add_argument_group("PTUM model, pretraining tasks and training"), PTUMConfig)
    task = finetune.add_argument_group("fine-tuning task")
    task.add_argument("--task", dest="ptum_task", choices=TASKS, default="demographics")
    task.add_argument("--target", choices=TARGETS, default="gender", help="demographics: the user label to predict")
    task.add_argument("--label-fraction", type=float, nargs="+", default=[0.01],
                      help="demographics: share(s) of the training users whose label is used (default: 0.01)")
    task.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                      help="demographics: seeds of the user split, the head and (with --scratch) the encoder")
    task.add_argument("--holdout", choices=HOLDOUTS, default="test",
                      help="demographics: evaluate on the test users, or (valid) on a slice of the training users "
                           "with the test users left out, for tuning")
    task.add_argument("--scratch", action="store_true",
                      help="demographics: fine-tune a randomly initialised encoder instead of --load")
    task.add_argument("--out", type=Path, default=None,
                      help="demographics: JSON results file (default: outputs/ptum/demographics-TARGET.json)")
    finetune.set_defaults(func=run_finetune)


def run_pretrain(args: argparse.Namespace) -> int:
    from llmrec.cli.runargs import run_method

    return run_method(args, "ptum")


def run_finetune(args: argparse.Namespace) -> int:
    from llmrec.cli.runargs import run_method

    if args.ptum_task == "next-item":
        if bool(args.load) == (not args.pretrain) or args.next_item_epochs <= 0:
            raise ValueError("--task next-item needs --next-item-epochs > 0 and exactly one of --load PRETRAINED_DIR "
                             "and --no-pretrain (from scratch)")
        if args.out_dir is None:  # metrics beside the fine-tuned model, not over the pretrained one's
            args.out_dir = f"{args.output_dir}/next-item"
        return run_method(args, "ptum")
    if bool(args.load) == bool(args.scratch):
        raise ValueError("--task demographics needs exactly one of --load PRETRAINED_DIR and --scratch")
    return run_demographics(args)


def run_demographics(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from llmrec.cli.options import dataclass_from_args
    from llmrec.cli.runargs import run_config_from_args
    from llmrec.ptum import PTUM, ItemVocabulary, PTUMConfig, finetune_ptum, new_encoder
    from llmrec.run import describe, load_split
    from llmrec.utils.io import write_json

    config = dataclass_from_args(PTUMConfig, args)
    run_config = run_config_from_args(args)
    split = load_split(run_config)
    print(describe(split))
    if args.load:
        pretrained, items = PTUM.from_pretrained(args.load)
        vocabulary = ItemVocabulary(items)
    else:
        vocabulary = ItemVocabulary.from_split(split, run_config.part)
    encoder_name = "scratch" if args.scratch else f"pretrained ({args.load})"
    results = []
    runs = [(fraction, seed) for fraction in args.label_fraction for seed in args.seeds]
    for fraction, seed in tqdm(runs, desc=f"fine-tuning on {args.target}", disable=not config.progress):
        encoder = new_encoder(split, config, vocabulary, seed=seed) if args.scratch else pretrained
        result = finetune_ptum(split, config, encoder, vocabulary, args.target, fraction, seed, run_config.part,
                               holdout=args.holdout)
        results.append({"encoder": encoder_name, **result})
    lines = [f"{'fraction':>8} {'seed':>4} {'train':>5} {args.holdout:>5} {'accuracy':>8} {'macro-F1':>8} {'AUC':>8} "
             f"{'majority':>8}"]
    lines += [f"{r['label_fraction']:>8g} {r['seed']:>4} {r['train_users']:>5} {r['test_users']:>5} "
              f"{r['accuracy']:>8.4f} {r['macro_f1']:>8.4f} {r['auc']:>8.4f} {r['majority_accuracy']:>8.4f}"
              for r in results]
    summary = []
    for fraction in args.label_fraction:
        rows = [r for r in results if r["label_fraction"] == fraction]
        acc, f1 = np.array([r["accuracy"] for r in rows]), np.array([r["macro_f1"] for r in rows])
        auc = np.array([r["auc"] for r in rows])
        summary.append({"label_fraction": fraction, "seeds": len(rows), "accuracy_mean": float(acc.mean()),
                        "accuracy_std": float(acc.std()), "macro_f1_mean": float(f1.mean()),
                        "macro_f1_std": float(f1.std()), "auc_mean": float(auc.mean()), "auc_std": float(auc.std())})
        lines.append(f"{fraction:>8g} mean {'':>11} {acc.mean():.4f}±{acc.std():.4f} {f1.mean():.4f}±{f1.std():.4f} "
                     f"{auc.mean():.4f}±{auc.std():.4f}")
    print(f"{args.target}, {encoder_name}, evaluated on the {args.holdout} users:")
    print("\n".join(lines))
    out = args.out or Path("outputs/ptum") / f"demographics-{args.target}.json"
    write_json(out, {"task": "demographics", "target": args.target, "encoder": encoder_name, "holdout": args.holdout,
                     "dataset": split.dataset.name, "split": split.name, "config": config.to_dict(),
                     "results": results, "summary": summary})
    print(f"wrote {out}")
    return 0
