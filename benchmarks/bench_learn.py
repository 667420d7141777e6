"""LEARN and the SASRec baseline on Amazon Scientific and Amazon Games, full ranking.

For each data set: SASRec (item IDs); LEARN with each item tower (pch, attention, projection) on
content embeddings from the first frozen text model; LEARN with the other text models (one tower);
every result with all / warm / long-tail / cold rows. Also CEG throughput (items/s, frozen model
forward passes only, no cache) and training throughput (training windows per second) on this CPU.

* Amazon Scientific: the RecFormer / UniSRec files, the predefined split (each user's validation
  target after their training sequence), all validation users, full ranking over 4,385 items.
* Amazon Games: the LLMRank validation file, leave-one-out (each user's last event is the target,
  everything before it is known), a seeded subsample of users for training and evaluation
  (``--games-users``), full ranking over all 16,859 items.

Training reads only the events known before the evaluated part. The files hold no ratings, so the
CVR loss is off (``cvr_label=auto``) except in one '+ CVR' row per data set in ``--cvr-on``
(label 'interaction': the true next item 1, an in-batch negative 0). Numbers are recorded in
``benchmarks/results/learn_sasrec.json``.

    python benchmarks/bench_learn.py --data-dir ../shared/data                 # the recorded run
    python benchmarks/bench_learn.py --quick --no-record                       # proves it runs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._record import markdown_table, record  # noqa: E402

PUBLISHED = ("Published Amazon Scientific *test* numbers (RecFormer protocol), for orientation only: SASRec "
             ".0797 / .1305, UniSRec .0862 / .1255, RecFormer .1027 / .1448, LEARN .1060 / .1594 "
             "(NDCG@10 / Recall@10). Ours are on the validation users.")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder holding amazon-scientific/ and amazon-games/")
    p.add_argument("--datasets", nargs="+", default=["amazon-scientific", "amazon-games"])
    p.add_argument("--scientific-users", type=int, default=None, help="user subsample (default: all 8,442)")
    p.add_argument("--games-users", type=int, default=10_000, help="user subsample of Amazon Games")
    p.add_argument("--text-models", nargs="+", default=["minilm"],
                   help="frozen CEG models; the first gets every item tower, the others --compare-tower "
                        "(smollm2-135m embeds ~2-5 Amazon Scientific items/s on one busy core: ~15-30 min)")
    p.add_argument("--other-models-on", nargs="+", default=["amazon-scientific"],
                   help="data sets on which the text models after the first are run")
    p.add_argument("--towers", nargs="+", default=["pch", "attention", "projection"])
    p.add_argument("--compare-tower", default="pch", help="item tower for the other text models")
    p.add_argument("--cvr-on", nargs="*", default=["amazon-scientific"],
                   help="data sets that also get LEARN (--compare-tower, first text model) with the auxiliary "
                        "CVR loss; these files have no ratings, so its label is 'interaction' (true next item "
                        "1, an in-batch negative 0), weight 0.1")
    p.add_argument("--learn-epochs", type=float, default=10)
    p.add_argument("--sasrec-epochs", type=float, default=20)
    p.add_argument("--max-text-tokens", type=int, default=128, help="item texts are cut to this many tokens")
    p.add_argument("--throughput-items", type=int, default=256, help="items timed for CEG throughput")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: the shared 2-core CPU runs 10-20x slower with 2)")
    p.add_argument("--cache-dir", default="auto", help="CEG cache (auto: $LLMREC_CACHE_DIR/ceg)")
    p.add_argument("--record-name", default="learn_sasrec",
                   help="name of the results record (a second name keeps an extra run, e.g. another CEG model, "
                        "beside the main one)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes to prove the script runs: 600 users per data set, 1 epoch, MiniLM only")
    p.add_argument("--no-record", action="store_true", help="print, do not record")
    args = p.parse_args(argv)
    if args.quick:
        args.scientific_users, args.games_users = 600, 600
        args.learn_epochs = args.sasrec_epochs = 1
        args.text_models = args.text_models[:1]
        args.throughput_items = 64
    return args


def slice_rows(dataset: str, method: str, text_model: str, result: dict) -> list[dict]:
    return [{"data set": dataset, "method": method, "text model": text_model, "slice": name,
             "cases": part["cases"], "NDCG@10": part["ndcg@10"], "Recall@10": part["recall@10"]}
            for name, part in result["slices"].items()]


def run_dataset(name: str, args: argparse.Namespace, workdir: Path) -> tuple[list[dict], list[dict], dict]:
    import numpy as np

    from llmrec.data.registry import load_dataset
    from llmrec.data.schema import subsample_users
    from llmrec.data.splits import leave_one_out_split, predefined_split
    from llmrec.data.text import learn_item_text
    from llmrec.eval import EvalConfig, RankingEvaluator
    from llmrec.learn import (
        CEGConfig,
        ContentEmbeddingGenerator,
        LearnConfig,
        LearnScorer,
        LearnSequences,
        train_learn,
    )
    from llmrec.sasrec import SASRecConfig, SASRecScorer, SASRecSequences, train_sasrec
    from llmrec.sasrec.data import ItemVocabulary

    dataset = load_dataset(name, args.data_dir)
    users = args.scientific_users if name == "amazon-scientific" else args.games_users
    if users:
        dataset = subsample_users(dataset, users, seed=0)
    split = predefined_split(dataset) if name == "amazon-scientific" else leave_one_out_split(dataset)
    evaluator = RankingEvaluator(split, EvalConfig(part="test", mode="full", show_progress=False))
    known = split.known("test")
    info = {"users": dataset.n_users, "items": dataset.n_items, "split": split.name,
            "training_events": len(known), "eval_cases": evaluator.counts["cases"],
            "cold_targets": int((~np.isin([c["targets"][0] for c in evaluator.cases()],
                                          known["item_id"].unique())).sum())}
    print(f"\n== {name}: {info}", flush=True)
    rows: list[dict] = []
    speed: list[dict] = []

    def train_timed(fn, windows: int, epochs: float, what: str):
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        speed.append({"data set": name, "measure": f"{what} training", "value": windows * epochs / seconds,
                      "unit": "sequences/s", "seconds": seconds})
        return out

    # --- SASRec ------------------------------------------------------------------------------------
    sas_config = SASRecConfig(epochs=args.sasrec_epochs, output_dir=str(workdir / f"{name}-sasrec"),
                              save_steps=0, progress=False, logging_steps=10**9)
    windows = len(SASRecSequences.from_interactions(known, ItemVocabulary.from_split(split), sas_config.max_len))
    model, vocabulary = train_timed(partial(train_sasrec, split, sas_config), windows, sas_config.epochs, "SASRec")
    result = evaluator(SASRecScorer(model, vocabulary))
    rows += slice_rows(name, "SASRec", "-", result)
    print(f"SASRec: ndcg@10 {result['ndcg@10']:.4f} recall@10 {result['recall@10']:.4f}", flush=True)

    # --- LEARN ---------------------------------------------------------------------------------
    texts = learn_item_text(dataset).to_dict()
    models = args.text_models if name in args.other_models_on else args.text_models[:1]
    for i, text_model in enumerate(models):
        ceg = CEGConfig(text_model=text_model, max_text_tokens=args.max_text_tokens, cache_dir=args.cache_dir)
        generator = ContentEmbeddingGenerator(ceg).load()
        sample = [texts[k] for k in sorted(texts)[: args.throughput_items]]
        generator.encode(sample[: ceg.encode_batch_size])  # warm-up batch, not timed
        start = time.perf_counter()
        generator.encode(sample)  # no cache: the frozen model's forward passes only
        ceg_seconds = time.perf_counter() - start
        speed.append({"data set": name, "measure": f"CEG {text_model}", "value": len(sample) / ceg_seconds,
                      "unit": "items/s", "seconds": ceg_seconds})
        content = generator(texts)
        print(f"CEG {text_model}: {len(sample) / ceg_seconds:.1f} items/s; {content.stats}", flush=True)
        runs = [(tower, {}) for tower in (args.towers if i == 0 else [args.compare_tower])]
        if i == 0 and name in args.cvr_on:
            runs.append((args.compare_tower, {"cvr_label": "interaction", "cvr_weight": 0.1}))
        for tower, extra in runs:
            label = f"LEARN {tower}" + (" + CVR" if extra else "")
            config = LearnConfig(item_tower=tower, epochs=args.learn_epochs, save_steps=0, progress=False,
                                 logging_steps=10**9, output_dir=str(workdir / f"{name}-{label}-{i}"), **extra)
            windows = len(LearnSequences.from_interactions(known, content.index(), config, cvr_mode="off"))
            model = train_timed(partial(train_learn, split, content, config, ceg_config=ceg), windows,
                                config.epochs, f"{label} ({text_model})")
            result = evaluator(LearnScorer(model, content))
            rows += slice_rows(name, label, text_model, result)
            print(f"{label} {text_model}: ndcg@10 {result['ndcg@10']:.4f} "
                  f"recall@10 {result['recall@10']:.4f}", flush=True)
    return rows, speed, info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows, speed, infos = [], [], {}
    with tempfile.TemporaryDirectory(prefix="bench-learn-") as tmp:
        for name in args.datasets:
            r, s, info = run_dataset(name, args, Path(tmp))
            rows += r
            speed += s
            infos[name] = info
    minutes = (time.perf_counter() - started) / 60
    metrics_md = markdown_table(rows, ["data set", "method", "text model", "slice", "cases", "NDCG@10", "Recall@10"])
    speed_md = markdown_table(speed, ["data set", "measure", "value", "unit", "seconds"], floatfmt=".1f")
    sizes = "; ".join(f"{n}: {i['users']} users, {i['items']} items (full ranking), {i['split']} split, "
                      f"{i['eval_cases']} evaluation cases ({i['cold_targets']} with a cold target)"
                      for n, i in infos.items())
    from llmrec.learn import LearnConfig
    from llmrec.sasrec import SASRecConfig

    sas, learn = SASRecConfig(), LearnConfig()
    settings = (f"SASRec {args.sasrec_epochs:g} epochs (d {sas.d_model}, {sas.n_layers} blocks, {sas.loss} loss, "
                f"batch {sas.batch_size}, lr {sas.learning_rate:g}); LEARN {args.learn_epochs:g} epochs (d "
                f"{learn.d_model}, {learn.n_layers} causal blocks, InfoNCE over in-batch negatives with the "
                f"user's other items masked, temperature {learn.temperature:g}, batch {learn.batch_size}, lr "
                f"{learn.learning_rate:g}; CVR off except in the '+ CVR' rows: no ratings in these files); "
                f"CEG: last layer mean-pooled, texts cut to {args.max_text_tokens} tokens; torch threads "
                f"{args.threads}; whole run {minutes:.1f} min.")
    markdown = "\n\n".join([metrics_md, "Throughput on this machine:", speed_md])
    notes = "\n\n".join([f"Sizes: {sizes}.", f"Settings: {settings}", PUBLISHED,
                         "Cold rows: targets with no interaction before the evaluated event. SASRec ranks "
                         "them last by construction (no ID row); LEARN embeds them from their text."])
    print("\n" + markdown + "\n\n" + notes)
    if not args.no_record:
        command = "python benchmarks/bench_learn.py " + " ".join(argv if argv is not None else sys.argv[1:])
        title = "LEARN and SASRec (Amazon Scientific, Amazon Games; full ranking)"
        if args.record_name != "learn_sasrec":
            title += f": {', '.join(args.text_models)} on {', '.join(args.datasets)}"
        record(args.record_name, title, command.strip(),
               markdown, {"rows": rows, "throughput": speed, "sizes": infos, "settings": vars(args)}, notes=notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
