"""The fine-tuned LlamaRec reranker on Amazon Games, LLMRank protocol, beside popularity, item-CF and SASRec.

    python benchmarks/bench_llamarec.py --data-dir ../shared/data --threads 1 --train-users 400
    python benchmarks/bench_llamarec.py --load runs/llamarec/games      # re-evaluate a saved adapter

The run configuration is the ``games`` protocol of ``benchmarks/bench_evaluate.py`` (amazon-games,
predefined split = the LLMRank validation users, the target plus 19 seeded negatives in label-blind
order, a seeded subset of 200 cases, batch 8, seed 42), so the numbers sit beside that record's.
Training reads only the events known before the evaluated part: a seeded sample of users, each
one's last known event as the target (``llmrec.llamarec.data``). Nothing is tuned on the evaluated
cases: the settings are fixed before the run and sized for a shared CPU (stated in the record).
The adapter goes to ``--out`` for other runs to load (``--load llamarec=DIR``). SASRec's row comes
from the ``evaluate_games`` record, checked to be the same cases (``_finetuned.reference_results``).
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

from llmrec.eval.report import population_line  # noqa: E402
from llmrec.run import build_context, load_split, run  # noqa: E402

TITLE = "LlamaRec-style fine-tuned reranker (LoRA, letter verbalizer) on Amazon Games, LLMRank protocol"


def llamarec_options(args: argparse.Namespace) -> dict:
    return {**shared_options(args), "bootstrap": args.bootstrap, "template": args.template,
            "target_modules": args.target_modules.split(",")}


def describe(data: dict, results: dict[str, dict], said: str) -> str:
    """The record's notes: candidates, population, verdict, how the adapter was trained, settings."""
    training, first = data["training"], results["popularity"]
    train_line = (f"Training: {training.get('lists_seen')} of {training.get('train_examples')} lists (users' last "
                  f"known events, target + 19 negatives, label-blind order) from {data['known_events']:,} known "
                  f"events, {training.get('epochs')} epoch(s), {training.get('steps')} steps, "
                  f"{training.get('train_seconds')} s, {training.get('tokens_per_second')} prompt tokens/s, peak "
                  f"memory {training.get('peak_memory_mib')} MiB (process RSS on CPU), final loss "
                  f"{training.get('final_loss')}.")
    train_line += provenance_of(data)
    return (f"Candidates: **{first['mode']}** (the target plus 19 seeded negatives from outside the history, "
            f"label-blind order), the same lists for every scorer. Population: {population_line(first)}. "
            f"{said} {train_line} Settings (fixed before the run, nothing tuned on these cases; reduced to fit a "
            f"shared 2-core CPU, single thread): {data['settings']}. evidence=popularity means each candidate line "
            f"also shows floor(log2(1 + its known events)), so this row is the LLM reading titles *and* a "
            f"popularity hint, not titles alone.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, train_users=400, history_len=8, lora_layers=8, learning_rate=3e-4, batch_size=4,
                         out="runs/llamarec/games", name="llamarec_games")
    parser.add_argument("--template", default="rerank", help="prompts/llamarec/<template>.j2")
    parser.add_argument("--target-modules", default="q_proj,k_proj,v_proj,o_proj", help="LoRA modules, comma-separated")
    parser.add_argument("--bootstrap", type=int, default=1)
    args = parser.parse_args(argv)
    config = games_config(args, "outputs/bench_llamarec")
    split = load_split(config)
    if args.rerender:
        def describe_stored(data: dict, results: dict[str, dict], said: str) -> str:
            data.setdefault("known_events", len(split.known(config.part)))  # older records did not store it
            data.setdefault("settings", data["options"]["llamarec"])
            return describe(data, results, said)

        return rerender(args.rerender, describe_stored, "llamarec")
    command = "python benchmarks/bench_llamarec.py " + shlex.join(argv if argv is not None else sys.argv[1:])
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
    training, settings = outcome.results[llm.name].get("diagnostics", {}), options["llamarec"]
    if args.load:  # the adapter's own record: how it was trained and with which settings
        meta = json.loads((Path(args.load) / "llamarec.json").read_text())
        training, settings = meta.get("report", {}), meta["config"]
    data = {"options": options, "training": training, "settings": settings, "known_events": len(context.known),
            "loaded_from": args.load, "trained_by": args.trained_by}
    report(args, command, TITLE, llm.name, outcome.results, seconds, data, describe)
    print(json.dumps(training))
    return 0


if __name__ == "__main__":
    sys.exit(main())
