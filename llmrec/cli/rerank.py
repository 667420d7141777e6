"""``llmrec rerank``: LLMRank-style zero/few-shot reranking of candidates by an LLM, on the one path.

    llmrec rerank --dataset amazon-games --candidates llmrank --prompt sequential \\
        --model smollm2-135m --mode score --bootstrap 1 --users 50 --baselines popularity bm25

``--candidates llmrank`` is the paper's protocol (the target plus n-1 seeded random items: the
evaluator's sampled mode, labelled sampled-19); ``multichannel`` ranks recalled lists (targets not
forced in; a missed target is a miss). Prints the one table (NDCG/Recall with warm / long-tail /
cold rows) and each LLM's parse-failure and out-of-candidate rates; writes metrics.json/.png.
"""

from __future__ import annotations

import argparse
import dataclasses

BASELINES = ("popularity", "item-prior", "itemcf", "bm25", "embedding", "sasrec")


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.cli.options import add_dataclass_arguments
    from llmrec.cli.runargs import add_run_arguments
    from llmrec.llmrank.scorer import LLMRankScorerConfig

    parser = subparsers.add_parser(
        "rerank", help="rerank candidates zero/few-shot with an LLM (LLMRank): generate, score, first-token",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default="llmrank", choices=["llmrank", "multichannel"],
                        help="llmrank: ground truth + n-1 random items, shuffled label-blind (sampled mode); "
                             "multichannel: recalled by --channels, de-duplicated, ground truth not forced in")
    parser.add_argument("--users", type=int, default=50,
                        help="evaluate a seeded random subset of this many cases (0: all)")
    parser.add_argument("--baselines", nargs="*", default=[], choices=BASELINES,
                        help="also rank the same candidates with these non-LLM scorers")
    parser.add_argument("--position-bias", action="store_true",
                        help="also report NDCG with the ground truth fixed at positions 0, 5, 10, 15, 19 "
                             "(llmrank candidates)")
    shared = {f.name for f in dataclasses.fields(LLMRankScorerConfig)}
    add_run_arguments(parser, skip=tuple(shared | {"mode", "max_cases"}), dataset=None, batch_size=8,
                      out_dir="outputs/rerank")
    add_dataclass_arguments(parser.add_argument_group("LLMRank prompt, mode and model"), LLMRankScorerConfig)
    for action in parser._actions:
        if action.dest == "dataset":
            action.required = True
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.cli.options import dataclass_from_args
    from llmrec.cli.runargs import run_config_from_args
    from llmrec.llmrank.bootstrap import position_bias_report
    from llmrec.llmrank.scorer import LLMRankScorerConfig
    from llmrec.run import run as run_path
    from llmrec.utils.io import write_json

    if args.n_candidates < 2:
        raise ValueError("--n-candidates must be >= 2")
    if args.users < 0:
        raise ValueError("--users must be >= 0")
    if args.position_bias and args.candidates != "llmrank":
        raise ValueError("--position-bias needs --candidates llmrank")
    llm_config = dataclass_from_args(LLMRankScorerConfig, args)  # checks the LLM flags before loading data
    mode = "sampled" if args.candidates == "llmrank" else "recalled"
    config = run_config_from_args(args, mode=mode, num_negatives=args.n_candidates - 1,
                                  max_cases=args.users or None)
    outcome = run_path(config, [*args.baselines, "llmrank"], options={"llmrank": dataclasses.asdict(llm_config)})
    for name, result in outcome.results.items():
        diag = result.get("diagnostics")
        if diag:
            rates = {k: diag.get(k) for k in ("parse_failure_rate", "out_of_candidate_rate", "seconds_per_user")}
            print(f"{name}: " + ", ".join(f"{k} {'-' if v is None else f'{v:.4f}'}" for k, v in rates.items()))
            if diag.get("first_answer"):
                print(f"  first answer: {diag['first_answer']!r}")
    if args.position_bias:
        llm = outcome.scorers[next(n for n in outcome.scorers if n.startswith("llmrank"))]
        report = position_bias_report(llm, outcome.evaluator)
        print("position bias (ground truth fixed at position):")
        for pos, m in report["positions"].items():
            print(f"  {pos:>2}: ndcg@10 {m['ndcg@10']:.4f}  ndcg@1 {m['ndcg@1']:.4f}")
        print(f"wrote {write_json(f'{config.out_dir}/position_bias.json', report)}")
    return 0
