"""``llmrec rerank``: LLMRank-style zero/few-shot reranking of candidates by an LLM.

    llmrec rerank --dataset amazon-games --candidates llmrank --prompt sequential \\
        --model smollm2-135m --mode score --bootstrap 1 --users 50 --seed 0

prints NDCG@1/5/10/20 with parse-failure and out-of-candidate rates and seconds per user, and
writes the full result as JSON (atomically) under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses


def _help(cls: type, name: str) -> str:
    return next(f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name)


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.options import add_dataclass_arguments
    from llmrec.llmrank.config import CANDIDATE_STRATEGIES, FALLBACKS, MODES, PROMPTS, LLMRankConfig
    from llmrec.llmrank.pipeline import BASELINES

    parser = subparsers.add_parser(
        "rerank", help="rerank candidates zero/few-shot with an LLM (LLMRank): generate, score, first-token",
        description="Rank each evaluation user's candidates with a language model and report NDCG@1/5/10/20.")
    parser.add_argument("--dataset", required=True, help="data set name (see `llmrec data list`)")
    parser.add_argument("--data-dir", default=None, help="folder holding the data sets (default: $LLMREC_DATA_DIR)")
    parser.add_argument("--candidates", default="llmrank", choices=CANDIDATE_STRATEGIES,
                        help="llmrank: ground truth + n-1 random items, shuffled (sampled protocol); "
                             "multichannel: recalled by --channels, de-duplicated, ground truth not forced in")
    parser.add_argument("--n-candidates", type=int, default=20, help="candidates per user (default: 20)")
    parser.add_argument("--channels", nargs="+", default=["popularity", "itemcf", "bm25", "embedding"],
                        help="multichannel: recall channels in merge order (default: popularity itemcf bm25 embedding)")
    parser.add_argument("--model", default="smollm2-135m",
                        help="packaged model (smollm2-135m, qwen2.5-0.5b, gemma3-270m), a model folder or .gguf file")
    parser.add_argument("--prompt", default="sequential", choices=PROMPTS, help=_help(LLMRankConfig, "prompt"))
    parser.add_argument("--mode", default="score", choices=MODES, help=_help(LLMRankConfig, "mode"))
    parser.add_argument("--fallback", default="input-order", choices=FALLBACKS, help=_help(LLMRankConfig, "fallback"))
    add_dataclass_arguments(parser, LLMRankConfig, skip=("prompt", "mode", "fallback", "domain", "seed"))
    parser.add_argument("--users", type=int, default=50,
                        help="evaluate a seeded random subset of this many users (0: all)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the user subset, the random negatives and the bootstrap shuffles")
    parser.add_argument("--split", default=None, help="split kind (default: the data set's predefined split "
                                                      "when it has one, else leave_one_out)")
    parser.add_argument("--baselines", nargs="*", default=[], choices=BASELINES,
                        help="also rank the same candidates with these non-LLM scorers")
    parser.add_argument("--position-bias", action="store_true",
                        help="also report NDCG with the ground truth fixed at positions 0, 5, 10, 15, 19 "
                             "(llmrank candidates; the LLM as configured, --bootstrap included)")
    parser.add_argument("--out", default="outputs/rerank", help="folder for the JSON result")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from llmrec.llm import load_llm
    from llmrec.llmrank.bootstrap import position_bias_report
    from llmrec.llmrank.config import LLMRankConfig
    from llmrec.llmrank.model import LLMRankScorer
    from llmrec.llmrank.pipeline import (
        baseline_scorer,
        build_recall,
        evaluate_multichannel,
        evaluate_protocol,
        format_table,
        prepare,
        table_row,
    )
    from llmrec.llmrank.prompts import build_demonstrations
    from llmrec.popularity import PopularityScorer
    from llmrec.utils.io import write_json

    if args.n_candidates < 2:
        raise SystemExit("llmrec rerank: error: --n-candidates must be >= 2")
    if args.users < 0:
        raise SystemExit("llmrec rerank: error: --users must be >= 0")
    if args.position_bias and args.candidates != "llmrank":
        raise SystemExit("llmrec rerank: error: --position-bias needs --candidates llmrank")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub from a run

    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(LLMRankConfig) if hasattr(args, f.name)}
    try:  # check the flags before spending time on data
        config = LLMRankConfig(**{**fields, "seed": args.seed})
    except ValueError as err:
        raise SystemExit(f"llmrec rerank: error: {err}") from None

    setup = prepare(args.dataset, args.data_dir, users=args.users or None, n_candidates=args.n_candidates,
                    seed=args.seed, split=args.split)
    config = dataclasses.replace(config, domain=setup.dataset.domain)
    print(f"{setup.dataset.name}: {len(setup.cases)} users, {args.n_candidates} candidates each "
          f"({args.candidates}), split {setup.split.name}/{setup.part}")

    llm = load_llm(args.model)
    known = setup.known
    demos = build_demonstrations(known, config.few_shot, config.few_shot_candidates, seed=args.seed) \
        if config.few_shot else []
    prior = PopularityScorer(known) if config.fallback == "prior" else None
    scorer = LLMRankScorer(llm, setup.item_text, config, prior=prior, demonstrations=demos)
    scorers = [baseline_scorer(name, setup) for name in args.baselines] + [scorer]

    results = []
    recall_info = None
    if args.candidates == "llmrank":
        for s in scorers:
            results.append(evaluate_protocol(setup, s))
    else:
        recalled = build_recall(setup, args.channels).recall(setup.cases.histories)
        for s in scorers:
            results.append(evaluate_multichannel(setup, s, recalled))
        recall_info = results[-1]["recall"]
    position_bias = position_bias_report(scorer, setup.cases) if args.position_bias else None

    print(format_table([table_row(r) for r in results]))
    if recall_info:
        print(f"multichannel: recall@{args.n_candidates} of the merged lists {recall_info['recall@n']:.4f}; "
              f"de-duplication removed {recall_info['dedup_removed_per_user']:.2f} slots per user "
              f"({recall_info['dedup_removed_total']} in all), refilled from deeper ranks")
    if position_bias:
        print("position bias (ground truth fixed at position):")
        for pos, m in position_bias["positions"].items():
            print(f"  {pos:>2}: ndcg@10 {m['ndcg@10']:.4f}  ndcg@1 {m['ndcg@1']:.4f}")
    stats = scorer.stats.as_dict()
    if config.mode == "generate" and stats.get("examples"):
        print(f"first answer: {stats['examples'][0][:200]!r}")

    out = Path(args.out) / (f"rerank_{setup.dataset.name}_{args.candidates}_{config.prompt}_{config.mode}_"
                            f"B{config.bootstrap}_{Path(str(args.model)).name}_u{len(setup.cases)}_s{args.seed}.json")
    write_json(out, {
        "dataset": setup.dataset.name, "split": setup.split.name, "part": setup.part,
        "candidates": args.candidates, "n_candidates": args.n_candidates, "users": len(setup.cases),
        "model": args.model, "config": config.to_dict(),
        "results": results,
        "llm_report": scorer.report(), "position_bias": position_bias, "recall": recall_info,
    })
    print(f"wrote {out}")
    return 0
