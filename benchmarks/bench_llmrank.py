"""LLMRank on Amazon Games validation users: baselines and each packaged LLM in each mode.

    python benchmarks/bench_llmrank.py --data-dir ../shared/data            # full run (hours on 2 CPU cores)
    python benchmarks/bench_llmrank.py --data-dir ../shared/data --users 10 --generate-users 10 \\
        --slow-generate-users 3 --multichannel-users 10 --position-bias-users 5 --no-record   # smoke run

Cases: the ``amazon-games`` loader's validation users (``Games-6k.valid.inter``: history -> next
item), LLMRank protocol (the ground truth + 19 random items, seeded per user, shuffled). One seeded
sample of users; a row with fewer users takes the first N of that sample in a seeded random order,
so smaller rows are nested subsets of larger ones. Reported: NDCG@1/5/10/20 for popularity, item-CF,
BM25, the embedding ranker and each packaged LLM in each mode (generate, score, score-calibrated,
first-token) with parse-failure and out-of-candidate rates; seconds per user (and ratios to score
mode, same model, same run); the multi-channel setting (recall of the merged lists, de-duplication
counts, NDCG@10); a position-bias report (ground truth fixed at positions 0, 5, 10, 15, 19).

Writes benchmarks/results/llmrank_games.json and rebuilds RESULTS.md (unless --no-record); the
partial results are also written to --out after every row, so a long run keeps what it measured.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np
from _record import markdown_table, record

from llmrec.llm import ModelNotInstalledError, load_llm
from llmrec.llmrank.bootstrap import position_bias_report, ranking_metrics
from llmrec.llmrank.candidates import ProtocolCases, recall_report
from llmrec.llmrank.config import MODES, LLMRankConfig
from llmrec.llmrank.model import LLMRankScorer
from llmrec.llmrank.pipeline import RerankSetup, baseline_scorer, build_recall, prepare, score_in_batches
from llmrec.utils.io import write_json

MODELS = ("smollm2-135m", "gemma3-270m", "qwen2.5-0.5b")  # smallest first
BASELINE_NAMES = ("popularity", "itemcf", "bm25", "embedding")
CHANNELS = ("popularity", "itemcf", "bm25", "embedding")
KS = (1, 5, 10, 20)
PAPER = ("LLMRank's paper (Games *test* users, 20 candidates, NDCG@10): BM25 34.61, UniSRec 40.71, "
         "ChatGPT 53.50.")


def subset(cases: ProtocolCases, order: np.ndarray, n: int) -> ProtocolCases:
    idx = order[:n]
    return ProtocolCases(users=[cases.users[i] for i in idx], histories=[cases.histories[i] for i in idx],
                         targets=[cases.targets[i] for i in idx], candidates=[cases.candidates[i] for i in idx])


def measure(scorer, cases: ProtocolCases, candidates=None) -> dict:
    """Score ``cases`` (their protocol lists, or ``candidates``) and return metrics + timing + stats."""
    if hasattr(scorer, "reset_stats"):
        scorer.reset_stats()
    cands = candidates if candidates is not None else cases.candidates
    start = time.perf_counter()
    scores = score_in_batches(scorer, cases.histories, cands)
    seconds = time.perf_counter() - start
    row = {"users": len(cases), **ranking_metrics(scores, cands, cases.targets, KS),
           "seconds_per_user": seconds / max(1, len(cases))}
    stats = getattr(scorer, "stats", None)
    if stats is not None:
        s = stats.as_dict()
        row.update(parse_failure_rate=s["parse_failure_rate"], out_of_candidate_rate=s["out_of_candidate_rate"],
                   unparseable_line_rate=s["unparseable_line_rate"], ranked_fraction=s["ranked_fraction"],
                   answer_examples=s["examples"])
    return row


def parse_counts(values: list[str], flag: str) -> dict[str, int]:
    out = {}
    for v in values:
        name, _, n = v.partition("=")
        if not n.isdigit():
            raise SystemExit(f"{flag}: expected MODEL=N, got {v!r}")
        out[name] = int(n)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--users", type=int, default=200,
                   help="users for baselines and for the prompt-speed modes (score, score-calibrated, "
                        "first-token) of every model (default 200)")
    p.add_argument("--generate-users", type=int, default=200,
                   help="users for the smallest model's generation mode (default 200)")
    p.add_argument("--slow-generate-users", type=int, default=30,
                   help="users for generation mode of the larger, slower models (default 30)")
    p.add_argument("--users-for", nargs="*", default=[], metavar="MODEL:MODE=N",
                   help="override the users of one (model, mode), e.g. qwen2.5-0.5b:score=100")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--prompt", default="sequential", choices=("sequential", "recency", "icl"))
    p.add_argument("--bootstrap", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=120)
    p.add_argument("--multichannel-users", type=int, default=200)
    p.add_argument("--multichannel-llm-users", type=int, default=None,
                   help="users (the first of the multichannel ones) the smallest LLM ranks on the recalled "
                        "lists (default: all --multichannel-users)")
    p.add_argument("--position-bias-users", type=int, default=50,
                   help="users for the position-bias report (smallest model, score mode, B=1; 5 passes each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 is often fastest on a shared 2-core machine)")
    p.add_argument("--out", default="outputs/bench_llmrank_partial.json")
    p.add_argument("--no-record", action="store_true", help="print only; do not write benchmarks/results")
    p.add_argument("--record-partial", action="store_true",
                   help="measure nothing: record the rows an interrupted run saved in --out (give the same "
                        "flags as that run); the notes say the run was cut short")
    args = p.parse_args(argv)
    if args.record_partial:
        import json
        from pathlib import Path

        try:
            saved = json.loads(Path(args.out).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"--record-partial: cannot read the saved rows in {args.out}: {err}") from None
        if not isinstance(saved, dict) or "baselines" not in saved or "llm" not in saved:
            raise SystemExit(f"--record-partial: {args.out} is not a bench_llmrank partial file "
                             "(expected the keys 'baselines' and 'llm')")
        finish(saved, args, argv, partial=True)
        return

    import torch

    torch.set_num_threads(args.threads)
    overrides = parse_counts([v.replace(":", "|", 1) for v in args.users_for], "--users-for")

    def users_for(model: str, mode: str) -> int:
        key = f"{model}|{mode}"
        if key in overrides:
            return overrides[key]
        if mode == "generate":
            return args.generate_users if model == args.models[0] else args.slow_generate_users
        return args.users

    need = max([args.users, args.generate_users, args.slow_generate_users, args.multichannel_users,
                args.position_bias_users, *overrides.values()])
    t0 = time.perf_counter()
    setup: RerankSetup = prepare("amazon-games", args.data_dir, users=need, seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(len(setup.cases))
    print(f"{len(setup.cases)} validation users prepared in {time.perf_counter() - t0:.0f} s", flush=True)

    results: dict = {"baselines": [], "llm": [], "multichannel": None, "position_bias": None, "load_seconds": {}}

    def save() -> None:
        write_json(args.out, results)

    # --- baselines on the protocol lists ---------------------------------------------------------
    base_cases = subset(setup.cases, order, args.users)
    baselines = {}
    for name in BASELINE_NAMES:
        scorer = baseline_scorer(name, setup)
        baselines[name] = scorer
        row = {"scorer": name, "mode": "-", **measure(scorer, base_cases)}
        results["baselines"].append(row)
        print(f"{name}: ndcg@10 {row['ndcg@10']:.4f}", flush=True)
        save()

    # --- each packaged LLM in each mode ----------------------------------------------------------
    smallest_llm = None
    for model in args.models:
        start = time.perf_counter()
        try:
            llm = load_llm(model, show_progress=False)
        except ModelNotInstalledError as err:
            print(f"skipping {model}: {err}", flush=True)
            results["llm"].append({"scorer": model, "skipped": str(err)})
            continue
        results["load_seconds"][model] = time.perf_counter() - start
        for mode in args.modes:
            n = users_for(model, mode)
            if n <= 0:
                continue
            cfg = LLMRankConfig(prompt=args.prompt, mode=mode, domain=setup.dataset.domain,
                                bootstrap=args.bootstrap, max_new_tokens=args.max_new_tokens, seed=args.seed)
            scorer = LLMRankScorer(llm, setup.item_text, cfg, show_progress=False)
            row = {"scorer": model, "mode": mode, **measure(scorer, subset(setup.cases, order, n))}
            results["llm"].append(row)
            print(f"{model} {mode}: {n} users, ndcg@10 {row['ndcg@10']:.4f}, {row['seconds_per_user']:.2f} s/user",
                  flush=True)
            save()
        if model == args.models[0]:
            smallest_llm = llm
        else:
            del llm
            gc.collect()

    # --- multi-channel recall, then rank the recalled lists ------------------------------------
    if args.multichannel_users > 0:
        mc_cases = subset(setup.cases, order, args.multichannel_users)
        recall = build_recall(setup, CHANNELS)
        recalled = recall.recall(mc_cases.histories)
        report = recall_report(recalled, mc_cases.targets)
        rows = [{"scorer": name, "mode": "-", **measure(baselines[name], mc_cases, recalled.candidates)}
                for name in BASELINE_NAMES]
        n_llm = min(args.multichannel_users, args.multichannel_llm_users or args.multichannel_users)
        if smallest_llm is not None and n_llm > 0:
            cfg = LLMRankConfig(prompt=args.prompt, mode="score", domain=setup.dataset.domain, seed=args.seed)
            rows.append({"scorer": args.models[0], "mode": "score",
                         **measure(LLMRankScorer(smallest_llm, setup.item_text, cfg, show_progress=False),
                                   subset(mc_cases, np.arange(n_llm), n_llm), recalled.candidates[:n_llm])})
        results["multichannel"] = {"recall": report, "rows": rows}
        print(f"multichannel: recall@20 {report['recall@n']:.4f}, dedup removed "
              f"{report['dedup_removed_per_user']:.2f}/user", flush=True)
        save()

    # --- position bias ---------------------------------------------------------------------------
    if args.position_bias_users > 0 and smallest_llm is not None:
        cfg = LLMRankConfig(prompt=args.prompt, mode="score", domain=setup.dataset.domain, seed=args.seed)
        scorer = LLMRankScorer(smallest_llm, setup.item_text, cfg, show_progress=False)
        results["position_bias"] = {"scorer": f"{args.models[0]} score, B=1",
                                    **position_bias_report(scorer, subset(setup.cases, order,
                                                                          args.position_bias_users), ks=KS)}
        save()
    results["total_seconds"] = time.perf_counter() - t0
    save()

    finish(results, args, argv)


def finish(results: dict, args: argparse.Namespace, argv: list[str] | None, partial: bool = False) -> None:
    markdown, notes = render(results, args)
    if partial:
        notes += (" This run was stopped before it finished: only the rows above were measured (each row was "
                  "saved as soon as it was measured); the rows it did not reach are absent, not estimated.")
    print(markdown)
    if not args.no_record:
        given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--record-partial"]
        kept = [a for i, a in enumerate(given)
                if not a.startswith("--data-dir") and not (i and given[i - 1] == "--data-dir")]
        command = " ".join(["python benchmarks/bench_llmrank.py --data-dir ../shared/data", *kept])
        record("llmrank_games", "LLMRank direct ranking: Amazon Games validation users, 20 candidates",
               command.strip(), markdown, results, notes=notes)


def render(results: dict, args: argparse.Namespace) -> tuple[str, str]:
    def main_row(r: dict, ratio: float | None = None) -> dict:
        return {"scorer": r["scorer"], "mode": r.get("mode", "-"), "users": r.get("users"),
                **{f"NDCG@{k}": r.get(f"ndcg@{k}") for k in KS},
                "parse fail": r.get("parse_failure_rate"), "out of cand.": r.get("out_of_candidate_rate"),
                "s/user": r.get("seconds_per_user"), "x score-mode time": ratio}

    rows = [main_row(r) for r in results["baselines"]]
    for r in results["llm"]:
        if "skipped" in r:
            rows.append({"scorer": r["scorer"], "mode": "not installed"})
            continue
        base = next((x["seconds_per_user"] for x in results["llm"]
                     if x.get("scorer") == r["scorer"] and x.get("mode") == "score"), None)
        rows.append(main_row(r, r["seconds_per_user"] / base if base else None))
    parts = [markdown_table(rows, floatfmt=".4f")]
    mc = results.get("multichannel")
    if mc:
        rep = mc["recall"]
        parts += ["", f"**Multi-channel recall** ({', '.join(rep['channels'])}; quotas {rep['quotas']}; "
                      f"ground truth not forced in): recall@{rep['n_candidates']} of the merged lists "
                      f"{rep['recall@n']:.4f}; de-duplication removed {rep['dedup_removed_total']} slots "
                      f"({rep['dedup_removed_per_user']:.2f} per user), refilled from deeper ranks "
                      f"({rep['backfilled_per_user']:.2f} per user). Per-channel recall within its quota: "
                      + ", ".join(f"{k} {v:.4f}" for k, v in rep["channel_recall@quota"].items()) + ".", "",
                  markdown_table([{"scorer": r["scorer"], "mode": r["mode"], "users": r["users"],
                                   "NDCG@10": r["ndcg@10"], "NDCG@20": r["ndcg@20"],
                                   "s/user": r["seconds_per_user"]} for r in mc["rows"]])]
    pb = results.get("position_bias")
    if pb:
        parts += ["", f"**Position bias** ({pb['scorer']}, {pb['cases']} users, ground truth fixed at a position):",
                  "", markdown_table([{"position": pos, **{f"NDCG@{k}": m[f"ndcg@{k}"] for k in (1, 10)}}
                                      for pos, m in pb["positions"].items()])]
    notes = (f"Prompt: `{args.prompt}`, bootstrap B={args.bootstrap}, zero-shot. Parse rates apply to "
             "generate mode only (share of answers with no readable candidate; share of named items "
             "outside the candidates). s/user is wall time on this machine (shared CPU: compare ratios "
             f"within a run, not absolute times across runs). {PAPER} Ours are validation users and "
             "models of 135M-500M parameters. With uniform random negatives, popularity is a strong "
             "baseline: the target is usually more popular than 19 random items.")
    return "\n".join(parts), notes


if __name__ == "__main__":
    sys.exit(main())
