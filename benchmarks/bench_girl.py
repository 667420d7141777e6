"""GIRL on this CPU at the documented reduced size: the three stages and grounding, on job-views and
MovieLens 100K, recorded from the stages' own reports (``<work>/<dataset>/<stage>/report.json``).

    python benchmarks/bench_girl.py run --dataset job-views --stage sft      # each stage < 10 min here
    python benchmarks/bench_girl.py run --dataset job-views --stage reward
    python benchmarks/bench_girl.py run --dataset job-views --stage rl
    python benchmarks/bench_girl.py run --dataset job-views --stage ground
    (the same with --dataset ml-100k)
    python benchmarks/bench_girl.py record                                  # -> results/girl.json, RESULTS.md

``run`` is ``llmrec girl <stage>`` with the benchmark's settings (``SETTINGS`` below, the same for
both data sets); ``record`` reads whatever reports exist and writes the tables: reward-model AUC,
mean reward and KL of SFT vs RL generations on held-out users, grounding hit@10 / NDCG@10 for SFT,
RL, retrieval-only and popularity on the same candidates, example generations, time per stage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _record import markdown_table, record  # noqa: E402

from llmrec.girl.config import GirlConfig  # noqa: E402

DATASETS = ("job-views", "ml-100k")
STAGES = ("sft", "reward", "rl", "ground")
#: The reduced size for this CPU (2 shared cores): SmolLM2-135M + LoRA r 8 on q/k/v/o, 200 training
#: users (<= 2 pairs each), 60 held-out users, <= 40 new tokens; SFT one epoch, or capped by --sft-steps
#: where the time table says so. RLOO: 40 steps of 2 prompts x 4 samples, lr 5e-4 (the first run's
#: 1e-4 moved the policy by a KL of only 0.045 nats in 24 steps), a checkpoint every 8 steps, the one
#: with the best mean P(match) on 40 *training* users kept out of the RL prompts is kept.
SETTINGS = dict(train_users=200, test_users=60, max_examples_per_user=2, max_new_tokens=40, rl_steps=40,
                rl_learning_rate=5e-4, rl_batch_size=8, rl_generations=4, rl_valid_users=40, rl_eval_every=8,
                device="cpu", progress=False, logging_steps=4, gen_batch_size=30)


def config_for(dataset: str, work: str, **overrides: object) -> GirlConfig:
    return GirlConfig(dataset=dataset, output_dir=f"{work}/{dataset}", **{**SETTINGS, **overrides})  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    import torch

    from llmrec.girl.pipeline import run_ground, run_reward, run_rl, run_sft

    torch.set_num_threads(args.threads)
    overrides = {"max_steps": args.sft_steps} if args.sft_steps else {}
    if args.rl_steps:
        overrides["rl_steps"] = args.rl_steps
    config = config_for(args.dataset, args.work, **overrides)
    if args.stage == "ground":
        report = run_ground(config, args.data_dir, cache_dir=f"{args.work}/embeddings")
    elif args.stage == "rl" and args.finish_from:
        report = run_rl(config, args.data_dir, finish_from=args.finish_from, seconds=args.rl_seconds)
    else:
        report = {"sft": run_sft, "reward": run_reward, "rl": run_rl}[args.stage](config, args.data_dir)
    print(json.dumps({k: v for k, v in report.items() if k not in ("generations", "loss", "history")}, indent=1,
                     default=str))
    return 0


def _read(work: str, dataset: str, stage: str) -> dict | None:
    path = Path(work) / dataset / stage / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _r(value: object, digits: int = 4) -> object:
    return round(value, digits) if isinstance(value, float) else value


def _rl_config(work: str, dataset: str) -> dict:
    path = Path(work) / dataset / "rl" / "girl.json"
    return json.loads(path.read_text()).get("config", {}) if path.is_file() else {}


def tables(work: str) -> tuple[str, dict]:
    reward_rows, rl_rows, ground_rows, example_rows, time_rows, select_rows = [], [], [], [], [], []
    for ds in DATASETS:
        sft, rew, rl, gr = (_read(work, ds, s) for s in STAGES)
        rl_cfg = _rl_config(work, ds)
        steps = (rl or {}).get("steps", rl_cfg.get("rl_steps"))
        stopped = f" of {rl_cfg.get('rl_steps')} planned (stopped: time)" if (rl or {}).get("stopped_early") else ""
        rl_setting = (f"{steps} steps{stopped}, lr {rl_cfg.get('rl_learning_rate')}, "
                      f"{rl_cfg.get('rl_batch_size', 0) // max(1, rl_cfg.get('rl_generations', 1))} prompts x "
                      f"{rl_cfg.get('rl_generations')} samples, beta {rl_cfg.get('beta')}") if rl_cfg else None
        selection = (rl or {}).get("selection")
        if selection:
            for row in selection["checkpoints"]:
                select_rows.append({"dataset": ds, "RL step": row["step"] or "0 (SFT)",
                                    "validation users (training side)": selection["users"],
                                    "mean P(match)": _r(row["mean_p_match"]), "mean reward": _r(row["mean_reward"]),
                                    "KL to SFT (nats/seq)": _r(row["kl_per_sequence"]),
                                    "kept": "yes" if row["step"] == selection["chosen_step"] else ""})
        if rew:
            for key in ("held_out", "held_out_other_negatives"):
                h = rew[key]
                reward_rows.append({"dataset": ds, "negatives": h["negatives"], "held-out users": h["users"],
                                    "pairs": h["pairs"], "AUC": _r(h["auc"]),
                                    "pairwise acc.": _r(h["pairwise_accuracy"])})
        if gr:
            c = gr["reward_kl"]
            for name in ("sft", "rl"):
                g = c[name]
                rl_rows.append({"dataset": ds, "generator": f"girl-{name}",
                                "RL run": rl_setting if name == "rl" else "", "users": g["users"],
                                "mean reward": _r(g["mean_reward"]), "mean P(match)": _r(g["mean_p_match"]),
                                "KL to SFT (nats/seq)": _r(g.get("kl_per_sequence", 0.0)),
                                "empty": g["empty"], "echo": g["echo"]})
            rl_rows[-1]["gain vs SFT (P(match))"] = f"{100 * c['relative_gain_p_match']:+.1f}%"
            rl_rows[-1]["gain vs SFT (raw reward)"] = f"{100 * c['relative_gain_reward']:+.1f}%"
            pop = gr["population"]
            for label, rows in gr["grounding"].items():
                for row in rows:
                    ground_rows.append({"dataset": ds, "candidates": label, "method": row["method"],
                                        "cases": row["cases"], "HR@10": _r(row["hr@10"]),
                                        "NDCG@10": _r(row["ndcg@10"]), "HR@1": _r(row["hr@1"]),
                                        "empty texts": row["empty_texts"],
                                        "users (held-out / total)": f"{pop['held_out_users']} / {pop['users_total']}"})
            for ex in gr["examples"][:3]:
                example_rows.append({"dataset": ds, "matched item": ex["matched"][:70], "SFT": ex["sft"][:70],
                                     "RL": ex["rl"][:70], "reward SFT / RL": f"{ex['sft_reward']} / {ex['rl_reward']}"})
        stage_s = {"sft": (sft or {}).get("seconds"), "reward": (rew or {}).get("seconds"),
                   "rl": (rl or {}).get("seconds")}
        if any(v is not None for v in stage_s.values()):
            t = (gr or {}).get("timings", {})
            time_rows.append({"dataset": ds, "SFT train s": stage_s["sft"], "SFT steps": (sft or {}).get("steps"),
                              "SFT examples": (sft or {}).get("examples"),
                              "reward train s": stage_s["reward"], "reward steps": (rew or {}).get("steps"),
                              "RL train s": stage_s["rl"], "RL steps": (rl or {}).get("steps"),
                              "generate SFT / RL s": f"{t.get('generate_sft_s')} / {t.get('generate_rl_s')}",
                              "grounding s": t.get("grounding_s")})
    parts = [("Reward model, held-out applicants/users (pairs: match vs one mismatch)", reward_rows),
             ("RL checkpoints on a validation slice of the *training* users (kept out of the RL prompts; "
              "the kept one is evaluated below)", select_rows),
             ("Generations on held-out users: mean reward and KL to the SFT model", rl_rows),
             ("Grounding through the evaluator (RankingEvaluator, same cases and candidates for every method): "
              "the held-out user's latest match", ground_rows),
             ("Example generations (held-out users)", example_rows), ("Time per stage on this CPU", time_rows)]
    markdown = "\n\n".join(f"**{title}**\n\n{markdown_table(rows)}" for title, rows in parts if rows)
    return markdown, {"reward": reward_rows, "rl_selection": select_rows, "reward_kl": rl_rows,
                      "grounding": ground_rows, "examples": example_rows, "timings": time_rows, "settings": SETTINGS}


NOTES = ("GIRL (Zheng et al. 2023) on trl 1.x: SFTTrainer (completion-only loss, LoRA r 8 on q/k/v/o of "
         "SmolLM2-135M-Instruct, merged), RewardTrainer (all-MiniLM-L6-v2 cross-encoder with a scalar head on "
         "(profile, job text)), RLOOTrainer (KL penalty beta to the SFT model, reward_funcs = the reward model; "
         "empty or prompt-echoing generations get degenerate_reward). Held-out users are on the other side of a "
         "seeded split by user. job-views profiles: past positions, their descriptions and positions of interest; "
         "applicants with neither are cold users and not in these tables (popularity serves them). Grounding is "
         "llmrec.eval's RankingEvaluator on a split whose test cases are the held-out users only (target: the "
         "latest match; history: the user's earlier events, excluded from the ranking; other users' events known, "
         "later ones included, as in leave-one-out); candidates from llmrec.candidates: sampled-99 = the target + "
         "99 seeded negatives, full = the whole catalogue; the four methods are scorers on the same cases and "
         "lists; GIRL and retrieval-only look up their text for the case's user by History.user. Mean reward and "
         "KL are over one sampled generation per held-out user (temperature 1, the RL sampling distribution); "
         "P(match) = sigmoid(reward-model score); the raw-reward gain depends on where the score's zero lies "
         "(centred Bradley-Terry scores), so the goal is read on P(match). RL checkpoints are compared on 40 "
         "training users kept out of the RL prompts, never on held-out users.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dataset", choices=DATASETS, required=True)
    r.add_argument("--stage", choices=STAGES, required=True)
    r.add_argument("--data-dir", default=None)
    r.add_argument("--work", default="runs/bench_girl")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--sft-steps", type=int, default=0, help="cap SFT optimiser steps (0: one epoch); recorded")
    r.add_argument("--rl-steps", type=int, default=0, help="RLOO steps instead of SETTINGS' (0: keep); recorded")
    r.add_argument("--finish-from", default=None,
                   help="rl: finish a run stopped early from a copy of its checkpoints (<work>/<dataset>/.rl.partial/"
                        "trainer, copied before the next run clears it); the report says it stopped early")
    r.add_argument("--rl-seconds", type=float, default=None, help="with --finish-from: the stopped run's train time")
    rec = sub.add_parser("record")
    rec.add_argument("--work", default="runs/bench_girl")
    rec.add_argument("--no-record", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    markdown, data = tables(args.work)
    print(markdown)
    if not args.no_record:
        command = ("for d in job-views ml-100k; do for s in sft reward rl ground; do python benchmarks/bench_girl.py "
                   "run --dataset $d --stage $s; done; done; python benchmarks/bench_girl.py record  # job-views rl "
                   "(this record): stopped at step 24 (time), then `run --dataset job-views --stage rl --finish-from "
                   "<copy of .rl.partial/trainer> --rl-seconds 3143`; ml-100k rl: the earlier 10-step lr-1e-4 run")
        record("girl", "GIRL: SFT, reward model, RLOO and grounding (job-views, MovieLens 100K)", command, markdown,
               data, notes=NOTES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
