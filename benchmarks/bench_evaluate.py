"""Side-by-side tables from the one path (``llmrec.run``, what ``llmrec evaluate`` runs), one per protocol.

    python benchmarks/bench_evaluate.py --data-dir ../shared/data --threads 1
    python benchmarks/bench_evaluate.py --protocols games --games-cases 200 --llm-mode score

* ``scientific``: Amazon Scientific, the source's predefined split (RecFormer / UniSRec validation
  users), **full** ranking over every item: popularity, item-CF, BM25, embedding, SASRec, LEARN-pch.
* ``ml100k``: MovieLens 100K, leave-one-out (each user's last rating), **sampled** (the target plus
  100 seeded negatives): popularity, item-CF, the bias model, SASRec, the two-tower model and DIEN.
* ``games``: Amazon Games, the LLMRank validation users, the LLMRank protocol (**sampled**: the target
  plus 19 seeded negatives, label-blind order): popularity, item-CF, BM25, embedding, SASRec and an
  LLM reranker, every scorer on the same seeded subset of cases and the same lists.

Each protocol writes benchmarks/results/evaluate_<protocol>.json (+ .png, the run's own chart) and
rebuilds RESULTS.md. Tuning uses nothing but train and validation data: these are validation users.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _record import RESULTS_DIR, markdown_table, record

from llmrec.eval.report import population_line
from llmrec.run import RunConfig, build_context, load_split, run

SLICES = ("all", "warm", "long_tail", "cold")


def protocol_settings(args: argparse.Namespace) -> dict[str, tuple[RunConfig, list[str], dict, str]]:
    common = dict(data_dir=args.data_dir, split="predefined", threads=args.threads, show_progress=False)
    llm = {"model": args.llm_model, "mode": args.llm_mode}
    return {
        "scientific": (
            RunConfig(dataset="amazon-scientific", mode="full", **common),
            ["popularity", "itemcf", "bm25", "embedding", "sasrec", "learn"],
            {"sasrec": {"epochs": args.sasrec_epochs, "output_dir": f"{args.runs}/scientific-sasrec"},
             "learn": {"epochs": args.learn_epochs, "item_tower": "pch",
                       "output_dir": f"{args.runs}/scientific-learn"}},
            "Amazon Scientific, predefined split, full ranking",
        ),
        "games": (
            RunConfig(dataset="amazon-games", mode="sampled", num_negatives=19, max_cases=args.games_cases,
                      batch_size=8, seed=args.seed, **common),
            ["popularity", "itemcf", "bm25", "embedding", "sasrec", "llmrank"],
            {"sasrec": {"epochs": args.games_sasrec_epochs, "output_dir": f"{args.runs}/games-sasrec"},
             "llmrank": llm},
            "Amazon Games, LLMRank protocol (target + 19 sampled negatives)",
        ),
        "ml100k": (
            RunConfig(dataset="ml-100k", mode="sampled", num_negatives=100, seed=args.seed,
                      **{**common, "split": "leave_one_out"}),
            ["popularity", "itemcf", "bias", "sasrec", "two-tower", "dien"],
            {"sasrec": {"epochs": args.sasrec_epochs, "output_dir": f"{args.runs}/ml100k-sasrec"},
             "two-tower": {"epochs": 5, "output_dir": f"{args.runs}/ml100k-two-tower"},
             "dien": {"epochs": 1, "batch_size": 256, "max_len": 20, "learning_rate": 5e-3,
                      "output_dir": f"{args.runs}/ml100k-dien"}},
            "MovieLens 100K, leave-one-out, target + 100 sampled negatives (classic models: DIEN, two-tower)",
        ),
    }


def rows_of(results: dict[str, dict], seconds: dict[str, float]) -> list[dict]:
    rows = []
    for name, result in results.items():
        for slice_name in SLICES:
            s = result["slices"][slice_name]
            if not s["cases"]:
                continue
            rows.append({"scorer": name, "slice": slice_name, "mode": result["mode"], "cases": s["cases"],
                         "NDCG@10": s["ndcg@10"], "Recall@10": s["recall@10"], "MRR@10": s["mrr@10"],
                         "NDCG@1": s["ndcg@1"],
                         "build+eval s": f"{seconds[name]:.1f}" if slice_name == "all" else None})
    return rows


def verdict(results: dict[str, dict]) -> str:
    """Which scorer is best overall, where popularity stands, and how each LLM scorer compares with
    the best non-LLM one (written from the numbers, never typed)."""
    def uses_llm(name: str) -> bool:
        return name.startswith("llmrank")

    ndcg = {name: r["ndcg@10"] for name, r in results.items()}
    classic = {n: v for n, v in ndcg.items() if not uses_llm(n)}
    best = max(classic, key=classic.get)
    lines = [f"Best non-LLM scorer: **{best}** (NDCG@10 {classic[best]:.4f}); popularity {ndcg['popularity']:.4f}."]
    for name, value in ndcg.items():
        if uses_llm(name):
            word = "beats" if value > classic[best] else "loses to"
            lines.append(f"The LLM scorer {name} (NDCG@10 {value:.4f}) {word} the best non-LLM scorer by "
                         f"{abs(value - classic[best]):.4f} ({value - ndcg['popularity']:+.4f} against popularity).")
    return " ".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--protocols", nargs="+", default=["scientific", "games"],
                        choices=["scientific", "games", "ml100k"])
    parser.add_argument("--games-cases", type=int, default=200, help="seeded subset of Games cases (all scorers)")
    parser.add_argument("--sasrec-epochs", type=float, default=20.0)
    parser.add_argument("--games-sasrec-epochs", type=float, default=5.0)
    parser.add_argument("--learn-epochs", type=float, default=10.0)
    parser.add_argument("--llm-model", default="smollm2-135m")
    parser.add_argument("--llm-mode", default="score")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", default="runs/bench_evaluate", help="where the trained models go")
    parser.add_argument("--no-record", action="store_true", help="print only; write nothing under benchmarks/")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_evaluate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for protocol in args.protocols:
        config, scorers, options, title = protocol_settings(args)[protocol]
        with tempfile.TemporaryDirectory() as out:
            config.out_dir = out
            config.title = title
            seconds: dict[str, float] = {}
            built = []
            split = load_split(config)
            context = build_context(split, config, options)
            for name in scorers:  # build each scorer once, timing its training / loading
                start = time.perf_counter()
                built.append(context.build(name))
                seconds[built[-1].name] = time.perf_counter() - start
            outcome = run(config, built, split=split)
            for name, result in outcome.results.items():
                seconds[name] += result["seconds"]
            if args.no_record:
                continue
            chart = RESULTS_DIR / f"evaluate_{protocol}.png"
            shutil.copyfile(Path(out) / "metrics.png", chart)
        first = next(iter(outcome.results.values()))
        diag = {n: r["diagnostics"] for n, r in outcome.results.items() if r.get("diagnostics")}
        lists = ("every catalogue item, history excluded" if first["mode"] == "full" else
                 "the target plus seeded negatives from outside the history, label-blind order")
        notes = (f"Candidates: **{first['mode']}** ({lists}). Population: {population_line(first)}. "
                 f"Split: {outcome.split.name} ({outcome.split.summary()['test']:,} held-out events). "
                 f"{verdict(outcome.results)} Settings: {options}. LLM diagnostics: {diag or 'none'}.")
        record(f"evaluate_{protocol}", f"One path, side by side: {title}", command,
               markdown_table(rows_of(outcome.results, seconds)),
               {"results": outcome.results, "seconds": seconds, "options": options}, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
