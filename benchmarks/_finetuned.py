"""What the fine-tuned reranker benches (``bench_llamarec.py``, ``bench_nexttitle.py``) share.

Both evaluate one LoRA-tuned LLM on the ``games`` protocol of ``bench_evaluate.py`` (Amazon Games,
LLMRank validation users, target + 19 seeded negatives, a seeded 200 of the cases, seed 42) beside
popularity and item-CF run in the same process. The proof rule also wants the *best* non-LLM method
on the same candidates; on Games that is SASRec, whose CPU training (13 min) each bench does not
repeat: its row is read from the ``evaluate_games`` record, after checking that the record scored
the same cases (same population, and popularity and item-CF rows equal to the ones measured here).

``--rerender NAME`` rebuilds an existing record's table and verdict from its stored data with those
reference rows, without scoring anything again.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from _record import RESULTS_DIR, markdown_table, rebuild, record

from llmrec.run import RunConfig
from llmrec.utils.io import write_json

SLICES = ("all", "warm", "long_tail")
REFERENCE = "evaluate_games"
#: Rows of the reference record that need no LLM (its llmrank row is an LLM and is not a baseline).
REFERENCE_ROWS = ("sasrec", "bm25", "embedding")
#: Rows measured here that must agree with the reference record for it to count as "the same cases".
SHARED_ROWS = ("popularity", "itemcf")


def add_common_arguments(parser: argparse.ArgumentParser, *, train_users: int, history_len: int, lora_layers: int,
                         learning_rate: float, batch_size: int, out: str, name: str) -> None:
    """The flags both benches take (their method-specific flags are added by each bench)."""
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cases", type=int, default=200, help="seeded subset of Games cases (every scorer)")
    parser.add_argument("--seed", type=int, default=42, help="case subsample and negatives (bench_evaluate's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-users", type=int, default=train_users)
    parser.add_argument("--history-len", type=int, default=history_len)
    parser.add_argument("--max-item-chars", type=int, default=40)
    parser.add_argument("--evidence", default="popularity", choices=["none", "popularity"])
    parser.add_argument("--lora-layers", type=int, default=lora_layers)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=learning_rate)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--train-seed", type=int, default=42)
    parser.add_argument("--max-train-minutes", type=float, default=0.0, help="wall-clock cap on training")
    parser.add_argument("--out", default=out, help="where the adapter is saved")
    parser.add_argument("--load", default=None, help="evaluate this saved adapter instead of training")
    parser.add_argument("--trained-by", default=None, help="with --load: the command that trained the adapter (noted)")
    parser.add_argument("--name", default=name, help="record name under benchmarks/results/")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--rerender", default=None, metavar="NAME",
                        help="rebuild the table and verdict of record NAME from its stored data (nothing is scored)")


def shared_options(args: argparse.Namespace) -> dict:
    """The builder options both methods take, from the common flags."""
    return {"train_users": args.train_users, "history_len": args.history_len, "max_item_chars": args.max_item_chars,
            "evidence": args.evidence, "lora_layers": args.lora_layers, "lora_r": args.lora_r,
            "lora_alpha": 2 * args.lora_r, "epochs": args.epochs, "learning_rate": args.learning_rate,
            "batch_size": args.batch_size, "output_dir": args.out, "seed": args.train_seed, "progress": False,
            "max_train_minutes": args.max_train_minutes}


def games_config(args: argparse.Namespace, out_dir: str) -> RunConfig:
    """bench_evaluate's ``games`` protocol, so the rows sit beside that record's."""
    return RunConfig(dataset="amazon-games", data_dir=args.data_dir, split="predefined", mode="sampled",
                     num_negatives=19, max_cases=args.cases, batch_size=8, seed=args.seed, threads=args.threads,
                     show_progress=False, out_dir=out_dir,
                     title="Amazon Games, LLMRank protocol (target + 19 sampled negatives)")


def reference_results(results: dict[str, dict], record_dir: Path = RESULTS_DIR) -> tuple[dict[str, dict], str]:
    """Non-LLM rows of the ``evaluate_games`` record, keyed ``"<name> (evaluate_games)"``, when that record
    scored the same cases as ``results``; otherwise no rows and a sentence saying why."""
    path = record_dir / f"{REFERENCE}.json"
    if not path.is_file():
        return {}, f"No {REFERENCE} record, so SASRec is missing from this table."
    stored = json.loads(path.read_text())["data"]["results"]
    for name in SHARED_ROWS:
        mine, theirs = results.get(name), stored.get(name)
        if mine is None or theirs is None:
            return {}, f"The {REFERENCE} record lacks a {name} row to match cases on; SASRec is not shown."
        if mine["population"] != theirs["population"] or abs(mine["ndcg@10"] - theirs["ndcg@10"]) > 1e-9:
            return {}, (f"The {REFERENCE} record scored other cases ({name} NDCG@10 {theirs['ndcg@10']:.4f} there, "
                        f"{mine['ndcg@10']:.4f} here); its SASRec row is not shown.")
    rows = {f"{name} ({REFERENCE})": stored[name] for name in REFERENCE_ROWS if name in stored}
    return rows, (f"Rows marked ({REFERENCE}) come from that record (`benchmarks/bench_evaluate.py`, trained on all "
                  f"known events). It scored the same cases and candidates: same population, and popularity and "
                  f"item-CF NDCG@10 identical to this run's.")


def provenance_of(data: dict) -> str:
    """Where a loaded adapter came from, for the notes ('' when this run trained it)."""
    if not data.get("loaded_from"):
        return ""
    trained = f", trained by `{data['trained_by']}`." if data.get("trained_by") else "."
    return f" Adapter loaded from {data['loaded_from']}{trained}"


def rows_of(results: dict[str, dict], seconds: dict[str, float]) -> list[dict]:
    """One row per scorer and slice (all, warm, long tail); reference rows have no timing."""
    rows = []
    for name, result in results.items():
        for slice_name in SLICES:
            s = result["slices"][slice_name]
            if s["cases"]:
                took = seconds.get(name)
                rows.append({"scorer": name, "slice": slice_name, "mode": result["mode"], "cases": s["cases"],
                             "NDCG@10": s["ndcg@10"], "HR@1": s["ndcg@1"], "Recall@10": s["recall@10"],
                             "MRR@10": s["mrr@10"],
                             "build+eval s": f"{took:.0f}" if slice_name == "all" and took is not None else None})
    return rows


def verdict(results: dict[str, dict], llm: str) -> str:
    """The LLM row against the best non-LLM row (reference rows included) and against item-CF (the goal)."""
    ndcg = {n: r["ndcg@10"] for n, r in results.items()}
    classic = {n: v for n, v in ndcg.items() if n != llm}
    best = max(classic, key=classic.get)
    word = "beats" if ndcg[llm] > classic[best] else "LOSES to"
    goal = "met" if ndcg[llm] > ndcg["itemcf"] else "NOT met"
    return (f"{llm} (NDCG@10 {ndcg[llm]:.4f}) {word} the best non-LLM scorer on these cases, {best} "
            f"({classic[best]:.4f}), by {abs(ndcg[llm] - classic[best]):.4f}; item-CF {ndcg['itemcf']:.4f}, "
            f"popularity {ndcg['popularity']:.4f}. Goal (fine-tuned reranker above item-CF): {goal}.")


def report(args: argparse.Namespace, command: str, title: str, llm: str, measured: dict[str, dict],
           seconds: dict[str, float], data: dict, describe: Callable[[dict, dict[str, dict], str], str]) -> str:
    """Print the table and verdict and, unless ``--no-record``, store the record.
    ``describe(data, results, verdict)`` writes the bench's notes; the reference rows' provenance follows."""
    references, provenance = reference_results(measured)
    results = {**measured, **references}
    table = markdown_table(rows_of(results, seconds))
    said = verdict(results, llm)
    print(table)
    print(said)
    if not args.no_record:
        record(args.name, title, command, table, {**data, "results": measured, "seconds": seconds,
                                                  "references": sorted(references)},
               notes=f"{describe(data, results, said)} {provenance}")
    return said


def rerender(name: str, describe_stored: Callable[[dict, dict[str, dict], str], str], llm: str) -> int:
    """Rebuild record ``name``'s table, verdict and notes from its stored data plus today's reference rows.
    The stored command stays: no number is re-measured, only the table gains the reference rows."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"--rerender: no record {path}")
    stored = json.loads(path.read_text())
    data = stored["data"]
    references, provenance = reference_results(data["results"])
    results = {**data["results"], **references}
    table = markdown_table(rows_of(results, data["seconds"]))
    said = verdict(results, llm)
    notes = describe_stored(data, results, said)  # first: it may fill in what older records lack
    stored.update(markdown=table, data={**data, "references": sorted(references)},
                  notes=f"{notes} {provenance} (Table re-rendered from the stored record; its measurements and "
                        f"their date are unchanged.)")
    write_json(path, stored)  # measured_at and machine stay those of the measurement
    rebuild()
    print(table)
    print(said)
    return 0
