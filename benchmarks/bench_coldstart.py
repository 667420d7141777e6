"""Cold-start: baselines, the hybrid, and the LLM steps (enriched text, simulated interactions) per LLM.

    python benchmarks/bench_coldstart.py --data-dir ../shared/data            # SmolLM2 on both data sets
    python benchmarks/bench_coldstart.py --models smollm2-135m qwen2.5-0.5b --datasets ml-100k

For each data set (temporal 70/30 split, full ranking over the whole catalogue, history items
excluded) and each LLM: ``llmrec coldstart enrich`` and ``simulate`` on the cold-start items
(catalogue items without a training event), then ``evaluate``: popularity, newest-first (where
the catalogue has release dates), item-CF, the text ranker, the rank average of popularity and the
text ranker, the hybrid, and its variants with enriched text / simulated events / both. Every
number comes from the one evaluator on the same split and candidates; the hybrid's weights are
fitted on the last 10% (by time) of the training events, never on test. Each run starts with an
empty LLM answer cache (under --work-dir), so the LLM costs reported are measured in that run.
Writes benchmarks/results/coldstart.json (+ chart) and RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _record import markdown_table, record

from llmrec.coldstart.enrich import EnrichConfig, enrich_items, select_item_ids
from llmrec.coldstart.evaluate import ColdStartEvalConfig, evaluate_coldstart
from llmrec.coldstart.files import write_enriched, write_simulated
from llmrec.coldstart.simulate import SimulateConfig, simulate_interactions
from llmrec.registry import build_scorer
from llmrec.run import RunConfig, build_context, load_split, run

LLM_VARIANTS = ("embedding+enriched", "itemcf+simulated", "sasrec+simulated", "hybrid+enriched", "hybrid+simulated",
                "hybrid+both")


def slice_ndcg(result: dict, name: str) -> float | None:
    s = result["slices"].get(name)
    return s["ndcg@10"] if s and s["cases"] else None


ABLATIONS = {  # the hybrid with one design choice undone (weights refitted on validation each time)
    "hybrid -text": {"text": ""},
    "hybrid -cf": {"cf": ""},
    "hybrid all-time popularity": {"recent_share": 1.0},
    "hybrid objective mean(all,cold)": {"objective": "all+cold"},
}


def ablations(split, run_config) -> dict:
    context = build_context(split, run_config, options={"embedding": {"show_progress": False}})
    scorers = [build_scorer("hybrid", context, name=label, **options) for label, options in ABLATIONS.items()]
    return run(run_config, scorers, split=split, echo=lambda _: None, write=False).results


def run_dataset(name: str, args, work: Path) -> dict:
    run_config = RunConfig(dataset=name, data_dir=args.data_dir, split="temporal", test_ratio=0.3, mode="full",
                           show_progress=False, threads=args.threads)
    split = load_split(run_config)
    cold = select_item_ids(split, "cold")
    out: dict = {"split": split.summary(), "cold_items": len(cold), "baselines": {}, "llm": {},
                 "ablations": ablations(split, run_config) if args.ablations else {}}
    for model in args.models:
        tag = model.replace("/", "_")
        started = time.perf_counter()
        # Fresh by default: every LLM cost below is measured in this run (--cache-dir reuses answers).
        cache = args.cache_dir or str(work / "llm_cache" / f"{time.time_ns()}")
        enriched = enrich_items(split.dataset, cold, EnrichConfig(model=model, cache_dir=cache, show_progress=False))
        enrich_file = write_enriched(work / f"{name}_enriched_{tag}.csv", enriched)
        simulated = simulate_interactions(split, SimulateConfig(model=model, prefilter_users=args.prefilter_users,
                                                                keep_users=args.keep_users, cache_dir=cache,
                                                                show_progress=False))
        sim_file = write_simulated(work / f"{name}_simulated_{tag}.csv", simulated)
        llm_seconds = time.perf_counter() - started
        outcome = evaluate_coldstart(run_config, ColdStartEvalConfig(enriched_text=str(enrich_file),
                                                                     simulated_events=str(sim_file),
                                                                     retrain=args.retrain),
                                     split=split, echo=lambda _: None, write=False)
        results = outcome.results
        if not out["baselines"]:
            out["baselines"] = {k: v for k, v in results.items() if k not in LLM_VARIANTS}
        out["llm"][model] = {"results": {k: v for k, v in results.items() if k in LLM_VARIANTS},
                             "enrich": enriched.summary(), "simulate": simulated.summary(),
                             "llm_seconds_this_run": round(llm_seconds, 1)}
        print(name, model, json.dumps({k: [slice_ndcg(v, "all"), slice_ndcg(v, "cold")] for k, v in results.items()}),
              flush=True)
    return out


def tables(data: dict) -> str:
    parts = []
    for name, ds in data["datasets"].items():
        base = ds["baselines"]
        hybrid_cold = slice_ndcg(base["hybrid"], "cold") or 0.0
        rows = []
        for scorer, result in base.items():
            rows.append({"scorer": scorer, "LLM": "-", "all NDCG@10": slice_ndcg(result, "all"),
                         "warm": slice_ndcg(result, "warm"), "cold NDCG@10": slice_ndcg(result, "cold"),
                         "cold lift vs hybrid": None})
        for scorer, result in ds.get("ablations", {}).items():
            rows.append({"scorer": scorer, "LLM": "-", "all NDCG@10": slice_ndcg(result, "all"),
                         "warm": slice_ndcg(result, "warm"), "cold NDCG@10": slice_ndcg(result, "cold"),
                         "cold lift vs hybrid": None})
        for model, entry in ds["llm"].items():
            for scorer, result in entry["results"].items():
                cold = slice_ndcg(result, "cold")
                rows.append({"scorer": scorer, "LLM": model, "all NDCG@10": slice_ndcg(result, "all"),
                             "warm": slice_ndcg(result, "warm"), "cold NDCG@10": cold,
                             "cold lift vs hybrid": None if cold is None or not scorer.startswith("hybrid+")
                             else cold - hybrid_cold})
        first = next(iter(base.values()))
        cases, cold_cases = first["counts"]["cases"], first["slices"]["cold"]["cases"]
        users = first["population"]["users_in_dataset"]
        parts.append(f"**{name}**, temporal 70/30, full ranking over the whole catalogue: all {cases:,} test users "
                     f"with a training event (of {users:,} users), {cold_cases} of them "
                     f"with cold-start targets; {ds['cold_items']} cold-start items.\n\n" + markdown_table(rows))
        cost_rows = []
        for model, entry in ds["llm"].items():
            e, s = entry["enrich"], entry["simulate"]
            cost_rows.append({"LLM": model, "cold items": ds["cold_items"], "enrich accepted": e["accepted"],
                              "enrich rejected": sum(e["rejected"].values()), "no text": e["no_text"],
                              "enrich calls/item": e["llm_calls"] / max(e["items"], 1),
                              "enrich s/item": e["seconds_per_item"],
                              "simulate calls/item": s.get("calls_per_item"),
                              "simulate s/item": s.get("seconds_per_item"),
                              "simulated events": s.get("events"), "rejected pairs": s.get("rejected")})
        parts.append("LLM steps on this CPU, measured in this run from an empty cache (rejections by reason in "
                     "the JSON):\n\n" + markdown_table(cost_rows, floatfmt=".2f"))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "amazon-scientific"])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m"])
    parser.add_argument("--prefilter-users", type=int, default=20)
    parser.add_argument("--keep-users", type=int, default=5)
    parser.add_argument("--retrain", nargs="+", default=["itemcf"],
                        help="scorers retrained with the simulated events (itemcf, sasrec)")
    parser.add_argument("--no-ablations", dest="ablations", action="store_false",
                        help="skip the hybrid's ablation rows")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work-dir", default="outputs/bench_coldstart")
    parser.add_argument("--cache-dir", default=None,
                        help="reuse this LLM answer cache (costs then cover only what was not cached)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    data = {"datasets": {name: run_dataset(name, args, work) for name in args.datasets},
            "settings": {"models": args.models, "prefilter_users": args.prefilter_users, "keep_users": args.keep_users}}
    markdown = tables(data)
    print(markdown)
    if args.no_record:
        return
    notes = ("The hybrid's weights are fitted on validation (the last 10% of training events by time); the LLM "
             "variants keep them. 'cold lift vs hybrid' is the variant's cold-slice NDCG@10 minus the plain "
             "hybrid's. A negative or zero lift is a finding: that LLM step did not help on this data.")
    record("coldstart", "Cold-start: baselines, hybrid, LLM-enriched text and simulated interactions",
           "python benchmarks/bench_coldstart.py --data-dir ../shared/data " + " ".join(
               f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
               for k, v in (("datasets", args.datasets), ("models", args.models), ("retrain", args.retrain))),
           markdown, data, notes=notes)


if __name__ == "__main__":
    sys.exit(main())
