"""PTUM on MovieLens 100K: user demographics from few labels, and next-item recommendation.

One leave-one-out split of ML-100K (each user's last event is the next-item target; models learn
from the events before it, ``split.known('test')``). PTUM is pretrained three times on those
events: both tasks, without masked behaviour prediction (-masked) and without next-K prediction
(-next-K); each pretraining's throughput (windows per second) is recorded.

* Demographics (gender, age band): labelled users are split by user, seeded (20% test); a label
  fraction (1%, 10%, 100%) of the other users keeps its label. Each encoder (scratch, pretrained,
  -masked, -next-K) gets a linear head and is fine-tuned on those users; accuracy and macro-F1 on
  the test users, mean ± std over the seeds (each seed: another user split, head and scratch init;
  the pretrained encoders are pretrained once).
* Next item: PTUM's pretrained user vector, and the same after next-item fine-tuning, beside SASRec
  (``context.build("sasrec")``) and popularity, all through the one ``RankingEvaluator`` (full
  ranking, history excluded).

``--holdout valid`` is the tuning run: the test users are left out, a slice of the training users
is evaluated instead, the next-item part is skipped, and the record is ``ptum_valid``. Settings
(``--finetune-encoder``, epochs) are chosen there and then run once with ``--holdout test``.

    python benchmarks/bench_ptum.py --data-dir ../shared/data --holdout valid --finetune-encoder full frozen
    python benchmarks/bench_ptum.py --data-dir ../shared/data          # the recorded run
    python benchmarks/bench_ptum.py --quick --no-record                # proves it runs (minutes)
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
BASELINE = "bag-of-items LR"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder holding ml-100k/")
    p.add_argument("--max-users", type=int, default=None, help="seeded user subsample (default: all 943)")
    p.add_argument("--targets", nargs="+", default=["gender", "age"])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--pretrain-epochs", type=float, default=20)
    p.add_argument("--finetune-epochs", type=float, default=30)
    p.add_argument("--next-item-epochs", type=float, default=5)
    p.add_argument("--sasrec-epochs", type=float, default=20)
    p.add_argument("--finetune-encoder", nargs="+", default=["full"], choices=["full", "frozen"],
                   help="demographics: fine-tune the encoder with the head (full), or the head only (frozen)")
    p.add_argument("--holdout", choices=["test", "valid"], default="test",
                   help="demographics evaluated on the test users, or (valid, for tuning) on a slice of the "
                        "training users with no test user read and no next-item part")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest on the shared 2-core CPU)")
    p.add_argument("--quick", action="store_true",
                   help=("tiny sizes to prove the script runs: 300 users, gender, 10%% and 100%%, 2 seeds, "
                         "short runs"))
    p.add_argument("--no-record", action="store_true", help="print, do not record")
    args = p.parse_args(argv)
    if args.quick:
        args.max_users, args.targets, args.fractions, args.seeds = 300, ["gender"], [0.1, 1.0], [0, 1]
        args.d_model, args.pretrain_epochs, args.finetune_epochs = 32, 2, 10
        args.next_item_epochs, args.sasrec_epochs = 1, 2
    return args


def bag_of_items(split, vocabulary, target: str, fraction: float, seed: int, max_len: int, test_share: float,
                 holdout: str) -> dict:
    """The non-neural baseline on the same users and the same recent events: logistic regression
    (scikit-learn) on which items each user's events name."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from llmrec.ptum.data import demographic_data
    from llmrec.ptum.train import demographic_metrics

    data = demographic_data(split, vocabulary, target, fraction, seed, max_len, test_share, holdout=holdout)

    def multi_hot(rows: list) -> np.ndarray:
        out = np.zeros((len(rows), len(vocabulary)), dtype=np.float32)
        for i, r in enumerate(rows):
            out[i, r] = 1.0
        return out

    probabilities = np.zeros((len(data.test_items), len(data.classes)))
    seen = np.unique(data.train_labels)
    if len(seen) == 1:  # a handful of users with one class: the model can only answer it
        probabilities[:, seen[0]] = 1.0
    else:
        model = LogisticRegression(max_iter=2000, random_state=seed).fit(multi_hot(data.train_items), data.train_labels)
        probabilities[:, model.classes_] = model.predict_proba(multi_hot(data.test_items))
    return {"target": target, "label_fraction": fraction, "seed": seed, "holdout": holdout,
            **demographic_metrics(data, probabilities)}


def mean_std(values: list[float]) -> str:
    import numpy as np

    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from tqdm.auto import tqdm

    from llmrec.ptum import PTUMConfig, PTUMSequences, finetune_ptum, new_encoder, pretrain_ptum
    from llmrec.ptum.data import ItemVocabulary
    from llmrec.run import RunConfig, build_context, describe, load_split, make_evaluator

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    run_config = RunConfig(dataset="ml-100k", data_dir=args.data_dir, split="leave_one_out", max_users=args.max_users,
                           part="test", mode="full", show_progress=False)
    split = load_split(run_config)
    print(describe(split), flush=True)
    quiet = {"save_steps": 0, "progress": False, "logging_steps": 10**9}
    base = PTUMConfig(d_model=args.d_model, epochs=args.pretrain_epochs, finetune_epochs=args.finetune_epochs, **quiet)
    settings = {"scratch": base, "pretrained": base, "-masked": dataclasses.replace(base, masked_task=False),
                "-next-K": dataclasses.replace(base, next_k_task=False)}
    with tempfile.TemporaryDirectory(prefix="bench-ptum-") as tmp:
        # --- pretraining (once per variant) ------------------------------------------------------------
        encoders, speed, vocabulary = {}, [], ItemVocabulary.from_split(split)
        # One untimed step first, so the first timed variant does not pay for the Trainer's start-up.
        pretrain_ptum(split, dataclasses.replace(base, max_steps=1, output_dir=f"{tmp}/warm-up"))
        for variant in VARIANTS[1:]:
            config = dataclasses.replace(settings[variant], output_dir=f"{tmp}/{variant}")
            windows = len(PTUMSequences.from_split(split, vocabulary, config))
            start = time.perf_counter()
            encoders[variant], vocabulary = pretrain_ptum(split, config)
            seconds = time.perf_counter() - start
            speed.append({"pretraining": variant, "windows": windows, "epochs": config.epochs, "seconds": seconds,
                          "sequences/s": windows * config.epochs / seconds})
            print(f"pretraining '{variant}': {windows} windows x {config.epochs:g} epochs in {seconds:.1f} s",
                  flush=True)
        # --- demographics ----------------------------------------------------------------------------------
        runs = []
        labels = [f"{v} ({mode})" if len(args.finetune_encoder) > 1 else v
                  for mode in args.finetune_encoder for v in VARIANTS]
        grid = list(itertools.product(args.targets, args.fractions, args.seeds, args.finetune_encoder, VARIANTS))
        for target, fraction, seed, mode, variant in tqdm(grid, desc="demographics fine-tuning"):
            encoder = new_encoder(split, base, vocabulary, seed=seed) if variant == "scratch" else encoders[variant]
            result = finetune_ptum(split, dataclasses.replace(settings[variant], finetune_encoder=mode), encoder,
                                   vocabulary, target, fraction, seed, holdout=args.holdout)
            label = f"{variant} ({mode})" if len(args.finetune_encoder) > 1 else variant
            runs.append({"variant": label, **result})
        labels.append(BASELINE)
        for target, fraction, seed in itertools.product(args.targets, args.fractions, args.seeds):
            runs.append({"variant": BASELINE, **bag_of_items(split, vocabulary, target, fraction, seed, base.max_len,
                                                             base.test_share, args.holdout)})
        demo_rows = []
        for target in args.targets:
            for fraction in args.fractions:
                for label in labels:
                    group = [r for r in runs if (r["target"], r["label_fraction"], r["variant"]) ==
                             (target, fraction, label)]
                    demo_rows.append({"target": target, "labelled users": f"{fraction:.0%} ({group[0]['train_users']})",
                                      "encoder": label, f"{args.holdout} users": group[0]["test_users"],
                                      "AUC": mean_std([r["auc"] for r in group]),
                                      "accuracy": mean_std([r["accuracy"] for r in group]),
                                      "macro-F1": mean_std([r["macro_f1"] for r in group]),
                                      "majority class": mean_std([r["majority_accuracy"] for r in group])})
        # --- next item, through the one evaluator (not when tuning: it evaluates on test events) ---------
        next_rows: list[dict] = []
        if args.holdout == "test":
            context = build_context(split, run_config, load={"ptum": f"{tmp}/pretrained"})
            evaluator = make_evaluator(split, run_config, context)
            scorers = [("popularity", context.build("popularity")),
                       ("SASRec", context.build("sasrec", epochs=args.sasrec_epochs, output_dir=f"{tmp}/sasrec",
                                                 **quiet)),
                       ("PTUM pretrained", context.build("ptum")),
                       (f"PTUM + next-item fine-tune ({args.next_item_epochs:g} epochs)",
                        context.build("ptum", next_item_epochs=args.next_item_epochs, output_dir=f"{tmp}/next",
                                      **quiet))]
            for label, scorer in scorers:
                result = evaluator(scorer)
                next_rows.append({"method": label, "cases": result["counts"]["cases"], "NDCG@10": result["ndcg@10"],
                                  "Recall@10": result["recall@10"], "MRR@20": result["mrr@20"]})
                print(f"{label}: ndcg@10 {result['ndcg@10']:.4f}", flush=True)
    minutes = (time.perf_counter() - started) / 60
    held_out = ("held-out test users" if args.holdout == "test" else
                "validation users (a slice of the training users; the test users are left out)")
    parts = [f"User demographics (AUC, accuracy and macro-F1 on {held_out}, mean ± std over seeds "
             f"{', '.join(map(str, args.seeds))}):",
             markdown_table(demo_rows, ["target", "labelled users", "encoder", f"{args.holdout} users", "AUC",
                                        "accuracy", "macro-F1", "majority class"])]
    if next_rows:
        parts += ["Next item (leave-one-out, full ranking):",
                  markdown_table(next_rows, ["method", "cases", "NDCG@10", "Recall@10", "MRR@20"])]
    markdown = "\n\n".join([
        *parts,
        "Pretraining throughput on this machine:",
        markdown_table(speed, ["pretraining", "windows", "epochs", "seconds", "sequences/s"], floatfmt=".1f")])
    notes = (f"Settings: PTUM d {base.d_model}, {base.n_layers} blocks, {base.n_heads} heads, max_len {base.max_len}, "
             f"mask share {base.mask_share:g} with {base.mask_negatives} negatives, next-K K={base.next_k} with "
             f"{base.next_negatives} negatives, {args.pretrain_epochs:g} pretraining epochs (batch {base.batch_size}, "
             f"lr {base.learning_rate:g}); demographics head fine-tuned with the encoder for {args.finetune_epochs:g} "
             f"epochs (batch {base.finetune_batch_size}, lr {base.finetune_learning_rate:g}; 'frozen': the head only, "
             f"a linear probe, lr {base.probe_learning_rate:g}), test share "
             f"{base.test_share:g}; age in MovieLens 1M's 7 bands; SASRec {args.sasrec_epochs:g} epochs; torch threads "
             f"{args.threads}; whole run {minutes:.1f} min. 'majority class': accuracy of always answering the "
             "training users' most frequent class; AUC: one-vs-rest, averaged over classes (gender: of F vs M), "
             "0.5 is chance. 'bag-of-items LR': scikit-learn logistic regression on which items the same "
             "recent events name (the non-neural baseline, same users). Pretraining reads only the known "
             "interactions (no user table); the test users' behaviour is among them, unlabelled, as in the "
             "paper's setting.")
    print("\n" + markdown + "\n\n" + notes)
    if not args.no_record:
        command = "python benchmarks/bench_ptum.py " + " ".join(argv if argv is not None else sys.argv[1:])
        name, title = (("ptum", "PTUM (MovieLens 100K: demographics from few labels; next item)")
                       if args.holdout == "test" else
                       ("ptum_valid", "PTUM tuning (MovieLens 100K demographics on validation users)"))
        record(name, title, command.strip(), markdown,
               {"demographics": demo_rows, "runs": runs, "next_item": next_rows, "throughput": speed,
                "settings": vars(args)}, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
