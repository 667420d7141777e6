"""TALLRec on this CPU: few-shot AUC on TALLRec's movie validation data, beside a no-LLM item prior
and the zero-shot model, and training throughput / peak memory of this recipe vs TALLRec's.

    python benchmarks/bench_tallrec.py                      # full protocol (see --help for sizes)
    python benchmarks/bench_tallrec.py --shots 16 --seeds 0 --eval-n 50 --es-n 16   # smoke run

Training subsets come from the builder's 8:1:1 train split of MovieLens 100K with every example
whose question also appears in TALLRec's valid.json removed (count reported); early stopping uses
the builder's own valid split; AUC is measured on a seeded subset of valid.json (its test part is
withheld). The item prior is each target item's mean rating over the builder's training examples.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _record import markdown_table, record  # noqa: E402

from llmrec.data.registry import load_dataset  # noqa: E402
from llmrec.eval.metrics import binary_metrics  # noqa: E402
from llmrec.tallrec import TallRecConfig, YesNoScorer, load_base, train_tallrec  # noqa: E402
from llmrec.tallrec.data import (  # noqa: E402
    few_shot_subset,
    movielens_examples,
    read_examples,
    remove_overlap,
    split_examples,
    titles_in_input,
)

TALLREC_PAPER = {16: 67.2, 64: 67.5, 256: 72.0}


def item_prior_auc(train, eval_examples, titles: dict[str, str], ratings: dict) -> dict:
    """AUC of the target's mean training rating; unseen items get the global mean."""
    sums: dict[str, list[float]] = {}
    for e in train:
        sums.setdefault(e.item_id, []).append(ratings[(e.user_id, e.item_id)])
    global_mean = float(np.mean([r for v in sums.values() for r in v]))
    by_title: dict[str, list[str]] = {}
    for item, title in titles.items():
        by_title.setdefault(title, []).append(item)
    scores, unmapped, unseen = [], 0, 0
    for e in eval_examples:
        items = by_title.get(titles_in_input(e.input)[2], [])
        unmapped += not items
        values = [r for i in items for r in sums.get(i, [])]
        unseen += bool(items) and not values
        scores.append(float(np.mean(values)) if values else global_mean)
    out = binary_metrics([e.label for e in eval_examples], scores)
    return {"auc": out["auc"], "unmapped_titles": unmapped, "unseen_items": unseen}


def _throughput_child(kwargs: dict, queue) -> None:
    import torch

    torch.set_num_threads(kwargs.pop("threads"))
    examples = kwargs.pop("examples")
    config = TallRecConfig(**kwargs)
    result = train_tallrec(config, examples, [], output_dir="/tmp/bench_tallrec_throughput")
    peak = result.peak_memory_bytes or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put({"tokens_per_s": result.tokens_per_second, "real_tokens": result.real_tokens,
               "padded_tokens": result.padded_tokens, "seconds": result.seconds, "peak_memory_mb": peak / 2**20})


def throughput(examples, model: str, steps: int, threads: int) -> list[dict]:
    """Same model, data and steps: this recipe vs TALLRec's (pad to max length, no grouping), each
    in its own process so peak memory (RSS, or CUDA peak on a GPU) is its own."""
    recipes = {
        "llmrec (length-grouped, dynamic padding, fp32)": dict(sampling="group_by_length"),
        "TALLRec-style (pad to 512, random order, fp32)": dict(sampling="random", pad_to_max_length=True),
    }
    rows = []
    ctx = mp.get_context("spawn")
    for name, extra in recipes.items():
        queue = ctx.Queue()
        kwargs = dict(model=model, device="cpu", max_steps=steps, per_device_train_batch_size=4,
                      early_stopping_patience=0, logging_steps=1000, max_length=512, threads=threads,
                      examples=examples, **extra)
        proc = ctx.Process(target=_throughput_child, args=(kwargs, queue))
        proc.start()
        out = queue.get()
        proc.join()
        rows.append({"recipe": name, **out})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--shots", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-n", type=int, default=200, help="seeded subset of valid.json scored (1000 = all)")
    parser.add_argument("--es-n", type=int, default=32, help="builder-valid examples for early stopping")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--example-passes", type=int, default=0,
                        help="if > 0, each run trains max(1, this / shots) epochs instead of --epochs (e.g. 128: "
                             "16 shots x 8 epochs, 64 x 2, 256 x 1), so small subsets get as many steps as one epoch "
                             "of a bigger one")
    parser.add_argument("--eval-every", type=int, default=0, help="early-stopping scoring every N steps (0: per epoch)")
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate (TALLRec: 1e-4 at batch 128)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--throughput-steps", type=int, default=3)
    parser.add_argument("--template", default="alpaca")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write benchmarks/results")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data_dir = Path(args.data_dir)
    dataset = load_dataset("ml-100k", data_dir)
    examples = movielens_examples(dataset)
    parts = split_examples(examples, by="example", seed=42)
    official = read_examples(data_dir / "tallrec" / "movie" / "valid.json")
    train, overlap = remove_overlap(parts["train"], official)
    # Second overlap check, independent of the text layout: (history items as a set, target).
    titles = {str(i): str(t) for i, t in dataset.items["title"].items()}
    official_sets = set()
    for e in official:
        liked, disliked, target = titles_in_input(e.input)
        official_sets.add((frozenset(liked + disliked), target))
    overlap_sets = sum((frozenset(titles[i] for i in e.history), titles[e.item_id]) in official_sets
                       for e in parts["train"])
    eval_examples = few_shot_subset(official, args.eval_n, seed=0)
    es_examples = few_shot_subset(parts["valid"], args.es_n, seed=0)
    ratings = {(u, i): r for u, i, r in dataset.interactions[["user_id", "item_id", "rating"]].itertuples(index=False)}
    prior = item_prior_auc(train, eval_examples, titles, ratings)
    print(f"item prior AUC {prior['auc']:.4f}; overlap removed {overlap} (set check {overlap_sets})", flush=True)

    config = TallRecConfig(model=args.model, device="cpu", template=args.template, num_train_epochs=args.epochs,
                           learning_rate=args.lr, per_device_train_batch_size=args.batch_size,
                           early_stopping_patience=args.patience, max_eval_examples=args.es_n,
                           eval_every_steps=args.eval_every, logging_steps=1000)
    model, tokenizer = load_base(config)
    zero = YesNoScorer(model.eval(), tokenizer, template=args.template).evaluate(eval_examples)
    print(f"zero-shot AUC {zero['auc']:.4f}", flush=True)
    runs = []
    for k in args.shots:
        for seed in args.seeds:
            run_start = time.perf_counter()  # load + train + early stopping + final AUC: the user's wait
            epochs = max(1.0, args.example_passes / k) if args.example_passes > 0 else args.epochs
            run_config = TallRecConfig.from_dict({**config.to_dict(), "shots": k, "seed": seed,
                                                  "num_train_epochs": epochs})
            model, tokenizer = load_base(run_config)
            result = train_tallrec(run_config, train, es_examples, output_dir=f"/tmp/bench_tallrec_{k}_{seed}",
                                   model=model, tokenizer=tokenizer)
            auc = result.scorer.evaluate(eval_examples)["auc"]
            runs.append({"shots": k, "seed": seed, "auc": auc, "early_stop_auc": result.best_valid_auc,
                         "best_step": result.best_step, "steps": result.steps, "train_s": round(result.seconds, 1),
                         "run_s": round(time.perf_counter() - run_start, 1)})
            print(runs[-1], flush=True)
    rows = []
    for k in args.shots:
        aucs = np.array([r["auc"] for r in runs if r["shots"] == k])
        rows.append({"shots": k, "seeds": len(aucs), "TALLRec AUC (mean ± std)":
                     f"{aucs.mean():.4f} ± {aucs.std(ddof=1) if len(aucs) > 1 else 0:.4f}",
                     "zero-shot AUC": zero["auc"], "item prior AUC": prior["auc"],
                     "paper (LLaMA-7B, test)": str(TALLREC_PAPER.get(k, "-")),
                     "run min (mean: load, train, early stopping, final AUC)":
                         round(float(np.mean([r["run_s"] for r in runs if r["shots"] == k])) / 60, 1)})
    speed = throughput(train[:4 * args.throughput_steps], args.model, args.throughput_steps, args.threads)
    ratio = speed[0]["tokens_per_s"] / speed[1]["tokens_per_s"]
    mem_ratio = speed[0]["peak_memory_mb"] / speed[1]["peak_memory_mb"]
    total = time.perf_counter() - started
    markdown = (markdown_table(rows) + "\n\n" + markdown_table(
        [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()} for r in speed]) +
        f"\n\nThroughput ratio (real tokens/s, llmrec / TALLRec-style): {ratio:.2f}x; "
        f"peak memory ratio {mem_ratio:.2f}.")
    epochs = f"max(1, {args.example_passes} / shots)" if args.example_passes else args.epochs
    notes = (f"Model {args.model}, template {args.template}, fp32, {args.threads} thread(s); "
             f"AUC on {len(eval_examples)} "
             f"of TALLRec's 1,000 movie validation examples (seeded); early stopping on {len(es_examples)} examples of "
             f"the builder's valid split (patience {args.patience}, every {args.eval_every or 'epoch'} steps; "
             f"{epochs} epochs, lr {args.lr:g}, batch {args.batch_size}). "
             f"{overlap} builder-train examples had the same question text as a valid.json example and were removed "
             f"({overlap_sets} by the (history set, target) check). The item prior maps valid.json target titles to "
             f"ML-100K items ({prior['unmapped_titles']} unmapped, {prior['unseen_items']} unseen in training). "
             f"TALLRec's paper numbers are on its withheld test set with LLaMA-7B. Whole run {total / 60:.1f} min.")
    if not args.no_record:
        record("tallrec", "TALLRec: few-shot AUC on MovieLens (TALLRec valid.json), item prior, zero-shot, throughput",
               "python benchmarks/bench_tallrec.py " + " ".join(sys.argv[1:]), markdown,
               {"runs": runs, "rows": rows, "zero_shot": zero, "item_prior": prior, "throughput": speed,
                "overlap_removed": overlap, "overlap_set_check": overlap_sets, "eval_n": len(eval_examples),
                "seconds": total}, notes)
    print(markdown)
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
