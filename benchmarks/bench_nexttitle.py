"""The next-title LM reranker on Amazon Games, LLMRank protocol, beside popularity, item-CF and SASRec.

    python benchmarks/bench_nexttitle.py --data-dir ../shared/data --threads 1 --train-users 3000
    python benchmarks/bench_nexttitle.py --load runs/nexttitle/games --zero-shot   # + the untuned base model

The run configuration is the ``games`` protocol of ``benchmarks/bench_evaluate.py`` (amazon-games,
predefined split = the LLMRank validation users, the target plus 19 seeded negatives in label-blind
order, a seeded subset of 200 cases, seed 42), the one ``bench_llamarec.py`` uses, so the rows sit
beside that record's. Training reads only the events known before the evaluated part (a seeded
sample of users, their last known events as targets). The score (sum, mean, pmi, hint+pmi and its
weight) is chosen on held-out *training* users' check lists, never on the evaluated cases; settings
are fixed before the run and sized for a shared CPU (stated in the record). SASRec's row comes from
the ``evaluate_games`` record, checked to be the same cases (``_finetuned.reference_results``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _finetuned import add_common_arguments, games_config, provenance_of, report, rerender, shared_options  # noqa: E402

from llmrec.data.sequences import sample_users, user_sequences  # noqa: E402
from llmrec.eval.report import population_line  # noqa: E402
from llmrec.nexttitle.config import SCORES, NextTitleConfig  # noqa: E402
from llmrec.nexttitle.data import check_lists  # noqa: E402
from llmrec.nexttitle.scorer import CHECK_NEGATIVES, best_variant, check_variants  # noqa: E402
from llmrec.run import build_context, load_split, run  # noqa: E402

TITLE = "Next-title LM reranker (LoRA, title log-likelihood) on Amazon Games, LLMRank protocol"


def describe(data: dict, results: dict[str, dict], said: str) -> str:
    """The record's notes: candidates, population, verdict, training, the check-list choice, settings."""
    training, first = data["training"], results["popularity"]
    score, weight = data["score"]
    train_line = (f"Training: {training.get('examples_seen')} of {training.get('train_examples')} examples (users' "
                  f"last known events as next titles) from {data['known_events']:,} known events, "
                  f"{training.get('steps')} steps, {training.get('train_seconds')} s, "
                  f"{training.get('tokens_per_second')} tokens/s, peak memory {training.get('peak_memory_mib')} MiB "
                  f"(process RSS on CPU), loss {training.get('first_loss')} -> {training.get('final_loss')}. "
                  f"Check lists ({training.get('check_users')} held-out training users, their last known item "
                  f"among 19 sampled): NDCG@10 by score {data['check_ndcg@10']}; scored with **{score}**"
                  + (f" (title weight {weight})" if score == "hint+pmi" else "") + ".")
    train_line += provenance_of(data)
    return (f"Candidates: **{first['mode']}** (the target plus 19 seeded negatives from outside the history), the "
            f"same lists for every scorer; each candidate is scored independently of the others, so their order "
            f"cannot matter. Population: {population_line(first)}. {said} {train_line} Settings (fixed before the "
            f"run, nothing tuned on these cases; reduced to fit a shared 2-core CPU, single thread): "
            f"{data['settings']}. evidence=popularity means each continuation is '[pop B] title' with "
            f"B = floor(log2(1 + known events)), so the model reads and learns a popularity hint as well as titles.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, train_users=3000, history_len=6, lora_layers=10, learning_rate=5e-4, batch_size=8,
                         out="runs/nexttitle/games", name="nexttitle_games")
    parser.add_argument("--targets-per-user", type=int, default=1)
    parser.add_argument("--check-users", type=int, default=200, help="held-out training users for the score choice")
    parser.add_argument("--score", default="auto", choices=["auto", *SCORES],
                        help="auto: the best score (and hint+pmi title weight) on the check lists (training users)")
    parser.add_argument("--title-weight", type=float, default=0.1, help="with --score hint+pmi")
    args = parser.parse_args(argv)
    config = games_config(args, "outputs/bench_nexttitle")
    split = load_split(config)
    if args.rerender:
        def describe_stored(data: dict, results: dict[str, dict], said: str) -> str:
            # Older records stored neither of these: the split and the adapter's own record say them.
            data.setdefault("known_events", len(split.known(config.part)))
            if "settings" not in data:
                if not args.load:
                    raise SystemExit(f"--rerender {args.rerender}: the record predates stored settings; pass "
                                     "--load ADAPTER (and --trained-by COMMAND) so they are read from the adapter")
                data["settings"] = json.loads((Path(args.load) / "nexttitle.json").read_text())["config"]
                # --trained-by: the record evaluated an adapter trained elsewhere; without it, that run trained it.
                data.update(loaded_from=args.load if args.trained_by else None, trained_by=args.trained_by)
            return describe(data, results, said)

        return rerender(args.rerender, describe_stored, "nexttitle")
    command = "python benchmarks/bench_nexttitle.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    options = {"nexttitle": {**shared_options(args), "targets_per_user": args.targets_per_user,
                             "valid_users": args.check_users}}
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
    data = {"options": options, "training": training, "settings": settings, "known_events": len(context.known),
            "score": [llm.score_name, llm.title_weight], "check_ndcg@10": checks, "loaded_from": args.load,
            "trained_by": args.trained_by}
    report(args, command, TITLE, "nexttitle", outcome.results, seconds, data, describe)
    print(json.dumps(training))
    return 0


if __name__ == "__main__":
    sys.exit(main())
