"""GIRL end to end on a real data set: the four steps the CLI, the GPU script and the benchmark run.

Each step reads the data the same way (``load_girl_data``: same users on the same side for a given
seed), reads the folders earlier steps wrote under ``config.output_dir`` and writes its own with a
``report.json``::

    sft/      merged SFT model (safetensors) + girl.json        <- run_sft
    reward/   reward model (safetensors) + girl.json            <- run_reward
    rl/       RLOO LoRA adapter on the SFT model + girl.json    <- run_rl
    ground/   report.json: reward / KL of SFT vs RL, grounding  <- run_ground
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from llmrec.girl.config import GirlConfig
from llmrec.girl.data import load_girl_data
from llmrec.utils.io import write_json

logger = logging.getLogger(__name__)


def _folder(config: GirlConfig, stage: str) -> Path:
    return Path(config.output_dir) / stage


def _report(config: GirlConfig, stage: str, report: dict) -> dict:
    from accelerate import PartialState

    if PartialState().is_main_process:  # under `accelerate launch` only the main process writes
        write_json(_folder(config, stage) / "report.json", report)
    return report


def run_sft(config: GirlConfig, data_dir: str | None = None) -> dict:
    from llmrec.girl.train import train_sft

    _, data = load_girl_data(config, data_dir)
    info = train_sft(config, data, _folder(config, "sft"))
    info.pop("model"), info.pop("tokenizer")
    return _report(config, "sft", {"dataset": config.dataset, "counts": data.counts, **info})


def run_reward(config: GirlConfig, data_dir: str | None = None) -> dict:
    from llmrec.girl.train import evaluate_reward, train_reward

    _, data = load_girl_data(config, data_dir)
    info = train_reward(config, data, _folder(config, "reward"))
    reward = info.pop("reward")
    other = "random" if config.negatives == "hard" else "hard"
    info["held_out_other_negatives"] = evaluate_reward(reward, data, data.test_users, config, hard=other == "hard")
    return _report(config, "reward", {"dataset": config.dataset, "counts": data.counts, **info})


def run_rl(config: GirlConfig, data_dir: str | None = None, finish_from: str | None = None,
           seconds: float | None = None) -> dict:
    """Stage 3; ``finish_from``: the copied checkpoints of a run stopped early (``train.finish_rl``)."""
    from llmrec.girl.train import finish_rl, load_reward, load_sft, train_rl

    _, data = load_girl_data(config, data_dir)
    policy, tokenizer = load_sft(_folder(config, "sft"), config.device)
    reward = load_reward(_folder(config, "reward"), "cpu" if config.device == "auto" else config.device)
    if finish_from:
        info = finish_rl(config, data, policy, tokenizer, reward, finish_from, _folder(config, "rl"), seconds)
    else:
        info = train_rl(config, data, policy, tokenizer, reward, _folder(config, "rl"))
    info.pop("model")
    return _report(config, "rl", {"dataset": config.dataset, "counts": data.counts, **info})


def run_ground(config: GirlConfig, data_dir: str | None = None, modes: tuple[str, ...] = ("sampled", "full"),
               num_negatives: int = 99, cache_dir: str | None = None) -> dict:
    """Held-out users: SFT and RL generations (mean reward, KL), then the grounding tables."""
    from llmrec.embed import load_sentence_encoder
    from llmrec.girl.evaluate import compare_generators, generate_for_users, kl_to_reference, side_by_side
    from llmrec.girl.ground import TextGrounder, UserTextScorer, grounding_table, heldout_evaluator, heldout_split
    from llmrec.girl.ground import population as girl_population
    from llmrec.girl.train import load_reward, load_rl, load_sft
    from llmrec.registry import BuildContext, build_scorer
    from llmrec.scoring import Scorer

    dataset, data = load_girl_data(config, data_dir)
    users = data.test_users
    # Cases: the held-out users only; every method is a scorer on the same evaluator (cases, candidates).
    # Built before the (slow) generations, so a problem with the split or the registry shows at once.
    split = heldout_split(dataset, data, users)
    evaluators = {mode: heldout_evaluator(split, mode, num_negatives, config.seed) for mode in modes}
    popularity = build_scorer("popularity", BuildContext(split, part="test", show_progress=False))
    reward = load_reward(_folder(config, "reward"))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    sft_model, tokenizer = load_sft(_folder(config, "sft"), config.device)
    sft = generate_for_users("girl-sft", sft_model, tokenizer, data, users, reward, config, seed=config.seed)
    timings["generate_sft_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    rl_base, _ = load_sft(_folder(config, "sft"), config.device)
    rl_model = load_rl(_folder(config, "rl"), rl_base)
    rl = generate_for_users("girl-rl", rl_model, tokenizer, data, users, reward, config, seed=config.seed)
    timings["generate_rl_s"] = round(time.perf_counter() - started, 1)
    kl = kl_to_reference(rl_model, sft_model, tokenizer, data, rl, config)
    comparison = compare_generators(sft, rl, kl)

    started = time.perf_counter()
    encoder = load_sentence_encoder(config.encoder)
    grounder = TextGrounder(encoder, data.item_text, sorted(data.item_text), cache_dir=cache_dir)
    texts = {"girl-sft": sft.grounding_texts(), "girl-rl": rl.grounding_texts(),
             "retrieval-only": {u: data.profiles[u] for u in users}}
    scorers: list[Scorer] = [UserTextScorer(name, grounder, t) for name, t in texts.items()]
    scorers.append(popularity)
    tables = {}
    for evaluator in evaluators.values():
        rows = grounding_table(evaluator, scorers)
        tables[rows[0]["candidates"]] = rows
    timings["grounding_s"] = round(time.perf_counter() - started, 1)
    report = {"dataset": config.dataset, "population": girl_population(data, dataset), "reward_kl": comparison,
              "grounding": tables, "examples": side_by_side(data, sft, rl), "timings": timings,
              "generations": {"sft": sft.raw, "rl": rl.raw, "users": users}}
    return _report(config, "ground", report)
