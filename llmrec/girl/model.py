"""GIRL's models: the prompt, the generator (load, generate, log-probabilities), checks on what it
writes, and the reward model (a sequence classifier over profile + text) as trl's ``reward_funcs``.

Model output is untrusted input. :func:`check_generation` cleans a completion (whitespace, a run
of repeated words cut to one) and flags it ``empty`` (nothing left), ``echo`` (it repeats the
prompt: most of its words are the profile's, or it contains the prompt's instruction) or ``ok``.
The reward function gives flagged completions ``degenerate_reward`` instead of the reward
model's score, so RL cannot learn to copy the profile; grounding embeds an empty text as nothing
(every candidate ties, which the metrics count as a miss) and counts it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import torch

from llmrec.llm.registry import resolve_model

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "prompts" / "girl"
TEMPLATES = {"job": "job.j2", "movie": "movie.j2"}
STATUSES = ("ok", "empty", "echo")
_WORD = re.compile(r"\w+", re.UNICODE)


# ---------------------------------------------------------------------------------------- prompts
@functools.lru_cache(maxsize=4)
def _template(domain: str) -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=False,
                             undefined=jinja2.StrictUndefined)
    return env.get_template(TEMPLATES.get(domain, "job.j2"))


def render_prompt(profile: str, domain: str) -> str:
    """The generator's prompt for one profile (``prompts/girl/<domain>.j2``); the completion follows."""
    return _template(domain).render(profile=profile)


def completion_text(item_text: str) -> str:
    """What SFT teaches the generator to write after the prompt."""
    return " " + item_text.strip()


# ---------------------------------------------------------------------------------------- checks
def _collapse_repeats(words: list[str], max_ngram: int = 4) -> list[str]:
    """Cut immediate repetitions of an n-gram (n <= max_ngram) down to one occurrence."""
    out: list[str] = []
    for word in words:
        out.append(word)
        for n in range(1, max_ngram + 1):
            if len(out) >= 2 * n and [w.lower() for w in out[-n:]] == [w.lower() for w in out[-2 * n:-n]]:
                del out[-n:]
                break
    return out


def check_generation(text: str, profile: str, echo_share: float = 0.8) -> tuple[str, str]:
    """(cleaned text, status): status ``empty``, ``echo`` (repeats the prompt) or ``ok``."""
    first = str(text or "").replace("\r", "\n").strip().split("\n")[0]
    cleaned = " ".join(_collapse_repeats(first.split())).strip(" .;,-")
    words = [w.lower() for w in _WORD.findall(cleaned)]
    if not words:
        return "", "empty"
    lowered = cleaned.lower()
    if "profile:" in lowered or "write the" in lowered:
        return cleaned, "echo"
    profile_words = {w.lower() for w in _WORD.findall(profile)}
    if len(words) >= 4 and sum(w in profile_words for w in words) / len(words) >= echo_share \
            and cleaned.lower() in " ".join(profile.lower().split()):
        return cleaned, "echo"
    return cleaned, "ok"


# ---------------------------------------------------------------------------------------- generator
def load_causal_lm(name: str, device: str = "cpu") -> tuple[Any, Any]:
    """A causal LM and its tokenizer from a packaged name, folder or .gguf (fp32, no remote code)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmrec.utils.devices import resolve_device

    folder = resolve_model(name).local("generator")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, trust_remote_code=False,
                                                 use_safetensors=True)
    prepare_tokenizer(tokenizer)
    return model.to(resolve_device(device)).eval(), tokenizer


def prepare_tokenizer(tokenizer: Any) -> Any:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _encode_prompts(tokenizer: Any, prompts: Sequence[str], max_tokens: int, device: torch.device) -> dict:
    tokenizer.truncation_side = "left"  # keep the prompt's end (the instruction), cut the oldest profile text
    batch = tokenizer(list(prompts), return_tensors="pt", padding=True, truncation=True, max_length=max_tokens,
                      add_special_tokens=False)
    return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 40, do_sample: bool = True,
             temperature: float = 1.0, seed: int = 0, batch_size: int = 16, max_prompt_tokens: int = 160) -> list[str]:
    """One completion per prompt (text after the prompt, special tokens removed), batched, seeded."""
    prepare_tokenizer(tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[str] = []
    torch.manual_seed(seed)
    try:
        for start in range(0, len(prompts), batch_size):
            batch = _encode_prompts(tokenizer, prompts[start:start + batch_size], max_prompt_tokens, device)
            kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                          do_sample=do_sample)
            if do_sample:
                kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
            ids = model.generate(**batch, **kwargs)
            new = ids[:, batch["input_ids"].shape[1]:]
            out += [tokenizer.decode(row, skip_special_tokens=True) for row in new]
    finally:
        if was_training:
            model.train()
    return out


@torch.no_grad()
def sequence_logprobs(model: Any, tokenizer: Any, prompts: Sequence[str], completions: Sequence[str],
                      temperature: float = 1.0, batch_size: int = 8, max_prompt_tokens: int = 160,
                      max_new_tokens: int = 40) -> np.ndarray:
    """Sum over completion tokens of log p(token | prompt, earlier tokens), per (prompt, completion)."""
    device = next(model.parameters()).device
    model.eval()
    out = np.zeros(len(prompts), dtype=np.float64)
    for start in range(0, len(prompts), batch_size):
        rows = []
        for prompt, completion in zip(prompts[start:start + batch_size], completions[start:start + batch_size],
                                      strict=True):
            p = tokenizer(prompt, add_special_tokens=False)["input_ids"][-max_prompt_tokens:]
            c = tokenizer(completion, add_special_tokens=False)["input_ids"][:max_new_tokens]
            rows.append((p, c))
        width = max(len(p) + len(c) for p, c in rows)
        ids = torch.full((len(rows), width), int(tokenizer.pad_token_id), dtype=torch.long)
        mask = torch.zeros_like(ids)
        target = torch.zeros_like(ids, dtype=torch.bool)
        for r, (p, c) in enumerate(rows):
            seq = p + c
            ids[r, width - len(seq):] = torch.tensor(seq)
            mask[r, width - len(seq):] = 1
            target[r, width - len(c):] = True
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                       position_ids=positions.to(device)).logits.float() / temperature
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(device))[..., 0]
        out[start:start + len(rows)] = (logp * target[:, 1:].to(device)).sum(-1).double().cpu().numpy()
    return out


# ---------------------------------------------------------------------------------------- reward model
def load_reward_base(name: str, device: str = "cpu") -> tuple[Any, Any]:
    """A sequence classifier with one output (a new head on ``name``) and its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llmrec.utils.devices import resolve_device

    folder = resolve_model(name).local("reward model")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    model: Any = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1, dtype=torch.float32,
                                                               trust_remote_code=False, use_safetensors=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(resolve_device(device)), tokenizer


class RewardModel:
    """Scores (profile, text) pairs with a sequence classifier; the input is the tokenizer's text pair,
    the same encoding :func:`encode_pair` gives the reward trainer."""

    def __init__(self, model: Any, tokenizer: Any, max_length: int = 128, batch_size: int = 32) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size

    def encode(self, profile: str, text: str) -> list[int]:
        return encode_pair(self.tokenizer, profile, text, self.max_length)

    @torch.no_grad()
    def score(self, profiles: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Raw scalar scores (higher: a better match)."""
        self.model.eval()
        device = next(self.model.parameters()).device
        pad = int(self.tokenizer.pad_token_id or 0)
        out = np.zeros(len(texts), dtype=np.float64)
        for start in range(0, len(texts), self.batch_size):
            seqs = [self.encode(p, t) for p, t in zip(profiles[start:start + self.batch_size],
                                                      texts[start:start + self.batch_size], strict=True)]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, s in enumerate(seqs):
                ids[r, :len(s)] = torch.tensor(s)
                mask[r, :len(s)] = 1
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            out[start:start + len(seqs)] = logits[:, 0].double().cpu().numpy()
        return out


def encode_pair(tokenizer: Any, profile: str, text: str, max_length: int) -> list[int]:
    """Token ids of (profile, text) as one pair, the profile cut first so the text always stays."""
    encoded = tokenizer(profile, text, truncation="only_first" if text else True, max_length=max_length)
    return list(encoded["input_ids"])


class GirlReward:
    """trl ``reward_funcs`` entry: the reward model's score of (profile, completion), or
    ``degenerate`` for an empty completion or one that repeats the prompt. ``prompt_profiles`` maps
    each rendered prompt back to its profile; counts of flagged completions are kept."""

    __name__ = "girl_reward"

    def __init__(self, reward_model: RewardModel, prompt_profiles: Mapping[str, str], degenerate: float = -4.0):
        self.reward_model = reward_model
        self.prompt_profiles = dict(prompt_profiles)
        self.degenerate = float(degenerate)
        self.counts = {status: 0 for status in STATUSES}

    def rewards(self, profiles: Sequence[str], completions: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        checked = [check_generation(c, p) for p, c in zip(profiles, completions, strict=True)]
        statuses = [s for _, s in checked]
        for s in statuses:
            self.counts[s] += 1
        values = np.full(len(completions), self.degenerate, dtype=np.float64)
        ok = [i for i, s in enumerate(statuses) if s == "ok"]
        if ok:
            values[ok] = self.reward_model.score([profiles[i] for i in ok], [checked[i][0] for i in ok])
        return values, statuses

    def __call__(self, prompts: Sequence[str], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        texts = [c if isinstance(c, str) else str(c[-1]["content"]) for c in completions]
        profiles = [self.prompt_profiles.get(p, p) for p in prompts]
        values, _ = self.rewards(profiles, texts)
        return [float(v) for v in values]
