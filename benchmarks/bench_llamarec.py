"""The fine-tuned LlamaRec reranker on Amazon Games, LLMRank protocol, beside popularity and item-CF.

    python benchmarks/bench_llamarec.py --data-dir ../shared/data --threads 1 --train-users 400
    python benchmarks/bench_llamarec.py --load runs/llamarec/games      # re-evaluate a saved adapter

The run configuration is the ``games`` protocol of ``benchmarks/bench_evaluate.py`` (amazon-games,
predefined split = the LLMRank validation users, the target plus 19 seeded negatives in label-blind
order, a seeded subset of 200 cases, batch 8, seed 42), so the numbers sit beside that record's.
Training reads only the events known before the evaluated part: a seeded sample of users, each
one's last known event as the target (``llmrec.llamarec.data``). Nothing is tuned on the evaluated
cases: the settings are fixed before the run and sized for a shared CPU (stated in the record).
The adapter goes to ``--out`` for other runs to load (``--load llamarec=DIR``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _record import markdown_table, record  # noqa: E402

from llmrec.eval.report import population_line  # noqa: E402
from llmrec.run import RunConfig, build_context, load_split, run  # noqa: E402

SLICES = ("all", "warm", "long_tail")


def llamarec_options(args: argparse.Namespace) -> dict:
    return {"train_users": args.train_users, "history_len": args.history_len, "max_item_chars": args.max_item_chars,
            "evidence": args.evidence, "lora_layers": args.lora_layers, "lora_r": args.lora_r,
            "lora_alpha": 2 * args.lora_r, "epochs": args.epochs, "learning_rate": args.learning_rate,
            "batch_size": args.batch_size, "bootstrap": args.bootstrap, "output_dir": args.out,
            "seed": args.train_seed, "progress": False, "max_train_minutes": args.max_train_minutes,
            "template": args.template, "target_modules": args.target_modules.split(",")}


def rows_of(results: dict[str, dict], seconds: dict[str, float]) -> list[dict]:
    rows = []
    for name, result in results.items():
        for slice_name in SLICES:
            s = result["slices"][slice_name]
            if s["cases"]:
                rows.append({"scorer": name, "slice": slice_name, "mode": result["mode"], "cases": s["cases"],
                             "NDCG@10": s["ndcg@10"], "HR@1": s["ndcg@1"], "Recall@10": s["recall@10"],
                             "MRR@10": s["mrr@10"],
                             "build+eval s": f"{seconds[name]:.0f}" if slice_name == "all" else None})
    return rows


def verdict(results: dict[str, dict], llm: str) -> str:
    ndcg = {n: r["ndcg@10"] for n, r in results.items()}
    classic = {n: v for n, v in ndcg.items() if n != llm}
    best = max(classic, key=classic.get)
    word = "beats" if ndcg[llm] > classic[best] else "LOSES to"
    return (f"{llm} (NDCG@10 {ndcg[llm]:.4f}) {word} the best non-LLM scorer here, {best} ({classic[best]:.4f}), "
            f"by {abs(ndcg[llm] - classic[best]):.4f}; popularity {ndcg['popularity']:.4f}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cases", type=int, default=200, help="seeded subset of Games cases (every scorer)")
    parser.add_argument("--seed", type=int, default=42, help="case subsample and negatives (bench_evaluate's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-users", type=int, default=400)
    parser.add_argument("--history-len", type=int, default=8)
    parser.add_argument("--max-item-chars", type=int, default=40)
    parser.add_argument("--evidence", default="popularity", choices=["none", "popularity"])
    parser.add_argument("--lora-layers", type=int, default=8)
    parser.add_argument("--template", default="rerank", help="prompts/llamarec/<template>.j2")
    parser.add_argument("--target-modules", default="q_proj,k_proj,v_proj,o_proj", help="LoRA modules, comma-separated")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--bootstrap", type=int, default=1)
    parser.add_argument("--train-seed", type=int, default=42)
    parser.add_argument("--max-train-minutes", type=float, default=0.0, help="wall-clock cap on training")
    parser.add_argument("--out", default="runs/llamarec/games", help="where the adapter is saved")
    parser.add_argument("--load", default=None, help="evaluate this saved adapter instead of training")
    parser.add_argument("--name", default="llamarec_games", help="record name under benchmarks/results/")
    parser.add_argument("--trained-by", default=None, help="with --load: the command that trained the adapter (noted)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_llamarec.py " + " ".join(argv if argv is not None else sys.argv[1:])
    config = RunConfig(dataset="amazon-games", data_dir=args.data_dir, split="predefined", mode="sampled",
                       num_negatives=19, max_cases=args.cases, batch_size=8, seed=args.seed, threads=args.threads,
                       show_progress=False, out_dir="outputs/bench_llamarec",
                       title="Amazon Games, LLMRank protocol (target + 19 sampled negatives)")
    split = load_split(config)
    options = {"llamarec": llamarec_options(args)}
    context = build_context(split, config, options, load={"llamarec": args.load} if args.load else {})
    built, seconds = [], {}
    for name in ("popularity", "itemcf", "llamarec"):
        start = time.perf_counter()
        built.append(context.build(name))
        seconds[built[-1].name] = time.perf_counter() - start
    outcome = run(config, built, split=split)
    for name, result in outcome.results.items():
        seconds[name] += result["seconds"]
    llm = built[-1]
    diag = outcome.results[llm.name].get("diagnostics", {})
    settings = options["llamarec"]
    training = diag
    if args.load:  # the adapter's own record: how it was trained and with which settings
        meta = json.loads((Path(args.load) / "llamarec.json").read_text())
        training, settings = meta.get("report", {}), meta["config"]
    print(markdown_table(rows_of(outcome.results, seconds)))
    print(verdict(outcome.results, llm.name))
    print(json.dumps(training))
    if args.no_record:
        return 0
    first = outcome.results["popularity"]
    train_line = (f"Training: {training.get('lists_seen')} of {training.get('train_examples')} lists (users' last "
                  f"known events, target + 19 negatives, label-blind order) from {len(context.known):,} known events, "
                  f"{training.get('epochs')} epoch(s), {training.get('steps')} steps, "
                  f"{training.get('train_seconds')} s, {training.get('tokens_per_second')} prompt tokens/s, peak "
                  f"memory {training.get('peak_memory_mib')} MiB (process RSS on CPU), final loss "
                  f"{training.get('final_loss')}.")
    if args.load:
        train_line += f" Adapter loaded from {args.load}" + (f", trained by `{args.trained_by}`." if args.trained_by
                                                             else ".")
    notes = (f"Candidates: **{first['mode']}** (the target plus 19 seeded negatives from outside the history, "
             f"label-blind order), the same lists for every scorer. Population: {population_line(first)}. "
             f"{verdict(outcome.results, llm.name)} {train_line} Settings (fixed before the run, nothing tuned on "
             f"these cases; reduced to fit a shared 2-core CPU, single thread): {settings}. "
             f"evidence=popularity means each candidate line also shows floor(log2(1 + its known events)), so "
             f"this row is the LLM reading titles *and* a popularity hint, not titles alone. SASRec and "
             f"the learned hybrid on the same cases: benchmarks/results/evaluate_games.json and the hybrid's record.")
    record(args.name, "LlamaRec-style fine-tuned reranker (LoRA, letter verbalizer) on Amazon Games, LLMRank "
           "protocol", command, markdown_table(rows_of(outcome.results, seconds)),
           {"results": outcome.results, "seconds": seconds, "options": options, "training": training}, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
