"""PTUM's second domain: next-item ranking on Amazon Scientific when only some users' sequences
are used for fine-tuning.

The source's predefined split (each user's validation event is the target; the real test part is
held back). PTUM is pretrained on every user's known events, unlabelled (both tasks, -masked,
-next-K). Then next-item prediction is fine-tuned on the sequences of a seeded share of the users
(1%, 10%, 100%: the "labels" here are next-item targets), from each pretrained encoder and from a
random one (scratch), and every model ranks the whole catalogue for all users through the one
``RankingEvaluator``. Popularity, item-CF and SASRec (trained on every user) sit in the same table.

    python benchmarks/bench_ptum_scientific.py --data-dir ../shared/data        # the recorded run
    python benchmarks/bench_ptum_scientific.py --quick --no-record              # proves it runs
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._record import markdown_table, record  # noqa: E402

VARIANTS = ("scratch", "pretrained", "-masked", "-next-K")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder holding amazon-scientific/")
    p.add_argument("--max-users", type=int, default=None, help="seeded user subsample (default: all 8,442)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--item-encoder", choices=["id", "text"], default="id")
    p.add_argument("--pretrain-epochs", type=float, default=20)
    p.add_argument("--next-item-epochs", type=float, default=5)
    p.add_argument("--sasrec-epochs", type=float, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest on the shared 2-core CPU)")
    p.add_argument("--quick", action="store_true", help="tiny sizes to prove the script runs: 1,000 users, short runs")
    p.add_argument("--no-record", action="store_true", help="print, do not record")
    args = p.parse_args(argv)
    if args.quick:
        args.max_users, args.fractions, args.seeds = 1000, [0.1, 1.0], [0, 1]
        args.d_model, args.pretrain_epochs, args.next_item_epochs, args.sasrec_epochs = 32, 2, 1, 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from llmrec.ptum import PTUMConfig, PTUMSequences, pretrain_ptum
    from llmrec.ptum.data import ItemVocabulary
    from llmrec.run import RunConfig, build_context, describe, load_split, make_evaluator

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    run_config = RunConfig(dataset="amazon-scientific", data_dir=args.data_dir, max_users=args.max_users,
                           part="test", mode="full", show_progress=False)
    split = load_split(run_config)
    print(describe(split), flush=True)
    quiet = {"save_steps": 0, "progress": False, "logging_steps": 10**9}
    base = PTUMConfig(d_model=args.d_model, epochs=args.pretrain_epochs, item_encoder=args.item_encoder, **quiet)
    pretraining = {"pretrained": base, "-masked": dataclasses.replace(base, masked_task=False),
                   "-next-K": dataclasses.replace(base, next_k_task=False)}
    with tempfile.TemporaryDirectory(prefix="bench-ptum-sci-") as tmp:
        speed, vocabulary = [], ItemVocabulary.from_split(split)
        pretrain_ptum(split, dataclasses.replace(base, max_steps=1, output_dir=f"{tmp}/warm-up"))  # untimed start-up
        for variant, settings in pretraining.items():
            config = dataclasses.replace(settings, output_dir=f"{tmp}/{variant}")
            windows = len(PTUMSequences.from_split(split, vocabulary, config))
            start = time.perf_counter()
            pretrain_ptum(split, config)
            seconds = time.perf_counter() - start
            speed.append({"pretraining": variant, "windows": windows, "epochs": config.epochs, "seconds": seconds,
                          "sequences/s": windows * config.epochs / seconds})
            print(f"pretraining '{variant}': {windows} windows in {seconds:.1f} s", flush=True)
        context = build_context(split, run_config)
        evaluator = make_evaluator(split, run_config, context)
        baselines = []
        sasrec = context.build("sasrec", epochs=args.sasrec_epochs, output_dir=f"{tmp}/sasrec", **quiet)
        for label, scorer in [("popularity", context.build("popularity")), ("item-CF", context.build("itemcf")),
                              (f"SASRec ({args.sasrec_epochs:g} epochs, every user)", sasrec)]:
            result = evaluator(scorer)
            baselines.append({"method": label, "cases": result["counts"]["cases"], "NDCG@10": result["ndcg@10"],
                              "Recall@10": result["recall@10"]})
            print(f"{label}: ndcg@10 {result['ndcg@10']:.4f}", flush=True)
        runs = []
        grid = list(itertools.product(args.fractions, args.seeds, VARIANTS))
        for fraction, seed, variant in tqdm(grid, desc="next-item fine-tuning"):
            loaded = build_context(split, run_config, load={} if variant == "scratch" else {"ptum": f"{tmp}/{variant}"})
            options = dict(quiet, d_model=args.d_model, item_encoder=args.item_encoder, seed=seed,
                           user_fraction=fraction, next_item_epochs=args.next_item_epochs,
                           pretrain=variant != "scratch", output_dir=f"{tmp}/ft-{variant}-{fraction:g}-{seed}")
            start = time.perf_counter()
            scorer = loaded.build("ptum", **options)
            seconds = time.perf_counter() - start
            result = evaluator(scorer)
            runs.append({"variant": variant, "user_fraction": fraction, "seed": seed, "seconds": seconds,
                         "ndcg@10": result["ndcg@10"], "recall@10": result["recall@10"],
                         "cases": result["counts"]["cases"]})
        n_users = split.dataset.n_users
        rows = []
        for fraction, variant in itertools.product(args.fractions, VARIANTS):
            group = [r for r in runs if (r["user_fraction"], r["variant"]) == (fraction, variant)]
            ndcg, recall = np.array([r["ndcg@10"] for r in group]), np.array([r["recall@10"] for r in group])
            rows.append({"users fine-tuned on": f"{fraction:.0%} ({max(1, round(fraction * n_users)):,})",
                         "encoder": variant, "cases": group[0]["cases"],
                         "NDCG@10": f"{ndcg.mean():.4f} ± {ndcg.std():.4f}",
                         "Recall@10": f"{recall.mean():.4f} ± {recall.std():.4f}"})
    minutes = (time.perf_counter() - started) / 60
    markdown = "\n\n".join([
        f"Next item, predefined split, **full** ranking (history excluded), all {baselines[0]['cases']:,} cases of "
        f"{n_users:,} users; PTUM mean ± std over seeds {', '.join(map(str, args.seeds))} (user subset, "
        "fine-tuning order, negatives and, for scratch, the initialisation):",
        markdown_table(rows, ["users fine-tuned on", "encoder", "cases", "NDCG@10", "Recall@10"]),
        "Baselines on the same split and candidates (trained on every user):",
        markdown_table(baselines, ["method", "cases", "NDCG@10", "Recall@10"]),
        "Pretraining throughput on this machine:",
        markdown_table(speed, ["pretraining", "windows", "epochs", "seconds", "sequences/s"], floatfmt=".1f")])
    notes = (f"Settings: PTUM d {base.d_model}, {base.n_layers} blocks, item encoder {base.item_encoder}, "
             f"{args.pretrain_epochs:g} pretraining epochs on every user's known events (no target), then "
             f"{args.next_item_epochs:g} next-item epochs (lr {base.finetune_learning_rate:g}, "
             f"{base.next_negatives} sampled negatives) on the users' share; SASRec {args.sasrec_epochs:g} epochs; "
             f"torch threads {args.threads}; whole run {minutes:.1f} min. The held-out test part of the source is "
             "not read.")
    print("\n" + markdown + "\n\n" + notes)
    if not args.no_record:
        command = "python benchmarks/bench_ptum_scientific.py " + " ".join(argv if argv is not None else sys.argv[1:])
        record("ptum_scientific", "PTUM, second domain (Amazon Scientific next item from a share of the users)",
               command.strip(), markdown, {"runs": runs, "baselines": baselines, "throughput": speed,
                                           "sizes": {"amazon-scientific": {"users": n_users}},
                                           "settings": vars(args)}, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
