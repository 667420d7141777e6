"""``llmrec girl sft | reward | rl | ground``: GIRL's three training stages and the grounding evaluation.

Every action takes the same GIRL settings (``GirlConfig``: data set, users, models, LoRA, stage
knobs) and the work folder ``--output-dir``; each reads what the earlier actions wrote there and
prints its report as JSON (also written to ``<output-dir>/<action>/report.json``).
"""

from __future__ import annotations

import argparse
import json

from llmrec.cli.options import add_dataclass_arguments, dataclass_from_args

ACTIONS = {
    "sft": "stage 1: supervised fine-tuning (profile -> matched item text), LoRA, merged and saved",
    "reward": "stage 2: reward model on matched vs mismatched pairs; held-out pairwise accuracy and AUC",
    "rl": "stage 3: RLOO of the SFT model against the reward model, KL penalty to the SFT model",
    "ground": "held-out users: mean reward and KL of SFT vs RL generations; grounding hit@K / NDCG@K beside "
              "retrieval-only and popularity",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from llmrec.girl.config import GirlConfig

    parser = subparsers.add_parser("girl", help="GIRL: generative recommendation with SFT, a reward model and RL",
                                   description="GIRL (Zheng et al. 2023) on trl: SFT, reward model, RLOO, then "
                                               "grounding of the generated texts to real items.")
    sub = parser.add_subparsers(dest="girl_command", metavar="ACTION", required=True)
    for action, text in ACTIONS.items():
        p = sub.add_parser(action, help=text, description=text)
        p.add_argument("--data-dir", default=None, help="folder of the data set folders (default: LLMREC_DATA_DIR)")
        if action == "ground":
            p.add_argument("--modes", nargs="+", default=["sampled", "full"], choices=["sampled", "full"],
                           help="candidates: sampled (target + --num-negatives) and/or the full catalogue")
            p.add_argument("--num-negatives", type=int, default=99, help="sampled negatives per held-out user")
            p.add_argument("--cache-dir", default=None, help="embedding cache folder (default: no cache)")
        add_dataclass_arguments(p.add_argument_group("GIRL settings"), GirlConfig)
        p.set_defaults(func=run_action)


def run_action(args: argparse.Namespace) -> int:
    from llmrec.girl.config import GirlConfig
    from llmrec.girl.pipeline import run_ground, run_reward, run_rl, run_sft

    config = dataclass_from_args(GirlConfig, args)
    action = args.girl_command
    if action == "ground":
        report = run_ground(config, args.data_dir, tuple(args.modes), args.num_negatives, args.cache_dir)
        report = {k: v for k, v in report.items() if k != "generations"}
    else:
        report = {"sft": run_sft, "reward": run_reward, "rl": run_rl}[action](config, args.data_dir)
    print(json.dumps(report, indent=1, default=str))
    return 0
