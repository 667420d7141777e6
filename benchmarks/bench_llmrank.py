"""LLMRank on Amazon Games validation users: baselines and each packaged LLM in each mode, on the one path.

    python benchmarks/bench_llmrank.py --data-dir ../shared/data            # full run (hours on 2 CPU cores)
    python benchmarks/bench_llmrank.py --data-dir ../shared/data --users 10 --generate-users 10 \\
        --slow-generate-users 3 --multichannel-users 10 --position-bias-users 5 --no-record   # smoke run

Cases: the ``amazon-games`` loader's validation users (``Games-6k.valid.inter``: history -> next
item, the predefined split). Candidates: LLMRank's protocol, the evaluator's sampled mode with 19
negatives (``sampled-19``: the ground truth + 19 random items outside the history, seeded per case
(user, history), never on the target, in a label-blind order). Every number comes from
``llmrec.eval.RankingEvaluator``; every scorer is a registered one (``llmrank`` with options for the
LLM rows), built from the events known before the evaluated part.

Nested rows: all eligible cases are put in one seeded random order; a row with N users evaluates
the first N of that order (the split's test part restricted to those users: the known events, and
so every trained baseline, stay the same). A case's candidate list depends on the case alone, so a
smaller row ranks exactly the lists the same users have in a larger row (checked while running).

Reported: NDCG@1/5/10/20 for popularity, item-CF, BM25, the embedding ranker and each packaged LLM in
each mode (generate, score, score-calibrated, first-token) with parse-failure and out-of-candidate
rates; seconds per user (and ratios to score mode, same model, same run); the multi-channel setting
(``recalled-20``: the channels' merged lists, targets not forced in, so a target that was not
recalled is a miss; recall of the merged lists, de-duplication counts, NDCG@10); a position-bias
report (``position_bias_report``: ground truth fixed at positions 0, 5, 10, 15, 19).

Writes benchmarks/results/llmrank_games.json and rebuilds RESULTS.md (unless --no-record); the
partial results are also written to --out after every row, so a long run keeps what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import time

import numpy as np
import pandas as pd
from _record import markdown_table, record

from llmrec.data.schema import USER
from llmrec.data.splits import Split
from llmrec.eval import EvalConfig, RankingEvaluator, build_cases
from llmrec.llm import ModelNotInstalledError
from llmrec.llmrank.bootstrap import position_bias_report
from llmrec.llmrank.config import MODES
from llmrec.run import RunConfig, build_context, load_split
from llmrec.utils.io import write_json

DATASET = "amazon-games"
MODELS = ("smollm2-135m", "gemma3-270m", "qwen2.5-0.5b")  # smallest first
BASELINE_NAMES = ("popularity", "itemcf", "bm25", "embedding")
CHANNELS = ("popularity", "itemcf", "bm25", "embedding")
NUM_NEGATIVES = 19  # LLMRank: 20 candidates
KS = (1, 5, 10, 20)
PAPER = ("LLMRank's paper (Games *test* users, 20 candidates, NDCG@10): BM25 34.61, UniSRec 40.71, "
         "ChatGPT 53.50.")


class NestedCases:
    """One seeded order of the split's eligible cases; ``split_of(n)`` holds the first ``n`` of it.

    Evaluators are cached per (n, candidates) and checked against the largest one built so far:
    a smaller row must rank exactly the lists its users have in a larger row.
    """

    def __init__(self, split: Split, seed: int) -> None:
        self.split = split
        catalog = pd.Index([str(i) for i in split.dataset.items.index])
        cases = build_cases(split, catalog, "test", min_history=1)
        if len(set(cases.users)) != len(cases.users):
            raise ValueError("nested rows need one evaluation case per user (a leave-one-out or predefined split)")
        order = np.random.default_rng(seed).permutation(len(cases.users))
        self.users = [cases.users[i] for i in order]
        self.seed = seed
        self._evaluators: dict[tuple, RankingEvaluator] = {}
        self._reference: dict[str, dict[str, list[str]]] = {}

    def __len__(self) -> int:
        return len(self.users)

    def split_of(self, n: int) -> Split:
        keep = set(self.users[:n])
        return dataclasses.replace(self.split, test=self.split.test[self.split.test[USER].isin(keep)]
                                   .reset_index(drop=True))

    def evaluator(self, n: int, mode: str = "sampled", channels=(), n_candidates: int = NUM_NEGATIVES + 1
                  ) -> RankingEvaluator:
        n = min(n, len(self.users))
        key = (n, mode, tuple(c.name for c in channels), n_candidates)
        if key not in self._evaluators:
            config = EvalConfig(mode=mode, num_negatives=NUM_NEGATIVES, n_candidates=n_candidates, ks=KS,
                                seed=self.seed, batch_size=8, show_progress=False)
            evaluator = RankingEvaluator(self.split_of(n), config, channels=channels)
            if len(evaluator.cases()) != n:
                raise RuntimeError(f"expected {n} cases, got {len(evaluator.cases())}")
            # Every user's list, as every earlier evaluator of these candidates had it: must agree.
            seen = self._reference.setdefault(repr(key[1:]), {})
            for case in evaluator.cases():
                if seen.setdefault(case["user"], case["candidates"]) != case["candidates"]:
                    raise RuntimeError(f"user {case['user']!r} ranks different candidates in rows of different "
                                       "sizes: the rows would not be nested")
            self._evaluators[key] = evaluator
        return self._evaluators[key]


def measure(scorer, evaluator: RankingEvaluator, label: str | None = None, mode: str = "-") -> dict:
    """Evaluate ``scorer`` and return one record row: metrics, population, timing, LLM parse stats."""
    if hasattr(scorer, "reset_stats"):
        scorer.reset_stats()
    result = evaluator(scorer)
    pop = result["population"]
    cases = result["counts"]["cases"]
    row = {"scorer": label or scorer.name, "mode": mode, "candidates": result["mode"], "users": pop["users_evaluated"],
           "users_total": pop["users_in_dataset"],
           **{k: result[k] for k in result if k.split("@")[0] in ("hr", "ndcg", "mrr")},
           "seconds_per_user": result["scoring_seconds"] / max(1, cases), "scorer_name": scorer.name}
    stats = getattr(scorer, "stats", None)
    if stats is not None and hasattr(stats, "as_dict"):
        s = stats.as_dict()
        row.update(parse_failure_rate=s["parse_failure_rate"], out_of_candidate_rate=s["out_of_candidate_rate"],
                   unparseable_line_rate=s["unparseable_line_rate"], ranked_fraction=s["ranked_fraction"],
                   answer_examples=s["examples"])
    return row


def recall_report(result: dict, channel_recall: dict[str, float]) -> dict:
    """The multi-channel evaluator's account of its lists (how often they hold the target, merging counts)."""
    info, everything = result["candidates"], result["slices"]["all"]
    return {"channels": info["channels"], "quotas": info["quotas"], "n_candidates": info["n_candidates"],
            "dedup_removed_total": info["dedup_removed_total"],
            "dedup_removed_per_user": info["dedup_removed_per_case"],
            "backfilled_per_user": info["backfilled_per_case"],
            "recall@n": everything["targets_listed"] / max(1, everything["targets"]),
            "channel_recall@quota": channel_recall, "users": result["population"]["users_evaluated"]}


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
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the case order, the negatives and the LLM's bootstrap shuffles")
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

    overrides = parse_counts([v.replace(":", "|", 1) for v in args.users_for], "--users-for")

    def users_for(model: str, mode: str) -> int:
        key = f"{model}|{mode}"
        if key in overrides:
            return overrides[key]
        if mode == "generate":
            return args.generate_users if model == args.models[0] else args.slow_generate_users
        return args.users

    t0 = time.perf_counter()
    config = RunConfig(dataset=DATASET, data_dir=args.data_dir, split="auto", mode="sampled",
                       num_negatives=NUM_NEGATIVES, seed=args.seed, batch_size=8, threads=args.threads,
                       show_progress=False)
    split = load_split(config)
    context = build_context(split, config)
    nested = NestedCases(split, args.seed)
    print(f"{len(nested)} validation cases in one seeded order, prepared in {time.perf_counter() - t0:.0f} s",
          flush=True)

    results: dict = {"baselines": [], "llm": [], "multichannel": None, "position_bias": None, "load_seconds": {},
                     "setup": {"dataset": DATASET, "split": split.name, "users_total": split.dataset.n_users,
                               "eligible_cases": len(nested), "candidates": f"sampled-{NUM_NEGATIVES}",
                               "seed": args.seed, "rows": "the first N cases of one seeded order of all "
                                                          "eligible cases (nested)"}}

    def save() -> None:
        write_json(args.out, results)

    def llm(model: str, mode: str, bootstrap: int | None = None):
        return context.build("llmrank", model=model, mode=mode, prompt=args.prompt,
                             bootstrap=bootstrap or args.bootstrap, max_new_tokens=args.max_new_tokens,
                             seed=args.seed)

    # --- baselines on the protocol lists ---------------------------------------------------------
    baselines = {}
    for name in BASELINE_NAMES:
        options = {"show_progress": False} if name == "embedding" else {}
        scorer = context.build(name, **options)
        baselines[name] = scorer
        row = measure(scorer, nested.evaluator(args.users), label=name)
        results["baselines"].append(row)
        print(f"{name}: {row['candidates']}, {row['users']} users, ndcg@10 {row['ndcg@10']:.4f}", flush=True)
        save()

    # --- each packaged LLM in each mode ----------------------------------------------------------
    installed: set[str] = set()
    for model in args.models:
        for mode in args.modes:
            n = users_for(model, mode)
            if n <= 0:
                continue
            start = time.perf_counter()
            try:
                scorer = llm(model, mode)
            except ModelNotInstalledError as err:
                print(f"skipping {model}: {err}", flush=True)
                results["llm"].append({"scorer": model, "skipped": str(err)})
                break
            results["load_seconds"].setdefault(model, time.perf_counter() - start)
            installed.add(model)
            row = measure(scorer, nested.evaluator(n), label=model, mode=mode)
            results["llm"].append(row)
            print(f"{model} {mode}: {row['candidates']}, {n} users, ndcg@10 {row['ndcg@10']:.4f}, "
                  f"{row['seconds_per_user']:.2f} s/user", flush=True)
            save()
            del scorer
            gc.collect()
    smallest = args.models[0] if args.models[0] in installed else None

    # --- multi-channel recall, then rank the recalled lists ------------------------------------
    if args.multichannel_users > 0:
        channels = [baselines[name] for name in CHANNELS]
        n_mc = args.multichannel_users
        mc = nested.evaluator(n_mc, "recalled", channels)
        rows = [measure(baselines[name], mc, label=name) for name in BASELINE_NAMES]
        quotas = mc.candidates.info["quotas"]
        channel_recall = {}
        for channel, quota in zip(channels, quotas, strict=True):  # each channel's own top-quota items
            alone = nested.evaluator(n_mc, "recalled", [channel], n_candidates=quota)(channel)["slices"]["all"]
            channel_recall[channel.name] = alone["targets_listed"] / max(1, alone["targets"])
        n_llm = min(n_mc, args.multichannel_llm_users or n_mc)
        if smallest is not None and n_llm > 0:
            scorer = llm(smallest, "score", bootstrap=1)
            rows.append(measure(scorer, nested.evaluator(n_llm, "recalled", channels), label=smallest, mode="score"))
            del scorer
        report = recall_report(mc.results[BASELINE_NAMES[0]], channel_recall)
        results["multichannel"] = {"recall": report, "rows": rows}
        print(f"multichannel: recall@{report['n_candidates']} {report['recall@n']:.4f}, dedup removed "
              f"{report['dedup_removed_per_user']:.2f}/user", flush=True)
        save()

    # --- position bias ---------------------------------------------------------------------------
    if args.position_bias_users > 0 and smallest is not None:
        scorer = llm(smallest, "score", bootstrap=1)
        evaluator = nested.evaluator(args.position_bias_users)
        results["position_bias"] = {"scorer": f"{smallest} score, B=1", "candidates": evaluator.candidates.label,
                                    **position_bias_report(scorer, evaluator)}
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
    print(notes)
    if not args.no_record:
        given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--record-partial"]
        kept = [a for i, a in enumerate(given)
                if not a.startswith("--data-dir") and not (i and given[i - 1] == "--data-dir")]
        command = " ".join(["python benchmarks/bench_llmrank.py --data-dir ../shared/data", *kept])
        record("llmrank_games", "LLMRank direct ranking: Amazon Games validation users, 20 candidates (sampled-19)",
               command.strip(), markdown, results, notes=notes)


def _users(r: dict) -> str | None:
    if r.get("users") is None:
        return None
    return f"{r['users']:,} of {r['users_total']:,}" if r.get("users_total") else str(r["users"])


def render(results: dict, args: argparse.Namespace) -> tuple[str, str]:
    def main_row(r: dict, ratio: float | None = None) -> dict:
        return {"scorer": r["scorer"], "mode": r.get("mode", "-"), "candidates": r.get("candidates"),
                "users": _users(r), **{f"NDCG@{k}": r.get(f"ndcg@{k}") for k in KS},
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
        parts += ["", f"**Multi-channel recall** (recalled-{rep['n_candidates']}: {', '.join(rep['channels'])}; "
                      f"quotas {rep['quotas']}; ground truth not forced in, a target not recalled is a miss): "
                      f"recall@{rep['n_candidates']} of the merged lists {rep['recall@n']:.4f}; de-duplication "
                      f"removed {rep['dedup_removed_total']} slots ({rep['dedup_removed_per_user']:.2f} per user), "
                      f"refilled from deeper ranks ({rep['backfilled_per_user']:.2f} per user). Per-channel recall "
                      "within its quota: " + ", ".join(f"{k} {v:.4f}" for k, v in rep["channel_recall@quota"].items())
                  + ".", "",
                  markdown_table([{"scorer": r["scorer"], "mode": r["mode"], "candidates": r.get("candidates"),
                                   "users": _users(r), "NDCG@10": r["ndcg@10"], "NDCG@20": r["ndcg@20"],
                                   "s/user": r["seconds_per_user"]} for r in mc["rows"]])]
    pb = results.get("position_bias")
    if pb:
        parts += ["", f"**Position bias** ({pb['scorer']}, {pb['cases']} users, {pb.get('candidates', 'sampled-19')} "
                      "lists with the ground truth moved to a fixed position):",
                  "", markdown_table([{"position": pos, **{f"NDCG@{k}": m[f"ndcg@{k}"] for k in (1, 10)}}
                                      for pos, m in pb["positions"].items()])]
    setup = results.get("setup") or {}
    nested = (f"Every row evaluates the first N of one seeded order of the {setup['eligible_cases']:,} eligible "
              f"validation cases ({setup['users_total']:,} users; 'users' says N of them), so smaller rows are "
              "subsets of larger ones and rank the same lists. ") if setup else ""
    notes = (f"Candidates: sampled-{NUM_NEGATIVES} (the ground truth + {NUM_NEGATIVES} uniform negatives outside "
             "the history, seeded per case, never on the target). " + nested +
             f"Prompt: `{args.prompt}`, bootstrap B={args.bootstrap}, zero-shot. Parse rates apply to "
             "generate mode only (share of answers with no readable candidate; share of named items "
             "outside the candidates). s/user is wall time on this machine (shared CPU: compare ratios "
             f"within a run, not absolute times across runs). {PAPER} Ours are validation users and "
             "models of 135M-500M parameters. With uniform random negatives, popularity is a strong "
             "baseline: the target is usually more popular than 19 random items.")
    return "\n".join(parts), notes


if __name__ == "__main__":
    sys.exit(main())
