"""LEARN and the SASRec baseline on Amazon Scientific and Amazon Games, full ranking.

Everything goes through the one path (``llmrec.run``: load, seeded user subsample, split, the
registered ``sasrec`` and ``learn`` scorers built from the known events, ``RankingEvaluator``), and
every row says how many users it covers out of the data set's total ("N of M users (seeded
subsample)").

For each data set: SASRec (item IDs); LEARN with each item tower (pch, attention, projection) on
content embeddings from the first frozen text model; LEARN with the other text models (one tower);
every result with all / warm / long-tail / cold rows. Also CEG throughput (items/s, frozen model
forward passes only, no cache) and training throughput (training windows per second) on this CPU.

* Amazon Scientific: the RecFormer / UniSRec files, the predefined split (each user's validation
  target after their training sequence), all validation users, full ranking over 4,385 items.
* Amazon Games: the LLMRank validation file, leave-one-out (each user's last event is the target,
  everything before it is known), a seeded subsample of users for training and evaluation
  (``--games-users``, default 10,000 of 50,546), full ranking over all 16,859 items. Subsampling
  users thins the training events, so many more targets are cold than on the whole file; the
  notes give both counts.

Training reads only the events known before the evaluated part. The files hold no ratings, so the
CVR loss is off (``cvr_label=auto``) except in one '+ CVR' row per data set in ``--cvr-on``
(label 'interaction': the true next item 1, an in-batch negative 0). Numbers are recorded in
``benchmarks/results/learn_sasrec.json``.

    python benchmarks/bench_learn.py --data-dir ../shared/data                 # the recorded run
    python benchmarks/bench_learn.py --quick --no-record                       # proves it runs
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
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


def population(info: dict) -> str:
    """'10,000 of 50,546 users (seeded subsample)': how much of the data set a row covers."""
    text = f"{info['users']:,} of {info['users_total']:,} users"
    return text + " (seeded subsample)" if info["subsampled"] else text


def slice_rows(dataset: str, users: str, method: str, text_model: str, result: dict) -> list[dict]:
    return [{"data set": dataset, "users": users, "method": method, "text model": text_model, "slice": name,
             "cases": part["cases"], "NDCG@10": part["ndcg@10"], "Recall@10": part["recall@10"]}
            for name, part in result["slices"].items()]


def cold_targets(split) -> int:
    """Evaluation targets nobody interacted with before the evaluated part."""
    import pandas as pd

    from llmrec.eval import build_cases

    cases = build_cases(split, pd.Index([str(i) for i in split.dataset.items.index]), "test")
    return int((~cases.target_warm).sum())


def run_dataset(name: str, args: argparse.Namespace, workdir: Path) -> tuple[list[dict], list[dict], dict]:
    from llmrec.data.text import learn_item_text
    from llmrec.learn import CEGConfig, ContentEmbeddingGenerator, LearnConfig, LearnSequences
    from llmrec.run import RunConfig, build_context, load_split, make_evaluator
    from llmrec.sasrec import SASRecConfig, SASRecSequences
    from llmrec.sasrec.data import ItemVocabulary

    users = args.scientific_users if name == "amazon-scientific" else args.games_users
    config = RunConfig(dataset=name, data_dir=args.data_dir,
                       split="predefined" if name == "amazon-scientific" else "leave_one_out",
                       max_users=users or None, user_seed=0, part="test", mode="full", show_progress=False)
    split = load_split(config)
    context = build_context(split, config)
    evaluator = make_evaluator(split, config, context)
    known = split.known("test")
    pop = evaluator.population()
    info = {"users": pop["users_in_dataset"], "users_total": pop["users_in_source"],
            "subsampled": pop["subsampled_dataset"], "subsample_seed": config.user_seed if pop["subsampled_dataset"]
            else None, "items": split.dataset.n_items, "split": split.name, "training_events": len(known),
            "eval_cases": evaluator.counts["cases"], "cold_targets": cold_targets(split)}
    info["population"] = population(info)
    if info["subsampled"]:  # the same split on every user: how much of the cold slice the subsample made
        info["cold_targets_all_users"] = cold_targets(load_split(dataclasses.replace(config, max_users=None)))
    print(f"\n== {name}: {info}", flush=True)
    rows: list[dict] = []
    speed: list[dict] = []

    def build_timed(scorer: str, windows: int, passes: float, what: str, /, **options):
        """Build (train) a registered scorer on the known events; its training throughput is recorded."""
        start = time.perf_counter()
        out = context.build(scorer, **options)
        seconds = time.perf_counter() - start
        speed.append({"data set": name, "measure": f"{what} training", "value": windows * passes / seconds,
                      "unit": "sequences/s", "seconds": seconds})
        return out

    quiet = {"save_steps": 0, "progress": False, "logging_steps": 10**9}
    # --- SASRec ------------------------------------------------------------------------------------
    sas_config = SASRecConfig(epochs=args.sasrec_epochs)
    windows = len(SASRecSequences.from_interactions(known, ItemVocabulary.from_split(split), sas_config.max_len))
    scorer = build_timed("sasrec", windows, sas_config.epochs, "SASRec", epochs=args.sasrec_epochs,
                         output_dir=str(workdir / f"{name}-sasrec"), **quiet)
    result = evaluator(scorer)
    rows += slice_rows(name, info["population"], "SASRec", "-", result)
    print(f"SASRec: ndcg@10 {result['ndcg@10']:.4f} recall@10 {result['recall@10']:.4f}", flush=True)

    # --- LEARN ---------------------------------------------------------------------------------
    texts = learn_item_text(split.dataset).to_dict()
    models = args.text_models if name in args.other_models_on else args.text_models[:1]
    for i, text_model in enumerate(models):
        ceg_options = {"text_model": text_model, "max_text_tokens": args.max_text_tokens, "cache_dir": args.cache_dir}
        ceg = CEGConfig(**ceg_options)
        generator = ContentEmbeddingGenerator(ceg).load()
        sample = [texts[k] for k in sorted(texts)[: args.throughput_items]]
        generator.encode(sample[: ceg.encode_batch_size])  # warm-up batch, not timed
        start = time.perf_counter()
        generator.encode(sample)  # no cache: the frozen model's forward passes only
        ceg_seconds = time.perf_counter() - start
        speed.append({"data set": name, "measure": f"CEG {text_model}", "value": len(sample) / ceg_seconds,
                      "unit": "items/s", "seconds": ceg_seconds})
        content = generator(texts)  # fills the cache the learn scorer reads
        print(f"CEG {text_model}: {len(sample) / ceg_seconds:.1f} items/s; {content.stats}", flush=True)
        del generator
        runs = [(tower, {}) for tower in (args.towers if i == 0 else [args.compare_tower])]
        if i == 0 and name in args.cvr_on:
            runs.append((args.compare_tower, {"cvr_label": "interaction", "cvr_weight": 0.1}))
        for tower, extra in runs:
            label = f"LEARN {tower}" + (" + CVR" if extra else "")
            learn = LearnConfig(item_tower=tower, epochs=args.learn_epochs, **extra)
            windows = len(LearnSequences.from_interactions(known, content.index(), learn, cvr_mode="off"))
            scorer = build_timed("learn", windows, learn.epochs, f"{label} ({text_model})", item_tower=tower,
                                 epochs=args.learn_epochs, output_dir=str(workdir / f"{name}-{label}-{i}"),
                                 **ceg_options, **extra, **quiet)
            result = evaluator(scorer)
            rows += slice_rows(name, info["population"], label, text_model, result)
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
    metrics_md = markdown_table(rows, ["data set", "users", "method", "text model", "slice", "cases", "NDCG@10",
                                       "Recall@10"])
    speed_md = markdown_table(speed, ["data set", "measure", "value", "unit", "seconds"], floatfmt=".1f")
    sizes = "; ".join(f"{n}: {i['population']}, {i['items']:,} items (full ranking), {i['split']} split, "
                      f"{i['eval_cases']:,} evaluation cases ({i['cold_targets']:,} with a cold target"
                      + (f"; the same split of all {i['users_total']:,} users has {i['cold_targets_all_users']:,}"
                         + (": subsampling users removes the training events that made the other items warm, so "
                            "the subsample itself makes most of this cold slice"
                            if i["cold_targets"] > 2 * i["cold_targets_all_users"] else "")
                         if "cold_targets_all_users" in i else "") + ")"
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
                f"{args.threads}; whole run {minutes:.1f} min. Training time and throughput include loading "
                "the cached content embeddings (the CEG row times the frozen model itself).")
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
