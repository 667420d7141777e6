"""The two-tower model with a multi-task rating head on TensorFlow Recommenders' multi-task protocol.

MovieLens 100K, a random 80/20 split of the ratings (seed 42, ``llmrec.data.splits.random_split``),
all 943 users. Three weightings of the same model (rating-only, retrieval-only, joint), next to
popularity and the user + item bias model, all scored by the same evaluators
(``llmrec.eval.topk``):

* top-K accuracy (TFRS ``FactorizedTopK``): share of the ~20,000 test (user, item) pairs whose item
  is in the user's top K over all 1,682 items. As in TFRS the user's training items stay in the
  ranking ("all items"); the "excl. known" column removes them first.
* RMSE of each test rating.

No setting is chosen on the test part. A seeded 10% of the *training* ratings is carved out as a
validation part (``llmrec.two_tower.data.carve_validation``); each candidate setting (``PRESETS``)
trains on the other 90% of train, is scored on the validation part after every epoch, and stops
early once its criterion has not improved for ``--patience`` epochs. The (setting, epoch count)
with the best validation criterion is then retrained on the whole 80% and measured on the test
part once. Criteria: rating-only, lowest validation RMSE; retrieval-only, highest validation top-100;
joint, lowest validation RMSE among the epochs whose validation top-100 reaches the goal's 0.36 (the
lowest RMSE if none does). The single-task rows use the architecture chosen for the joint model.

TFRS's user tower is a user-ID embedding; ours reads the user's training ratings as their history
(no held-out event is ever in it), and the ``user-id`` presets add a user-ID embedding beside it.
Every model learns from the training 80% only. Training time per epoch is measured on this CPU.

    python benchmarks/bench_two_tower.py                     # everything in one process
    python benchmarks/bench_two_tower.py --quick --no-record # proves it runs (1 epoch, 1 preset)

The same in parts (how the record was measured on a shared 2-core CPU): validation runs in parallel
processes, appended to ``results/two_tower_tfrs_tuning.jsonl``; then each weighting's final model,
reusing those runs and merging into the record:

    python benchmarks/bench_two_tower.py --tune-only --weightings joint --presets base dot   # (one per preset)
    python benchmarks/bench_two_tower.py --tune-only --reuse-tuning --weightings rating-only
    python benchmarks/bench_two_tower.py --reuse-tuning --merge --weightings joint           # (one per weighting)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._record import markdown_table, record  # noqa: E402

TFRS = {"rating-only": (0.060, 1.113), "retrieval-only": (0.233, 3.688), "joint": (0.235, 1.110)}
KS = (1, 5, 10, 50, 100)
GOAL_TOP100, GOAL_RMSE = 0.36, 0.90
# Candidate settings of the two-tower model (TwoTowerConfig overrides), compared on validation only.
PRESETS: dict[str, dict] = {
    "base": {},
    "dot": {"rating_dot": True},
    "user-id": {"user_id": True},
    "dot + user-id": {"rating_dot": True, "user_id": True},
    "dot + learning rate 5e-3": {"rating_dot": True, "learning_rate": 5e-3},
    "dot + user-id + learning rate 5e-3": {"rating_dot": True, "user_id": True, "learning_rate": 5e-3},
    "dot + learning rate 1e-2": {"rating_dot": True, "learning_rate": 1e-2},
    "dot + user-id + learning rate 1e-2": {"rating_dot": True, "user_id": True, "learning_rate": 1e-2},
    "dot + learning rate 5e-3 + weight decay 1e-2": {"rating_dot": True, "learning_rate": 5e-3, "weight_decay": 1e-2},
    "dot + learning rate 5e-3 + rating dropout 0.2": {"rating_dot": True, "learning_rate": 5e-3, "rating_dropout": 0.2},
    "dot + learning rate 5e-3 + dropout 0.3": {"rating_dot": True, "learning_rate": 5e-3, "dropout": 0.3},
}
WEIGHTINGS = ("joint", "rating-only", "retrieval-only")
TUNING_LOG = HERE / "results" / "two_tower_tfrs_tuning.jsonl"
# what makes two validation runs the same run
TUNING_KEYS = ("max_epochs", "patience", "valid_ratio", "joint_retrieval_weight", "joint_rating_weight", "seed")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder holding ml-100k/ (default: $LLMREC_DATA_DIR)")
    p.add_argument("--max-epochs", type=int, default=10, help="most epochs of a tuning run on validation")
    p.add_argument("--patience", type=int, default=2, help="stop a tuning run after this many epochs without "
                                                           "a better validation criterion")
    p.add_argument("--valid-ratio", type=float, default=0.1, help="share of the training ratings held out for "
                                                                  "validation")
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS),
                   help="candidate settings of the joint model")
    p.add_argument("--weightings", nargs="+", default=list(WEIGHTINGS), choices=list(WEIGHTINGS))
    p.add_argument("--joint-retrieval-weight", type=float, default=1.0)
    p.add_argument("--joint-rating-weight", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42, help="training seed (the split's seed is always 42, the "
                                                        "validation carve's 0)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--tune-only", action="store_true", help="validation runs only: log them, never touch test")
    p.add_argument("--tuning-log", default=str(TUNING_LOG), help="JSON lines of every validation run (appended)")
    p.add_argument("--reuse-tuning", action="store_true",
                   help="take validation runs with the same settings from --tuning-log instead of rerunning them "
                        "(so the tuning can run in parts, e.g. in parallel processes)")
    p.add_argument("--quick", action="store_true", help="1 epoch, 1 preset, to prove the script runs")
    p.add_argument("--merge", action="store_true",
                   help="keep the stored record's rows of the weightings not run now (run the final models in "
                        "parts, e.g. in parallel processes; the baselines are always rerun)")
    p.add_argument("--no-record", action="store_true", help="print, do not record")
    args = p.parse_args(argv)
    if args.quick:
        args.max_epochs, args.presets = 1, args.presets[:1]
    if args.tune_only:
        args.no_record = True
    return args


def row(method: str, weights: str, top: dict, top_excl: dict, rating: dict | None, **extra) -> dict:
    out = {"method": method, "weights (retrieval / rating)": weights}
    out.update({f"top-{k}": top[f"top{k}"] for k in KS})
    out["top-100 excl. known"] = top_excl["top100"]
    out["RMSE"] = rating["rmse"] if rating else None
    out.update(extra)
    return out


def criterion(label: str) -> tuple[str, bool]:
    """The validation metric a weighting is tuned on and whether greater is better."""
    return ("top100", True) if label == "retrieval-only" else ("rmse", False)


def pick(label: str, history: list[dict]) -> dict:
    """The best validation epoch of one run (see the module docstring for the rule)."""
    if label == "retrieval-only":
        return max(history, key=lambda h: h["top100"])
    pool = [h for h in history if h["top100"] >= GOAL_TOP100] if label == "joint" else []
    return min(pool or history, key=lambda h: h["rmse"])


def stored_runs(args) -> dict[tuple[str, str], list[dict]]:
    """(weighting, preset) -> per-epoch validation history, of the logged runs with these settings."""
    path = Path(args.tuning_log)
    out: dict[tuple[str, str], list[dict]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            run = json.loads(line)
            if all(run["settings"].get(k) == getattr(args, k) for k in TUNING_KEYS):
                out[(run["weighting"], run["preset"])] = run["history"]
    return out


def log_run(args, label: str, preset: str, history: list[dict], seconds: float) -> None:
    """Append one validation run to the tuning log (one JSON object a line)."""
    entry = {"weighting": label, "preset": preset, "history": history, "seconds": round(seconds, 1),
             "settings": {k: getattr(args, k) for k in TUNING_KEYS}}
    with open(args.tuning_log, "a", encoding="utf-8") as fh:  # appends: parts may run in parallel
        fh.write(json.dumps(entry) + "\n")


def joint_choice(chosen: dict, stored: dict, presets: list[str]) -> str:
    """The joint model's chosen setting: from this run, else from the logged joint runs (a part run
    with --reuse-tuning), else the first preset asked for."""
    if "joint" in chosen:
        return chosen["joint"]["preset"]
    runs = [(preset, pick("joint", h)) for (w, preset), h in stored.items() if w == "joint"]
    if not runs:
        return presets[0]
    best = runs[0]
    for run in runs[1:]:
        if better("joint", run[1], best[1]):
            best = run
    return best[0]


def better(label: str, a: dict, b: dict) -> bool:
    """Whether validation result ``a`` beats ``b``; joint: reaching the top-100 bar first, then RMSE."""
    if label == "joint":
        return (a["top100"] >= GOAL_TOP100, -a["rmse"]) > (b["top100"] >= GOAL_TOP100, -b["rmse"])
    metric, greater = criterion(label)
    return a[metric] > b[metric] if greater else a[metric] < b[metric]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from llmrec.data.registry import load_dataset
    from llmrec.data.splits import random_split
    from llmrec.eval.topk import TopKAccuracyEvaluator, rating_evaluator
    from llmrec.two_tower import TwoTowerConfig, TwoTowerScorer, train_two_tower
    from llmrec.two_tower.data import carve_validation
    from llmrec.two_tower.validation import EpochValidation

    torch.set_num_threads(args.threads)
    logging.basicConfig(format="%(asctime)s %(message)s")
    logging.getLogger("llmrec.two_tower").setLevel(logging.INFO)  # each validation epoch, as it happens
    dataset = load_dataset("ml-100k", args.data_dir)
    split = random_split(dataset, test_ratio=0.2, seed=42)
    tuning = carve_validation(split, args.valid_ratio, seed=0)
    valid_top = TopKAccuracyEvaluator(tuning, part="valid", ks=(100,))
    valid_rmse = rating_evaluator(tuning, part="valid", show_progress=False, batch_size=4096)
    weights = {"rating-only": (0.0, 1.0), "retrieval-only": (1.0, 0.0),
               "joint": (args.joint_retrieval_weight, args.joint_rating_weight)}
    quiet = {"save_steps": 0, "progress": False, "logging_steps": 10**9}

    def settings(label: str, preset: str, epochs: float, out: str) -> TwoTowerConfig:
        w_ret, w_rat = weights[label]
        return TwoTowerConfig(**{"epochs": epochs, "retrieval_weight": w_ret, "rating_weight": w_rat,
                                 "seed": args.seed, "output_dir": out, **quiet, **PRESETS[preset]})

    def validate(model) -> dict:
        from llmrec.data.vocabulary import ItemVocabulary

        vocabulary = ItemVocabulary.from_split(tuning, "valid")
        retrieval, rating = TwoTowerScorer(model, vocabulary), TwoTowerScorer(model, vocabulary, score="rating")
        return {"top100": valid_top(retrieval)["top100"], "rmse": valid_rmse(rating)["rmse"]}

    stored = stored_runs(args) if args.reuse_tuning else {}
    tuned: list[dict] = []  # every validation epoch of every tuning run
    chosen: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-two-tower-") as tmp:
        for label in [w for w in WEIGHTINGS if w in args.weightings]:
            # the single-task rows reuse the joint model's chosen architecture (one model, three weightings)
            presets = args.presets if label == "joint" else [joint_choice(chosen, stored, args.presets)]
            best: dict | None = None
            for preset in presets:
                history = stored.get((label, preset))
                if history is None:
                    metric, greater = criterion(label)
                    callback = EpochValidation(validate, metric, greater, patience=args.patience)
                    start = time.perf_counter()
                    train_two_tower(tuning, settings(label, preset, args.max_epochs, f"{tmp}/tune"), part="valid",
                                    callbacks=[callback])
                    history = callback.history
                    log_run(args, label, preset, history, time.perf_counter() - start)
                tuned += [{"weighting": label, "preset": preset, **h} for h in history]
                top = pick(label, history)
                print(f"[valid] {label} / {preset}: {history} -> epoch {top['epoch']:g}", flush=True)
                if best is None or better(label, top, best):
                    best = {"preset": preset, **top}
            assert best is not None
            chosen[label] = best
        if args.tune_only:
            print(chosen)
            return 0
        rows, speed, serving = final_runs(args, split, dataset, chosen, settings, tmp, weights)
    report(args, split, dataset, rows, speed, serving, tuned, chosen, argv)
    return 0


def final_runs(args, split, dataset, chosen: dict, settings, tmp: str, weights: dict):
    """Popularity, bias, and each weighting retrained on the whole 80% with its chosen settings:
    the only time the test part is scored."""
    from llmrec.eval.topk import TopKAccuracyEvaluator, rating_evaluator
    from llmrec.registry import BuildContext, build_scorer
    from llmrec.two_tower import TwoTowerScorer, train_two_tower

    top_all = TopKAccuracyEvaluator(split, ks=KS)
    top_excl = TopKAccuracyEvaluator(split, ks=KS, exclude_known=True)
    rmse = rating_evaluator(split, show_progress=False, batch_size=4096)
    context = BuildContext(split, show_progress=False)
    rows: list[dict] = []
    for name in ("popularity", "bias"):
        scorer = build_scorer(name, context)
        rows.append(row(name, "-", top_all(scorer), top_excl(scorer), rmse(scorer) if name == "bias" else None))
        print(rows[-1], flush=True)
    speed: list[dict] = []
    serving: dict = {}
    for label in [w for w in ("rating-only", "retrieval-only", "joint") if w in chosen]:
        w_ret, w_rat = weights[label]
        pick = chosen[label]
        epochs = max(1, round(pick["epoch"]))
        start = time.perf_counter()
        model, vocabulary = train_two_tower(split, settings(label, pick["preset"], epochs, f"{tmp}/{label}"))
        seconds = time.perf_counter() - start
        speed.append({"model": f"two-tower {label}", "epochs": epochs, "seconds per epoch": seconds / epochs,
                      "training events": len(split.train)})
        retrieval = TwoTowerScorer(model, vocabulary)
        rating = TwoTowerScorer(model, vocabulary, score="rating")
        rows.append(row(f"two-tower {label}", f"{w_ret:g} / {w_rat:g}", top_all(retrieval), top_excl(retrieval),
                        rmse(rating), **{"settings (chosen on validation)": f"{pick['preset']}, {epochs} epochs",
                                         "TFRS top-100": TFRS[label][0], "TFRS RMSE": TFRS[label][1]}))
        print(rows[-1], speed[-1], flush=True)
        if label == "joint":
            serving = serving_check(retrieval, top_all.histories)
    return rows, speed, {"counts": top_all.counts, **serving}


def merged(args, rows: list[dict], speed: list[dict], serving: dict, tuned: list[dict], chosen: dict,
           command: str) -> tuple[list[dict], list[dict], dict, list[dict], dict, list[str]]:
    """With ``--merge``: this run's results plus the stored record's for the weightings not run now.
    Only a record written by this tuning procedure is merged (older ones chose epochs on test)."""
    path = HERE / "results" / "two_tower_tfrs.json"
    stored = json.loads(path.read_text())["data"] if args.merge and path.exists() else {}
    if "chosen" not in stored:
        return rows, speed, serving, tuned, chosen, [command]
    old = [w for w in stored["chosen"] if w not in chosen]
    keep = {f"two-tower {w}" for w in old}
    baselines = [r for r in rows if not r["method"].startswith("two-tower")]
    mine = {r["method"]: r for r in rows}
    mine.update({r["method"]: r for r in stored["rows"] if r["method"] in keep})
    ordered = baselines + [mine[f"two-tower {w}"] for w in ("rating-only", "retrieval-only", "joint")
                           if f"two-tower {w}" in mine]
    speed = [s for s in stored.get("speed", []) if s["model"] in keep] + speed
    tuned = [h for h in stored.get("tuning", []) if h["weighting"] in old] + tuned
    serving = serving if "joint" in chosen else {**stored.get("serving", {}), "counts": serving["counts"]}
    return (ordered, speed, serving, tuned, {**{w: stored["chosen"][w] for w in old}, **chosen},
            [*stored.get("commands", []), command])


def report(args, split, dataset, rows, speed, serving, tuned, chosen, argv) -> None:
    command = ("python benchmarks/bench_two_tower.py " + shlex.join(argv if argv is not None else sys.argv[1:])).strip()
    rows, speed, serving, tuned, chosen, commands = merged(args, rows, speed, serving, tuned, chosen, command)
    columns = ["method", "weights (retrieval / rating)", "settings (chosen on validation)",
               *[f"top-{k}" for k in KS], "top-100 excl. known", "RMSE", "TFRS top-100", "TFRS RMSE"]
    joint = next((r for r in rows if r["method"] == "two-tower joint"), None)
    goal = ""
    if joint is not None:
        met = joint["top-100"] >= GOAL_TOP100 and joint["RMSE"] <= GOAL_RMSE
        goal = (f"Goal (one joint model with top-100 >= {GOAL_TOP100} and RMSE <= {GOAL_RMSE}): top-100 "
                f"{joint['top-100']:.4f}, RMSE {joint['RMSE']:.4f}: " + ("met." if met else "NOT met."))
    bias = next(r for r in rows if r["method"] == "bias")
    if joint is not None and joint["RMSE"] > bias["RMSE"]:
        goal += " The joint model's RMSE is worse than the bias model's."
    counts = serving.pop("counts")
    # the tuning table: each run's chosen epoch, and its last epoch (where it stopped)
    runs: dict[tuple[str, str], list[dict]] = {}
    for h in tuned:
        runs.setdefault((h["weighting"], h["preset"]), []).append(h)
    tuning_rows = []
    for (label, preset), hist in runs.items():
        best = pick(label, hist)
        tuning_rows.append({"weighting": label, "setting": preset, "epochs run": len(hist),
                            "best epoch": int(round(best["epoch"])), "valid top-100": best["top100"],
                            "valid RMSE": best["rmse"],
                            "chosen": "yes" if chosen.get(label, {}).get("preset") == preset else ""})
    markdown = "\n\n".join([markdown_table(rows, columns), goal,
                            "Tuning on the validation part (10% of the training ratings; test never scored):",
                            markdown_table(tuning_rows), "Training time on this CPU (the final runs):",
                            markdown_table(speed, floatfmt=".1f"), "Serving (joint model, top-100 of every user):",
                            markdown_table([serving], floatfmt=".4f")])
    notes = (f"Full ranking over all {counts['candidates']:,} items; {counts['pairs']:,} test pairs of "
             f"{counts['users']:,} of {dataset.n_users:,} users (random split, seed 42: train {len(split.train):,}, "
             f"test {len(split.test):,} ratings). Settings and epoch counts were chosen on a validation part "
             f"carved from the training ratings ({args.valid_ratio:.0%}, seed 0), each candidate trained on the rest "
             f"(up to {args.max_epochs} epochs, early stop after {args.patience} without improvement); the chosen "
             "ones were retrained on the whole 80% and the test part scored once. TFRS columns: the published "
             "numbers of its multi-task tutorial (same protocol, its own split). Popularity: training interaction "
             "count. Bias: mu + b_item + b_user (regularised ALS). Two-tower: user tower = the user's training "
             "ratings (mean-pooled ID embeddings, rating-weighted ones, rating offset; 'user-id' adds a user-ID "
             "embedding), item tower = item ID, cosine / 0.05, in-batch softmax with accidental-hit removal and "
             "logQ correction, rating head MLP + item bias ('dot' adds the dot product of the tower outputs); a head "
             "with weight 0 is untrained, which is why its column is meaningless there (as in TFRS). Batch 1024, "
             f"AdamW (learning rate 2e-3 unless the setting says otherwise, linear decay), seed {args.seed}, "
             f"{args.threads} thread(s); seconds per epoch are wall clock on this CPU shared with other jobs.")
    print("\n" + markdown + "\n\n" + notes)
    if not args.no_record:
        record("two_tower_tfrs", "Two-tower retrieval + multi-task rating (MovieLens 100K, TFRS protocol)",
               " ; ".join(commands), markdown, {"rows": rows, "speed": speed, "serving": serving, "counts": counts,
                                                "tuning": tuned, "chosen": chosen, "commands": commands,
                                                "settings": vars(args)}, notes=notes)


def serving_check(scorer, histories: dict) -> dict:
    """Top-100 retrieval through the exact numpy index and FAISS flat: time and agreement."""
    users = sorted(histories)
    queries = [histories[u] for u in users]
    out: dict = {"users": len(users)}
    ids = {}
    for kind in ("brute", "flat"):
        start = time.perf_counter()
        ids[kind], _ = scorer.retrieve(queries, 100, index=kind)
        out[f"{kind} seconds"] = time.perf_counter() - start
    overlap = [len(set(a) & set(b)) / 100 for a, b in zip(ids["brute"], ids["flat"], strict=True)]
    out["top-100 overlap brute vs FAISS"] = sum(overlap) / len(overlap)
    return out


if __name__ == "__main__":
    sys.exit(main())
