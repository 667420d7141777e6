"""DIEN ablation on a CTR set (MovieLens 100K clicks, or Amazon Scientific / Games): interest evolution
by GRU + attention pooling, AIGRU, AGRU, AUGRU, and the auxiliary loss on / off, AUC ± std over
seeds, next to popularity, item-CF and SASRec.

CTR set (``llmrec.data.ctr.clicks_dataset``): on MovieLens 100K ratings of 4 or 5 are clicks and the
other ratings are dropped; the Amazon files hold reviews without ratings, so every review is a click.
Per user time-ordered; leave-one-out (each user's last click is the test target,
the rest is known; histories hold only earlier clicks). Test pairs (``llmrec.eval.ctr``): every
user's held-out click (label 1) and one item sampled uniformly from the catalogue minus the user's
history and the click (label 0), seeded per case, the same pairs for every model. AUC and log loss
come from the pointwise evaluator. Training reads only the known clicks; every model is trained once
per seed.

    python benchmarks/bench_dien.py                       # the recorded run
    python benchmarks/bench_dien.py --dataset amazon-scientific   # the Amazon record
    python benchmarks/bench_dien.py --quick --no-record   # proves it runs

Each data set has its own record (``dien_ablation`` for MovieLens, ``dien_ablation_<dataset>`` for the
others); ``--merge`` merges into the record of the data set it runs on.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._record import RESULTS_DIR, markdown_table, record  # noqa: E402

SASREC = "SASRec (dot product as the score)"

DATASETS = {  # name -> (category column, how clicks are defined, record title)
    "ml-100k": ("genres", "ratings of 4 or 5 are clicks, the others are dropped", "MovieLens 100K clicks"),
    "amazon-scientific": ("category", "every review is a click (the files hold no ratings)", "Amazon Scientific"),
    "amazon-games": ("genres", "every review is a click (the files hold no ratings; no category: one for all)",
                     "Amazon Games"),
}

VARIANTS = {  # label -> (evolution, auxiliary loss)
    "GRU + attention pooling": ("gru", False),
    "AIGRU": ("aigru", False),
    "AGRU": ("agru", False),
    "AUGRU": ("augru", False),
    "GRU + attention pooling + aux loss": ("gru", True),
    "AUGRU + aux loss (DIEN)": ("augru", True),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder holding the data sets (default: $LLMREC_DATA_DIR)")
    p.add_argument("--dataset", default="ml-100k", choices=list(DATASETS), help="the CTR set's source")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=5e-3)
    p.add_argument("--max-len", type=int, default=20, help="most recent clicks a history holds")
    p.add_argument("--sasrec-epochs", type=float, default=10)
    p.add_argument("--max-users", type=int, default=None, help="seeded user subsample (default: all users)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--merge", action="store_true",
                   help="keep the stored record's runs of the methods not run now (run the ablation in parts, "
                        "each under ~10 minutes)")
    p.add_argument("--skip-baselines", action="store_true", help="do not rerun popularity, item-CF and SASRec")
    p.add_argument("--quick", action="store_true", help="100 users, 20 steps, 1 seed: proves the script runs")
    p.add_argument("--no-record", action="store_true", help="print, do not record")
    args = p.parse_args(argv)
    if args.quick:
        args.max_users, args.seeds, args.epochs, args.sasrec_epochs = 100, [1], 0.2, 1
    return args


def record_name(dataset: str) -> str:
    return "dien_ablation" if dataset == "ml-100k" else "dien_ablation_" + dataset.replace("-", "_")


def aggregate(method: str, runs: list[dict]) -> dict:
    """Mean and standard deviation over the seeds of one method."""
    aucs = [r["auc"] for r in runs]
    losses = [r["logloss"] for r in runs if r.get("logloss") is not None]
    per_epoch = [r["train_seconds"] / r["epochs"] for r in runs if r.get("epochs")]
    return {"method": method, "seeds": len(runs), "AUC": statistics.mean(aucs),
            "AUC std": statistics.stdev(aucs) if len(aucs) > 1 else 0.0,
            "log loss": statistics.mean(losses) if losses else None,
            "seconds per epoch": statistics.mean(per_epoch) if per_epoch else None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from llmrec.data.ctr import clicks_dataset
    from llmrec.data.registry import load_dataset
    from llmrec.data.schema import subsample_users
    from llmrec.data.splits import leave_one_out_split
    from llmrec.eval.ctr import ctr_evaluator
    from llmrec.registry import BuildContext, build_scorer

    torch.set_num_threads(args.threads)
    category_column, click_rule, title = DATASETS[args.dataset]
    data = load_dataset(args.dataset, args.data_dir)
    if args.max_users:
        data = subsample_users(data, args.max_users, seed=0)
    clicks = clicks_dataset(data)
    split = leave_one_out_split(clicks)
    evaluator = ctr_evaluator(split, show_progress=False, batch_size=512)
    context = BuildContext(split, show_progress=False)
    quiet = {"save_steps": 0, "progress": False, "logging_steps": 10**9}
    stored_path = RESULTS_DIR / f"{record_name(args.dataset)}.json"
    stored = json.loads(stored_path.read_text())["data"] if args.merge and stored_path.exists() else {}
    first = evaluator(build_scorer("popularity", context))
    runs: list[dict] = []

    def keep(result: dict, method: str, seed: int | None, seconds: float, epochs: float | None) -> None:
        runs.append({"method": method, "seed": seed, "auc": result["auc"], "logloss": result["logloss"],
                     "train_seconds": seconds, "epochs": epochs})
        print(runs[-1], flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-dien-") as tmp:
        if not args.skip_baselines:
            keep(first, "popularity", None, 0.0, None)
            keep(evaluator(build_scorer("itemcf", context)), "itemcf", None, 0.0, None)
            for seed in args.seeds:
                start = time.perf_counter()
                scorer = build_scorer("sasrec", context, epochs=args.sasrec_epochs, seed=seed,
                                      output_dir=f"{tmp}/sasrec-{seed}", **quiet)
                keep(evaluator(scorer), SASREC, seed, time.perf_counter() - start, args.sasrec_epochs)
        for label in args.variants:
            evolution, aux = VARIANTS[label]
            for seed in args.seeds:
                start = time.perf_counter()
                scorer = build_scorer("dien", context, evolution=evolution, aux_loss=aux, seed=seed,
                                      category_column=category_column,
                                      epochs=args.epochs, batch_size=args.batch_size, max_len=args.max_len,
                                      learning_rate=args.learning_rate,
                                      output_dir=f"{tmp}/dien-{evolution}-{aux}-{seed}", **quiet)
                keep(evaluator(scorer), f"DIEN: {label}", seed, time.perf_counter() - start, args.epochs)
    fresh = {r["method"] for r in runs}
    runs = [r for r in stored.get("runs", []) if r["method"] not in fresh] + runs
    order = ["popularity", "itemcf", SASREC] + [f"DIEN: {label}" for label in VARIANTS]
    rows = [aggregate(method, [r for r in runs if r["method"] == method]) for method in order
            if any(r["method"] == method for r in runs)]
    by = {r["method"]: r["AUC"] for r in rows}
    order = [label for label in ("AUGRU", "AGRU", "AIGRU", "GRU + attention pooling") if f"DIEN: {label}" in by]
    ranking = sorted(order, key=lambda label: -by[f"DIEN: {label}"])
    findings = [f"Evolution layers by mean AUC: {' > '.join(ranking)} (paper: AUGRU > AGRU > AIGRU > GRU)."]
    if "DIEN: AUGRU" in by and "DIEN: AUGRU + aux loss (DIEN)" in by:
        gain = by["DIEN: AUGRU + aux loss (DIEN)"] - by["DIEN: AUGRU"]
        findings.append(f"Auxiliary loss on AUGRU: {gain:+.4f} AUC (paper: it helps).")
    counts, population = first["counts"], first["population"]
    pop = data.population()
    subsample = (f" (a seeded subsample of {args.max_users:,} users, seed 0, to fit the CPU)"
                 if args.max_users and args.max_users < pop["users_total"] else "")
    notes = " ".join(findings) + (
        f" {title}: {click_rule}. Population: {population['users_evaluated']:,} of {pop['users_total']:,} "
        f"users{subsample} (a user with fewer than 3 clicks is not evaluated), {len(split.train):,} training clicks, "
        f"{len(evaluator.items):,} test pairs ({counts['label']}); leave-one-out over clicks, which trains on the "
        f"future of other users (the literature's protocol). DIEN: item + category ('{category_column}', first "
        "comma-separated value) embeddings of 18 each, GRU "
        f"width 36, attention MLP 80-40, top MLP 200-80 (PReLU), {args.epochs:g} epochs, batch "
        f"{args.batch_size}, histories of the last {args.max_len} clicks, AdamW lr {args.learning_rate:g} (linear "
        f"decay), seeds {args.seeds} (every "
        "part of a merged run uses the same settings, none tuned on this test); no "
        "user-ID embedding (a scorer knows a user by their history). A difference smaller than about two "
        "standard deviations is within seed noise. Popularity / item-CF are deterministic (1 run); SASRec scores "
        f"a pair by its next-item dot product ({args.sasrec_epochs:g} epochs). Seconds per epoch: wall clock on "
        f"this CPU, {args.threads} thread(s), shared with other jobs whose load changed during the run, so the "
        "time column compares rows only roughly.")
    markdown = markdown_table(rows, ["method", "seeds", "AUC", "AUC std", "log loss", "seconds per epoch"])
    print("\n" + markdown + "\n\n" + notes)
    if not args.no_record:
        command = "python benchmarks/bench_dien.py " + shlex.join(argv if argv is not None else sys.argv[1:])
        commands = [*stored.get("commands", []), command.strip()]
        record(record_name(args.dataset), f"DIEN ablation: interest evolution and auxiliary loss ({title}, AUC)",
               " ; ".join(commands), markdown, {"rows": rows, "runs": runs, "counts": counts,
                                               "population": population, "commands": commands, "settings": vars(args)},
               notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
