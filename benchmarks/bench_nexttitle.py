"""The next-title LM reranker on Amazon Games, LLMRank protocol, beside popularity and item-CF.

    python benchmarks/bench_nexttitle.py --data-dir ../shared/data --threads 1 --train-users 3000
    python benchmarks/bench_nexttitle.py --load runs/nexttitle/games --zero-shot   # + the untuned base model

The run configuration is the ``games`` protocol of ``benchmarks/bench_evaluate.py`` (amazon-games,
predefined split = the LLMRank validation users, the target plus 19 seeded negatives in label-blind
order, a seeded subset of 200 cases, seed 42), the one ``bench_llamarec.py`` uses, so the rows sit
beside that record's. Training reads only the events known before the evaluated part (a seeded
sample of users, their last known events as targets). The score (sum, mean, pmi, hint+pmi and its
weight) is chosen on held-out *training* users' check lists, never on the evaluated cases; settings
are fixed before the run and sized for a shared CPU (stated in the record).
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
from bench_llamarec import rows_of, verdict  # noqa: E402

from llmrec.data.sequences import sample_users, user_sequences  # noqa: E402
from llmrec.eval.report import population_line  # noqa: E402
from llmrec.nexttitle.config import SCORES, NextTitleConfig  # noqa: E402
from llmrec.nexttitle.data import check_lists  # noqa: E402
from llmrec.nexttitle.scorer import CHECK_NEGATIVES, best_variant, check_variants  # noqa: E402
from llmrec.run import RunConfig, build_context, load_split, run  # noqa: E402


def options_of(args: argparse.Namespace) -> dict:
    return {"train_users": args.train_users, "targets_per_user": args.targets_per_user,
            "valid_users": args.check_users, "history_len": args.history_len, "max_item_chars": args.max_item_chars,
            "evidence": args.evidence, "lora_layers": args.lora_layers, "lora_r": args.lora_r,
            "lora_alpha": 2 * args.lora_r, "epochs": args.epochs, "learning_rate": args.learning_rate,
            "batch_size": args.batch_size, "output_dir": args.out, "seed": args.train_seed, "progress": False,
            "max_train_minutes": args.max_train_minutes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cases", type=int, default=200, help="seeded subset of Games cases (every scorer)")
    parser.add_argument("--seed", type=int, default=42, help="case subsample and negatives (bench_evaluate's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-users", type=int, default=3000)
    parser.add_argument("--targets-per-user", type=int, default=1)
    parser.add_argument("--check-users", type=int, default=200, help="held-out training users for the length norm")
    parser.add_argument("--history-len", type=int, default=6)
    parser.add_argument("--max-item-chars", type=int, default=40)
    parser.add_argument("--evidence", default="popularity", choices=["none", "popularity"])
    parser.add_argument("--lora-layers", type=int, default=10)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--score", default="auto", choices=["auto", *SCORES],
                        help="auto: the best score (and hint+pmi title weight) on the check lists (training users)")
    parser.add_argument("--title-weight", type=float, default=0.1, help="with --score hint+pmi")
    parser.add_argument("--train-seed", type=int, default=42)
    parser.add_argument("--max-train-minutes", type=float, default=0.0, help="wall-clock cap on training")
    parser.add_argument("--out", default="runs/nexttitle/games", help="where the adapter is saved")
    parser.add_argument("--load", default=None, help="evaluate this saved adapter instead of training")
    parser.add_argument("--trained-by", default=None, help="with --load: the command that trained the adapter (noted)")
    parser.add_argument("--name", default="nexttitle_games", help="record name under benchmarks/results/")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_nexttitle.py " + " ".join(argv if argv is not None else sys.argv[1:])
    config = RunConfig(dataset="amazon-games", data_dir=args.data_dir, split="predefined", mode="sampled",
                       num_negatives=19, max_cases=args.cases, batch_size=8, seed=args.seed, threads=args.threads,
                       show_progress=False, out_dir="outputs/bench_nexttitle",
                       title="Amazon Games, LLMRank protocol (target + 19 sampled negatives)")
    split = load_split(config)
    options = {"nexttitle": options_of(args)}
    context = build_context(split, config, options, load={"nexttitle": args.load} if args.load else {})
    built, seconds = [], {}
    for name in ("popularity", "itemcf", "nexttitle"):
        start = time.perf_counter()
        built.append(context.build(name))
        seconds[built[-1].name] = time.perf_counter() - start
    llm = built[-1]
    meta = json.loads((Path(args.load or args.out) / "nexttitle.json").read_text())
    training, settings = meta.get("report", {}), meta["config"]
    checks = training.get("check_ndcg@10")
    if args.score == "auto":  # chosen on held-out training users, before any evaluated case is scored
        if not isinstance(checks, dict):  # an adapter saved before every score was checked: check it here
            trained = NextTitleConfig.from_dict(settings)
            _, check_users = sample_users(list(user_sequences(context.known)), trained.train_users,
                                          trained.valid_users, trained.seed)
            checks = check_variants(llm, check_lists(context.known, [str(i) for i in split.dataset.items.index],
                                                     check_users, CHECK_NEGATIVES, trained.history_len, trained.seed))
        llm.score_name, llm.title_weight = best_variant(checks)
    else:
        llm.score_name, llm.title_weight = args.score, args.title_weight
    outcome = run(config, built, split=split)
    for name, result in outcome.results.items():
        seconds[name] += result["seconds"]
    table = markdown_table(rows_of(outcome.results, seconds))
    print(table)
    print(verdict(outcome.results, "nexttitle"))
    print(json.dumps(training))
    if args.no_record:
        return 0
    first = outcome.results["popularity"]
    train_line = (f"Training: {training.get('examples_seen')} of {training.get('train_examples')} examples (users' "
                  f"last known events as next titles) from {len(context.known):,} known events, "
                  f"{training.get('steps')} steps, {training.get('train_seconds')} s, "
                  f"{training.get('tokens_per_second')} tokens/s, peak memory {training.get('peak_memory_mib')} MiB "
                  f"(process RSS on CPU), loss {training.get('first_loss')} -> {training.get('final_loss')}. "
                  f"Check lists ({training.get('check_users')} held-out training users, their last known item "
                  f"among 19 sampled): NDCG@10 by score {checks}; scored with **{llm.score_name}**"
                  + (f" (title weight {llm.title_weight})" if llm.score_name == "hint+pmi" else "") + ".")
    if args.load:
        train_line += f" Adapter loaded from {args.load}" + (f", trained by `{args.trained_by}`." if args.trained_by
                                                             else ".")
    notes = (f"Candidates: **{first['mode']}** (the target plus 19 seeded negatives from outside the history), the "
             f"same lists for every scorer; each candidate is scored independently of the others, so their order "
             f"cannot matter. Population: {population_line(first)}. {verdict(outcome.results, 'nexttitle')} "
             f"{train_line} Settings (fixed before the run, nothing tuned on these cases; reduced to fit a shared "
             f"2-core CPU, single thread): {settings}. evidence=popularity means each continuation is "
             f"'[pop B] title' with B = floor(log2(1 + known events)), so the model reads and learns a popularity "
             f"hint as well as titles. SASRec and the learned hybrid on the same cases: "
             f"benchmarks/results/evaluate_games.json and ltr_games.json.")
    record(args.name, "Next-title LM reranker (LoRA, title log-likelihood) on Amazon Games, LLMRank protocol",
           command, table, {"results": outcome.results, "seconds": seconds, "options": options, "training": training,
                            "score": [llm.score_name, llm.title_weight], "check_ndcg@10": checks}, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
