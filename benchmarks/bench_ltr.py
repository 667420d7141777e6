"""The learned hybrid ranker (``ltr``) beside every scorer it combines, on the same cases and lists.

    python benchmarks/bench_ltr.py --protocol games --fit-users 300 --cases 200 --no-refit
    # the LLM feature in two more processes beside it (same flags), meeting the main run halfway:
    python benchmarks/bench_ltr.py --protocol games --fit-users 300 --cases 200 --no-refit --prefetch fit
    python benchmarks/bench_ltr.py --protocol games --fit-users 300 --cases 200 --no-refit --prefetch eval
    python benchmarks/bench_ltr.py --protocol games --extra llamarec --load llamarec=runs/llamarec/games
    python benchmarks/bench_ltr.py --protocol scientific --cases 300 --fit-users 1500 --sasrec-epochs 20

Amazon Games, LLMRank protocol (the target + 19 seeded negatives, label-blind order), the same
RunConfig and seed as ``bench_evaluate.py --protocols games``; Amazon Scientific, full ranking, the
hybrid reranking item-CF's top 20 (a seeded subset of cases: the LLM feature costs seconds a user).
The ranking model learns from training users' last *known* events (never from the evaluated part);
the rows are each feature scorer alone, the hybrid, the hybrid refitted on the same fitting lists
without the LLM feature(s) (the ablation), a logistic blend, with paired bootstrap intervals over the evaluated cases.

Feature scores are cached under ``--runs``/cache (keyed by history and candidates), so a second run
with another feature only scores that one; trained feature models live under ``--runs``/games.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np
from _record import RESULTS_DIR, markdown_table, record
from tqdm.auto import tqdm

from llmrec.eval import RankingEvaluator, paired_difference
from llmrec.eval.report import population_line
from llmrec.ltr import LTRConfig
from llmrec.ltr.data import fitting_lists, holdout_last_split
from llmrec.ltr.model import LTRScorer, Ranker, first_stage_top
from llmrec.ltr.scorer import train_ltr
from llmrec.registry import BuildContext, get_spec
from llmrec.run import RunConfig, build_context, load_split
from llmrec.scoring import Scorer, is_shared, scorer_diagnostics
from llmrec.utils.io import write_json


def uses_llm(name: str) -> bool:
    """A feature scorer with an LLM in it (the registry says so), whose contribution the ablation measures."""
    return get_spec(name).uses_llm


class CachedScorer:
    """Scores per (history, candidates) row, kept on disk: a feature is scored once per list."""

    def __init__(self, scorer: Scorer, path: Path) -> None:
        self.scorer, self.path, self.name = scorer, path, scorer.name
        # Rows any process stored for this feature (``--prefetch`` runs fill their own files in parallel).
        self.rows: dict[str, list[float]] = {}
        self.reload()
        self.computed = 0

    def reload(self) -> None:
        protocol, _, rest = self.path.name.partition("-")
        feature = rest.partition("-")[2]  # "<stage>-<feature file name>": any stage's rows of this feature
        for other in sorted(self.path.parent.glob(f"{protocol}-*.json")):
            if other.name.partition("-")[2].partition("-")[2] == feature:
                self.rows.update(json.loads(other.read_text()))

    @staticmethod
    def key(history, candidates) -> str:
        text = "\x1f".join(map(str, history)) + "\x1e" + "\x1f".join(map(str, candidates))
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def score(self, histories, candidates) -> np.ndarray:
        if is_shared(candidates):  # a whole catalogue per user: too big to keep, and scored once anyway
            return self.scorer.score(histories, candidates)
        keys = [self.key(h, c) for h, c in zip(histories, candidates, strict=True)]
        todo = [i for i, k in enumerate(keys) if k not in self.rows]
        if todo:  # another process may have scored them meanwhile
            self.reload()
            todo = [i for i, k in enumerate(keys) if k not in self.rows]
        if todo:
            fresh = self.scorer.score([histories[i] for i in todo], [candidates[i] for i in todo])
            for i, row in zip(todo, np.asarray(fresh), strict=True):
                self.rows[keys[i]] = [float(v) for v in row]
            self.computed += len(todo)
            write_json(self.path, self.rows)
        return np.asarray([self.rows[k] for k in keys], dtype=np.float64)

    def diagnostics(self) -> dict:
        return {**scorer_diagnostics(self.scorer), "lists_scored_this_run": self.computed}


def cache_path(runs: Path, protocol: str, stage: str, scorer_name: str, options: dict) -> Path:
    """``<protocol>-<stage>-<scorer>-<options hash>.json``: rows of one feature scorer with one setting."""
    registered = scorer_name.split("[")[0]
    tag = hashlib.blake2b(json.dumps(options.get(registered, {}), sort_keys=True).encode(), digest_size=4).hexdigest()
    slug = re.sub(r"[^A-Za-z0-9.]+", "_", scorer_name).strip("_")
    return runs / "cache" / f"{protocol}-{stage}-{slug}_{tag}.json"


def protocol_config(args: argparse.Namespace) -> tuple[RunConfig, dict, str, str]:
    """The run, the ltr settings it needs, the title and how its lists are made."""
    common = dict(data_dir=args.data_dir, split="predefined", max_cases=args.cases, seed=args.seed,
                  threads=args.threads, show_progress=False)
    if args.protocol == "games":
        return (RunConfig(dataset="amazon-games", mode="sampled", num_negatives=19, batch_size=8, **common), {},
                "Amazon Games, LLMRank protocol (target + 19 sampled negatives)",
                "the target plus 19 seeded negatives from outside the history, label-blind order, the lists of "
                f"`bench_evaluate.py --protocols games` (seed {args.seed})")
    return (RunConfig(dataset="amazon-scientific", mode="full", batch_size=32, **common),
            {"first_stage": "itemcf", "rerank_top": args.rerank_top},
            "Amazon Scientific, predefined split, full ranking",
            f"every catalogue item, history excluded; the hybrid reranks item-CF's top {args.rerank_top} and keeps "
            "item-CF's order below them, and is fitted on item-CF's top lists of the fitting users that hold their "
            "target")


def prefetch(args: argparse.Namespace, context, evaluator: RankingEvaluator, config: LTRConfig, runs: Path) -> int:
    """Score one (untrained) feature scorer on the fitting or the evaluated lists into the cache."""
    name = args.prefetch_feature
    if get_spec(name).trains:
        raise ValueError(f"--prefetch scores untrained features only; {name} trains")
    if args.prefetch == "fit":
        inner = holdout_last_split(context.split, context.part)
        stage = BuildContext(inner, part="test", seed=context.seed, show_progress=False, options=context.options)
        first = stage.build(config.first_stage) if config.first_stage else None  # untrained first stages only
        lists = fitting_lists(inner, config.fit_users, config.num_negatives, config.seed, first, config.rerank_top)
        histories, candidates = lists.histories, lists.candidates
    else:
        stage = context
        cases = evaluator.cases()
        histories = [c["scorer_history"] for c in cases]
        if config.first_stage:  # full ranking: the hybrid scores the first stage's top lists
            catalog = evaluator.catalog
            first = stage.build(config.first_stage)
            candidates = []
            for start in range(0, len(histories), 32):
                batch = histories[start:start + 32]
                tops = first_stage_top(first.score(batch, catalog), batch, [catalog] * len(batch), config.rerank_top)
                candidates += [[catalog[j] for j in top] for top in tops]
        else:
            candidates = [c["candidates"] for c in cases]
    built = stage.build(name)
    scorer = CachedScorer(built, cache_path(runs, args.protocol, f"prefetch{args.prefetch}", built.name,
                                            context.options))
    # Last lists first: the main run scores from the first list on, so the two meet in the middle.
    starts = list(range(0, len(histories), 8))[::-1]
    for start in tqdm(starts, desc=f"prefetch {name} ({args.prefetch})"):
        scorer.score(histories[start:start + 8], candidates[start:start + 8])
    print(f"{name}: {scorer.computed} lists scored, {len(scorer.rows)} cached")
    return 0


def fit_seed_rows(ltr: LTRScorer, config: LTRConfig, llm: list[str], evaluator: RankingEvaluator,
                  n: int) -> list[dict]:
    """The hybrid and its no-LLM ablation refitted with seeds 0..n-1 on the same fitting lists (the
    features are cached, so each row costs a LightGBM fit): how much of the lift is the fit's luck."""
    rows = []
    for seed in range(n):
        seeded = dataclasses.replace(config, seed=seed)
        full = LTRScorer(ltr.scorers, Ranker(config.model, ltr.fit_data.names).fit(ltr.fit_data, seeded),
                         ltr.feature_scorers, name=f"ltr seed {seed}", first_stage=ltr.first_stage,
                         rerank_top=ltr.rerank_top)
        ablated = ltr.without(llm, seeded, name=f"ltr without LLM seed {seed}")
        a, b = evaluator(full)["ndcg@10"], evaluator(ablated)["ndcg@10"]
        rows.append({"seed": seed, "ltr": a, "ltr without LLM features": b, "lift": a - b})
    return rows


def seed_summary(rows: list[dict]) -> list[dict]:
    out = []
    for key in ("ltr", "ltr without LLM features", "lift"):
        values = np.array([r[key] for r in rows])
        out.append({"row": key, "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1
                    else 0.0, "min": float(values.min()), "max": float(values.max()), "seeds": len(values)})
    return out


def time_llm_features(ltr: LTRScorer, features: list[str], evaluator: RankingEvaluator, n: int) -> dict:
    """Score ``n`` evaluated lists afresh with each LLM feature scorer (not the cache): seconds and tokens."""
    cases = evaluator.cases()[:n]
    histories = [c["scorer_history"] for c in cases]
    if "candidates" in cases[0]:
        lists = [c["candidates"] for c in cases]
    else:  # full ranking: the LLM only ever sees the first stage's top lists
        assert ltr.first_stage is not None
        catalog = evaluator.catalog
        tops = first_stage_top(ltr.first_stage.score(histories, catalog), histories, [catalog] * len(histories),
                               ltr.rerank_top)
        lists = [[catalog[j] for j in top] for top in tops]
    out: dict = {}
    for scorer, name in zip(ltr.scorers, features, strict=True):
        if not uses_llm(name):
            continue
        inner = getattr(scorer, "scorer", scorer)
        before = dict(scorer_diagnostics(inner).get("usage") or {})
        start = time.perf_counter()
        inner.score(histories, lists)
        seconds = time.perf_counter() - start
        after = scorer_diagnostics(inner).get("usage") or {}
        tokens = after.get("prompt_tokens", 0) - before.get("prompt_tokens", 0)
        out[name] = {"lists": len(lists), "seconds_per_list": round(seconds / len(lists), 3),
                     "prompt_tokens_per_list": round(tokens / len(lists), 1),
                     "prompt_tokens_per_second": round(tokens / seconds, 1) if seconds else None}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--protocol", default="games", choices=["games", "scientific"])
    parser.add_argument("--rerank-top", type=int, default=20, help="scientific: item-CF candidates reranked")
    parser.add_argument("--cases", type=int, default=200, help="seeded subset of evaluated cases (as bench_evaluate)")
    parser.add_argument("--fit-users", type=int, default=300, help="training users whose last known item is fitted")
    parser.add_argument("--features", nargs="+", default=["popularity", "itemcf", "bm25", "embedding", "sasrec",
                                                          "llmrank"])
    parser.add_argument("--extra", nargs="*", default=[], help="more feature scorers (e.g. llamarec)")
    parser.add_argument("--load", nargs="*", default=[], help="NAME=FOLDER saved models for the final scorers")
    parser.add_argument("--fit-load", nargs="*", default=[],
                        help="loaded features that also score the fitting lists (LTRConfig.fit_load: the fitting "
                             "users then leave out FOLDER/train_users.json), instead of a second training")
    parser.add_argument("--set", dest="settings", nargs="*", default=[], metavar="SCORER.OPTION=VALUE",
                        help="feature scorer options, e.g. nexttitle.score=hint+pmi (typed by the scorer's config)")
    parser.add_argument("--name", default=None, help="record name under benchmarks/results/ (default ltr_PROTOCOL)")
    parser.add_argument("--sasrec-epochs", type=float, default=5.0)
    parser.add_argument("--llm-model", default="smollm2-135m")
    parser.add_argument("--llm-mode", default="first-token",
                        help="llmrank mode of the LLM feature (score: 2.5x slower)")
    parser.add_argument("--llm-history", type=int, default=6, help="history items in the LLM feature's prompt")
    parser.add_argument("--llm-item-chars", type=int, default=40, help="characters per item in that prompt")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", default="runs/bench_ltr")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--fit-seeds", type=int, default=5,
                        help="refit ltr and its no-LLM ablation with this many seeds on the same fitting lists")
    parser.add_argument("--time-llm", type=int, default=16, help="lists the LLM feature scores afresh, timed")
    parser.add_argument("--no-refit", action="store_true",
                        help="score with the feature models built for fitting (one SASRec training instead of two)")
    parser.add_argument("--prefetch", choices=["fit", "eval"], default=None,
                        help="only score --prefetch-feature on the fitting (or evaluated) lists into the cache, so "
                             "slow features run in parallel processes beside the main run")
    parser.add_argument("--prefetch-feature", default="llmrank")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_ltr.py " + " ".join(argv if argv is not None else sys.argv[1:])
    features = list(args.features) + [f for f in args.extra if f not in args.features]
    runs = Path(args.runs)
    config, ltr_options, title, lists_line = protocol_config(args)
    # resume: a run stopped mid-training picks SASRec up from its newest checkpoint.
    options = {"sasrec": {"epochs": args.sasrec_epochs, "resume": True},
               "llmrank": {"model": args.llm_model, "mode": args.llm_mode, "max_history": args.llm_history,
                           "max_item_chars": args.llm_item_chars}}
    for item in args.settings:
        key, eq, value = item.partition("=")
        scorer, dot, option = key.partition(".")
        config_cls = get_spec(scorer).config_cls if eq and dot else None  # an unknown scorer: get_spec names it
        if config_cls is None or not hasattr(config_cls(), option):
            raise SystemExit(f"--set {item!r}: expected SCORER.OPTION=VALUE with an option of that scorer's config, "
                             "e.g. nexttitle.score=hint+pmi")
        kind = type(getattr(config_cls(), option))
        options.setdefault(scorer, {})[option] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    load = dict(item.split("=", 1) for item in args.load)
    split = load_split(config)
    context = build_context(split, config, options, load)
    evaluator = RankingEvaluator(split, config.eval_config(), per_case=True)

    def cached(scorer: Scorer, stage: str) -> Scorer:
        return CachedScorer(scorer, cache_path(runs, args.protocol, stage, scorer.name, options))

    ltr_config = LTRConfig(features=features, fit_users=args.fit_users, output_dir=str(runs / args.protocol),
                           seed=args.seed, refit=not args.no_refit, fit_load=list(args.fit_load), **ltr_options)
    if args.prefetch:
        return prefetch(args, context, evaluator, ltr_config, runs)
    start = time.perf_counter()
    ltr = train_ltr(context, ltr_config, wrap=cached)
    build_seconds = time.perf_counter() - start
    llm = [f for f in features if uses_llm(f)]
    # Each feature scorer alone, except an LLM over a whole catalogue (full ranking): it only ever sees
    # the first stage's top lists, which the hybrid's rows cover.
    alone = [sc for sc, f in zip(ltr.scorers, features, strict=True) if config.mode != "full" or not uses_llm(f)]
    rows_scorers: list[Scorer] = alone + [ltr]
    if llm:
        rows_scorers.append(ltr.without(llm, ltr_config, name="ltr without LLM features"))
        for one in llm if len(llm) > 1 else []:
            rows_scorers.append(ltr.without([one], ltr_config, name=f"ltr without {one}"))
    logistic_ranker = Ranker("logistic", ltr.fit_data.names).fit(ltr.fit_data, ltr_config)
    rows_scorers.append(LTRScorer(ltr.scorers, logistic_ranker, features, name="ltr logistic",
                                  first_stage=ltr.first_stage, rerank_top=ltr.rerank_top))

    results = {}
    for scorer in rows_scorers:
        results[scorer.name] = evaluator(scorer)
    llm_rows = {sc.name for sc, f in zip(ltr.scorers, features, strict=True) if uses_llm(f)}
    seeds = fit_seed_rows(ltr, ltr_config, llm, evaluator, args.fit_seeds) if llm and args.fit_seeds else []
    timing = time_llm_features(ltr, features, evaluator, args.time_llm) if llm and args.time_llm else {}
    no_llm = "ltr without LLM features"
    classic = {n: r["ndcg@10"] for n, r in results.items()
               if n not in llm_rows and not n.startswith("ltr") or n == no_llm}
    best = max(classic, key=classic.get)
    single = {n: r["ndcg@10"] for n, r in results.items() if not n.startswith("ltr") and n not in llm_rows}
    best_single = max(single, key=single.get)

    def ci(a: str, b: str) -> dict:
        return paired_difference(results[a]["per_case"]["ndcg@10"], results[b]["per_case"]["ndcg@10"], seed=0)

    comparisons = {f"ltr - {best_single}": ci("ltr", best_single)}
    if llm:
        comparisons[f"ltr - {no_llm}"] = ci("ltr", no_llm)
        comparisons[f"{no_llm} - {best_single}"] = ci(no_llm, best_single)
    rows = []
    for name, r in results.items():
        spec_llm = name in llm_rows or (name.startswith("ltr") and name != no_llm and bool(llm)
                                        and not name.startswith("ltr without"))
        rows.append({"scorer": name, "LLM": "yes" if spec_llm else "-", "mode": r["mode"],
                     "cases": r["population"]["cases"], "NDCG@10": r["ndcg@10"], "HR@10": r["hr@10"],
                     "MRR@10": r["mrr@10"], "NDCG@1": r["ndcg@1"]})
    ci_rows = [{"difference (NDCG@10, paired over cases)": k, "mean": v["mean"], "95% low": v["low"],
                "95% high": v["high"], "cases": v["cases"]} for k, v in comparisons.items()]
    imp = ltr.ranker.importances()
    imp_rows = [{"feature scorer": k, "share of gain": v} for k, v in sorted(imp.items(), key=lambda kv: -kv[1])]
    diag = timing
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first = results["ltr"]
    reference = ""
    previous = RESULTS_DIR / f"evaluate_{args.protocol}.json"
    if previous.is_file():  # the same lists' baselines as bench_evaluate measured them (trained on all known events)
        prev = json.loads(previous.read_text())["data"]
        ref = {n: r.get("ndcg@10") for n, r in prev.get("results", {}).items()}
        if ref.get("sasrec") is not None:
            reference = (f"For reference, bench_evaluate's SASRec trained on all known events scored NDCG@10 "
                         f"{ref['sasrec']:.4f} on the same cases (record evaluate_{args.protocol}). ")
            classic["sasrec (bench_evaluate)"] = ref["sasrec"]
            best = max(classic, key=classic.get)
    floor = 0.65 if args.protocol == "games" else 0.0  # the Games goal; elsewhere: beat every baseline
    goal_ok = first["ndcg@10"] >= floor and all(first["ndcg@10"] > v for v in classic.values())
    lift = comparisons.get(f"ltr - {no_llm}")
    verdict = (f"Best non-LLM row: **{best}** (NDCG@10 {classic[best]:.4f}); popularity "
               f"{results['popularity']['ndcg@10']:.4f}; ltr {first['ndcg@10']:.4f}. Goal on this single fit ("
               + (f"ltr >= {floor} and " if floor else "ltr ") + "above every non-LLM row, the no-LLM ablation "
               f"included): {'met' if goal_ok else 'NOT met'}.")
    if lift:
        word = ("a lift" if lift["low"] > 0 else "a loss" if lift["high"] < 0
                else "no lift distinguishable from case noise")
        verdict += (f" The LLM feature(s) {', '.join(llm)} add {lift['mean']:+.4f} NDCG@10 (95% CI "
                    f"{lift['low']:+.4f} to {lift['high']:+.4f}): {word}.")
    if seeds:
        summary = {r["row"]: r for r in seed_summary(seeds)}
        gain, mean_ltr = summary["lift"], summary["ltr"]["mean"]
        robust = gain["min"] > 0
        verdict += (f" Over {gain['seeds']} fitting seeds (same lists) the hybrid scores {mean_ltr:.4f} ± "
                    f"{summary['ltr']['std']:.4f} and the LLM's lift is {gain['mean']:+.4f} ± {gain['std']:.4f} "
                    f"(min {gain['min']:+.4f}, max {gain['max']:+.4f}): "
                    + ("positive at every seed." if robust else "not robust: the single fit's interval above reflects "
                       "that fit as much as the LLM.")
                    + f" Seed-mean hybrid vs the best non-LLM row: {mean_ltr - classic[best]:+.4f}. Goal judged on "
                    f"the seeds (hybrid above every non-LLM row and an LLM lift at every seed): "
                    f"{'met' if robust and mean_ltr > classic[best] else 'NOT met'}.")
    markdown = "\n\n".join([
        markdown_table(rows),
        "**Paired differences** (bootstrap over the evaluated cases):\n\n" + markdown_table(ci_rows),
        "**Feature importance of the LambdaMART model** (share of total split gain, raw + z + rank features "
        "of each scorer):\n\n" + markdown_table(imp_rows),
        f"Candidates: **{first['mode']}** ({lists_line}). Population: "
        f"{population_line(first)}. Fitting: {ltr.report['fit_users']} training users' last known items "
        f"(of {ltr.report['fit_users_of']:,} users with one), {ltr.ranker.report}; the feature scorers were "
        f"built on the events before those items"
        + (", then rebuilt on every known event for scoring. " if ltr_config.refit else
           " and score the evaluated lists too (no second training: every row here, SASRec's included, is that "
           "model, trained without each user's last known event). ") + f"{reference}{verdict} "
        f"Build (fit features + training{' + refit' if ltr_config.refit else ''}; LLM rows scored by parallel "
        f"--prefetch processes where cached) {build_seconds:.0f} s; peak RSS {peak_mb:.0f} MB; LambdaMART fit "
        f"{ltr.report.get('ranker_fit_seconds', 0):.2f} s. LLM feature cost, evaluated lists scored afresh on "
        f"this CPU: {diag}.",
    ] + ([f"**Fitting seeds** (the same fitting lists, {len(seeds)} seeds of the early-stopping split and "
          "LightGBM): NDCG@10 mean ± std\n\n" + markdown_table(seed_summary(seeds))] if seeds else []))
    data = {"results": {n: {k: v for k, v in r.items() if k != "per_case"} for n, r in results.items()},
            "fit_seeds": seeds, "llm_timing": timing,
            "comparisons": comparisons, "importances": imp, "ltr_report": ltr.report, "ranker": ltr.ranker.report,
            "build_seconds": build_seconds, "peak_rss_mb": peak_mb, "features": features,
            "trains": {f: get_spec(f).trains for f in features}}
    print(markdown)
    if not args.no_record:
        record(args.name or f"ltr_{args.protocol}",
               f"Learned hybrid ranker (LambdaMART over every scorer, LLM included): {title}", command, markdown, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
