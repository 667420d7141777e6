"""Held-out comparison of generators: mean reward of their generations and their KL to the SFT model.

For every held-out user the generator samples one completion (seeded, ``config.temperature``, the
distribution RL optimised). Reported per generator: mean reward-model score, mean P(match) =
sigmoid(score), how many completions were empty or repeated the prompt (scored ``degenerate_reward``),
and for a generator other than the reference the KL to it: the Monte-Carlo estimate
mean over samples of log pi(y|x) - log pi_ref(y|x), y ~ pi (the sequence-level KL RLOO penalises).
A reward gain with an exploding KL would be reward hacking; both are reported side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmrec.girl.config import GirlConfig
from llmrec.girl.data import GirlData
from llmrec.girl.model import GirlReward, RewardModel, check_generation, generate, render_prompt, sequence_logprobs


@dataclass
class Generations:
    """One generator's held-out completions, cleaned, with their checks and rewards."""

    name: str
    users: list[str]
    raw: list[str]
    texts: list[str]
    statuses: list[str]
    rewards: np.ndarray

    def grounding_texts(self) -> dict[str, str]:
        """User -> the text grounding embeds: the cleaned completion, or "" for one flagged empty or
        echo (a copy of the profile would otherwise be graded as the generator's work)."""
        return {u: t if s == "ok" else "" for u, t, s in zip(self.users, self.texts, self.statuses, strict=True)}

    def summary(self) -> dict:
        counts = {s: self.statuses.count(s) for s in ("ok", "empty", "echo")}
        return {"generator": self.name, "users": len(self.users), "mean_reward": float(self.rewards.mean()),
                "mean_p_match": float(np.mean(1.0 / (1.0 + np.exp(-self.rewards)))), **counts}


def generate_for_users(name: str, model: Any, tokenizer: Any, data: GirlData, users: Sequence[str],
                       reward: RewardModel, config: GirlConfig, seed: int = 0) -> Generations:
    """Sample one completion per user, check it and score it with the reward model."""
    users = list(users)
    profiles = [data.profiles[u] for u in users]
    prompts = [render_prompt(p, data.domain) for p in profiles]
    raw = generate(model, tokenizer, prompts, config.max_new_tokens, do_sample=True, temperature=config.temperature,
                   seed=seed, batch_size=config.gen_batch_size, max_prompt_tokens=config.max_prompt_tokens)
    judge = GirlReward(reward, {}, config.degenerate_reward)
    rewards, statuses = judge.rewards(profiles, raw)
    texts = [check_generation(r, p)[0] for r, p in zip(raw, profiles, strict=True)]
    return Generations(name, users, raw, texts, statuses, rewards)


def kl_to_reference(model: Any, reference: Any, tokenizer: Any, data: GirlData, generations: Generations,
                    config: GirlConfig) -> dict:
    """KL(model || reference) estimated on ``generations`` (sampled from ``model``), nats per sequence."""
    prompts = [render_prompt(data.profiles[u], data.domain) for u in generations.users]
    kwargs: dict[str, Any] = dict(temperature=config.temperature, max_prompt_tokens=config.max_prompt_tokens,
                  max_new_tokens=config.max_new_tokens)
    own = sequence_logprobs(model, tokenizer, prompts, generations.raw, **kwargs)
    ref = sequence_logprobs(reference, tokenizer, prompts, generations.raw, **kwargs)
    diff = own - ref
    return {"kl_per_sequence": float(diff.mean()), "kl_std": float(diff.std()),
            "kl_per_token": float(diff.sum() / max(1, sum(len(tokenizer(g, add_special_tokens=False)["input_ids"])
                                                        for g in generations.raw)))}


def compare_generators(sft: Generations, rl: Generations, kl: dict) -> dict:
    """The goal's numbers: relative gain of RL's mean P(match) and mean raw reward over SFT's, with KL."""
    s, r = sft.summary(), rl.summary()
    gain = (r["mean_p_match"] - s["mean_p_match"]) / max(1e-9, abs(s["mean_p_match"]))
    raw_gain = (r["mean_reward"] - s["mean_reward"]) / max(1e-9, abs(s["mean_reward"]))
    return {"sft": s, "rl": {**r, **kl}, "relative_gain_p_match": float(gain), "relative_gain_reward": float(raw_gain)}


def side_by_side(data: GirlData, sft: Generations, rl: Generations, n: int = 4) -> list[dict]:
    """A few held-out users: profile, the job they matched, SFT's and RL's generations with rewards."""
    out = []
    for i, user in enumerate(sft.users[:n]):
        out.append({"user": user, "profile": data.profiles[user][:160], "matched": data.item_text[data.target(user)],
                    "sft": sft.texts[i], "sft_reward": round(float(sft.rewards[i]), 3),
                    "rl": rl.texts[i], "rl_reward": round(float(rl.rewards[i]), 3)})
    return out
