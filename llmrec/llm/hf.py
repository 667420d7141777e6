"""A transformers causal LM behind the ``LanguageModel`` interface.

Scoring reuses the prompt: ``loglikelihood`` runs the prompt once, keeps its key/value cache,
and scores all continuations in one batched forward over the continuation tokens only, with the
prompt cache repeated across the batch. With 20 candidates after a 300-token prompt that is one
prompt pass plus 20 short rows instead of 20 full passes.

Tokenisation at the prompt/continuation boundary: the prompt is tokenised alone (it must be a
token prefix so its cache can be shared) and each continuation is tokenised separately, without
special tokens, then appended. For plain-text prompts, trailing spaces of the prompt are moved to
the start of the continuation first (``"Answer: " + "Yes"`` is scored as ``"Answer:"`` + ``" Yes"``)
because BPE vocabularies hold the space-prefixed word as one token; tokenising ``"Answer: "``
would leave a lone space token the model rarely saw before a word. Chat prompts end in the
template's assistant opener (e.g. ``"<|im_start|>assistant\\n"``), so nothing is moved.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from llmrec.llm.base import (
    AmbiguousOptionsError,
    Generation,
    LLMError,
    Prompt,
    Usage,
    messages_to_text,
    normalize_prompt,
)
from llmrec.llm.cache import ResponseCache
from llmrec.utils.devices import resolve_device

logger = logging.getLogger(__name__)

# Cap on one scoring forward's logits tensor (batch x length x vocab floats), so a 150k-token
# vocabulary with many long candidates does not exhaust memory.
_MAX_LOGIT_ELEMENTS = 64 * 1024 * 1024


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/"auto": bfloat16 on a GPU that supports it, float32 otherwise.

    float32 on CPU on purpose: CPUs without native bf16 (AVX2 only) run bf16 many times slower.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }[dtype]
    except KeyError:
        raise ValueError(f"dtype must be one of auto, float32, bfloat16, float16; got {dtype!r}") from None


class HFCausalLM:
    """Any transformers causal LM (a loaded model + tokenizer) as a ``LanguageModel``.

    ``use_chat_template``: ``None`` (default) applies the tokenizer's chat template when it has
    one, to message lists and to plain strings (wrapped as one user turn); ``False`` feeds plain
    strings as raw text (message lists still use the template when there is one). A tokenizer
    without a template always gets raw text (messages joined by ``messages_to_text``).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str | None = None,
        *,
        use_chat_template: bool | None = None,
        batch_size: int = 8,
        score_batch_size: int = 32,
        response_cache: ResponseCache | None = None,
        show_progress: bool = True,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or str(getattr(model.config, "_name_or_path", "") or type(model).__name__)
        self.usage = Usage()
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        if use_chat_template and not self.has_chat_template:
            raise ValueError(f"use_chat_template=True but the tokenizer of {self.name!r} has no chat template")
        self.use_chat_template = self.has_chat_template if use_chat_template is None else use_chat_template
        self.batch_size = batch_size
        self.score_batch_size = score_batch_size
        self.response_cache = response_cache
        self.show_progress = show_progress
        self.pad_token_id = _pad_token_id(tokenizer, model)
        self.eos_token_ids = _eos_token_ids(tokenizer, model)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        trust_remote_code: bool = False,
        gguf_file: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> HFCausalLM:
        """Load a local folder or hub id (hub only when not offline). ``kwargs`` go to ``__init__``."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        target = resolve_device(device)
        load_kw: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if gguf_file is not None:
            load_kw["gguf_file"] = gguf_file
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **load_kw)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=resolve_dtype(dtype, target), **load_kw)
        model.to(target)  # type: ignore[arg-type]  # transformers types .to() for dtypes only
        return cls(model, tokenizer, name=name or str(name_or_path), **kwargs)

    def __repr__(self) -> str:
        return f"HFCausalLM(name={self.name!r}, device={self.device}, chat_template={self.use_chat_template})"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ prompts and tokens
    def render(self, prompt: Prompt) -> str:
        """The exact text the model sees for ``prompt`` (chat template applied where it applies)."""
        prompt = normalize_prompt(prompt)
        if isinstance(prompt, str) and not self.use_chat_template:
            return prompt
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        if not self.has_chat_template:
            return messages_to_text(messages)
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _is_templated(self, prompt: Prompt) -> bool:
        return self.has_chat_template and (not isinstance(prompt, str) or self.use_chat_template)

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        text = self.render(prompt)
        # A rendered chat template already holds its special tokens (BOS included where it has one).
        ids = self.tokenizer(text, add_special_tokens=not self._is_templated(prompt))["input_ids"]
        if not ids:
            raise ValueError("the prompt is empty and the tokenizer adds no BOS token: nothing to condition on")
        return list(ids)

    def split_boundary(self, prompt: Prompt, continuations: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """Token ids of the prompt and of each continuation (see the module docstring for the rule); a
        trainer that appends continuation ids to prompt ids this way trains on what scoring reads."""
        prompt = normalize_prompt(prompt)
        if self._is_templated(prompt):
            return self.encode_prompt(prompt), [self._encode_plain(c) for c in continuations]
        text = self.render(prompt)
        stripped = text.rstrip(" ")
        moved = text[len(stripped) :]
        if not stripped:  # an all-space prompt: keep it, nothing sensible to move
            stripped, moved = text, ""
        ids = self.tokenizer(stripped, add_special_tokens=True)["input_ids"]
        if not ids:
            raise ValueError("the prompt is empty and the tokenizer adds no BOS token: nothing to condition on")
        return list(ids), [self._encode_plain(moved + c if c else c) for c in continuations]

    def _encode_plain(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def token_count(self, text: str) -> int:
        return len(self._encode_plain(text))

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> list[Generation]:
        """Batched generation with left padding; greedy at ``temperature == 0``, sampling above."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        stop = list(stop or [])
        encoded = [self.encode_prompt(p) for p in prompts]
        results: list[Generation | None] = [None] * len(prompts)
        params = {"max_new_tokens": max_new_tokens, "temperature": temperature, "stop": stop}
        # Only deterministic answers are cached: a cached sample would be the same "sample" forever.
        cache = self.response_cache if temperature == 0 else None
        todo = []
        for i in range(len(prompts)):
            hit = cache.get(self.name, self.render(prompts[i]), params) if cache else None
            if hit is not None:
                results[i] = Generation(hit["text"], hit["prompt_tokens"], hit["completion_tokens"], cached=True)
                self.usage.add(cache_hits=1)
            else:
                todo.append(i)
        # Sort by length so each batch holds prompts of similar length (less padding).
        todo.sort(key=lambda i: len(encoded[i]))
        batches = [todo[s : s + self.batch_size] for s in range(0, len(todo), self.batch_size)]
        for batch in tqdm(batches, desc=f"generate ({self.name})", disable=not self.show_progress or len(batches) < 2):
            for i, gen in zip(
                batch,
                self._generate_batch([encoded[i] for i in batch], max_new_tokens, temperature, stop),
                strict=True,
            ):
                results[i] = gen
                if cache is not None:
                    cache.put(
                        self.name,
                        self.render(prompts[i]),
                        params,
                        {
                            "text": gen.text,
                            "prompt_tokens": gen.prompt_tokens,
                            "completion_tokens": gen.completion_tokens,
                        },
                    )
        return results  # type: ignore[return-value]

    def _generate_batch(
        self, batch: list[list[int]], max_new_tokens: int, temperature: float, stop: list[str]
    ) -> list[Generation]:
        from transformers import GenerationConfig

        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):  # left padding: every prompt ends at the same column
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        sampling = temperature > 0
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=sampling,
            # Plain temperature sampling: no hidden top-k/top-p from a model's generation_config.
            temperature=temperature if sampling else None,
            top_k=0 if sampling else None,
            top_p=1.0 if sampling else None,
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_ids,
            stop_strings=stop or None,
        )
        output = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            generation_config=config,
            tokenizer=self.tokenizer if stop else None,
        )
        new_tokens = output[:, width:].tolist()
        generations = []
        for ids, tokens in zip(batch, new_tokens, strict=True):
            tokens = _until_eos(tokens, self.eos_token_ids, self.pad_token_id)
            text = _cut_at_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), stop)
            generations.append(Generation(text, len(ids), len(tokens)))
            self.usage.add(prompt_tokens=len(ids), completion_tokens=len(tokens), requests=1)
        return generations

    # ------------------------------------------------------------------ scoring
    @torch.inference_mode()
    def loglikelihood(self, prompt: Prompt, continuations: Sequence[str]) -> np.ndarray:
        prompt_ids, cont_ids = self.split_boundary(prompt, continuations)
        self.usage.add(prompt_tokens=len(prompt_ids) + sum(map(len, cont_ids)), requests=1)
        scores = np.zeros(len(cont_ids), dtype=np.float64)
        if not any(cont_ids):
            return scores
        # logits_to_keep=1: the prompt's other positions predict nothing we score; skip their vocab matmul.
        out = self.model(input_ids=torch.tensor([prompt_ids], device=self.device), use_cache=True, logits_to_keep=1)
        first_logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        prompt_cache = out.cache
        vocab = out.logits.shape[-1]
        order = sorted((i for i, c in enumerate(cont_ids) if c), key=lambda i: len(cont_ids[i]))
        start = 0
        while start < len(order):
            # Grow the chunk while its logits stay under the memory cap (rows sorted by length).
            end = start + 1
            while (
                end < len(order)
                and end - start < self.score_batch_size
                and (end + 1 - start) * len(cont_ids[order[end]]) * vocab <= _MAX_LOGIT_ELEMENTS
            ):
                end += 1
            chunk = order[start:end]
            for i, value in zip(
                chunk,
                self._score_chunk([cont_ids[i] for i in chunk], first_logprobs, prompt_cache, len(prompt_ids)),
                strict=True,
            ):
                scores[i] = value
            start = end
        return scores

    def _score_chunk(
        self, chunk: list[list[int]], first_logprobs: torch.Tensor, prompt_cache: Any, prompt_len: int
    ) -> list[float]:
        """Sum of log-probs of each continuation in ``chunk`` given the cached prompt."""
        longest = max(map(len, chunk))
        targets = torch.full((len(chunk), longest), self.pad_token_id, dtype=torch.long, device=self.device)
        for row, ids in enumerate(chunk):  # right padding: real tokens never attend to the pads after them
            targets[row, : len(ids)] = torch.tensor(ids, device=self.device)
        # Position 0 is predicted by the prompt's last logits; positions 1.. by the continuation's own tokens.
        logprobs = [first_logprobs.unsqueeze(0).expand(len(chunk), -1).gather(1, targets[:, :1])]
        if longest > 1:
            # The cache is updated in place by a forward, so each chunk works on its own copy.
            cache = copy.deepcopy(prompt_cache)
            cache.batch_repeat_interleave(len(chunk))
            attention_mask = torch.ones((len(chunk), prompt_len + longest - 1), dtype=torch.long, device=self.device)
            logits = self.model(
                input_ids=targets[:, :-1], cache=cache, attention_mask=attention_mask, use_cache=True
            ).logits.float()
            rest = targets[:, 1:].unsqueeze(-1)
            logprobs.append((logits.gather(-1, rest) - torch.logsumexp(logits, dim=-1, keepdim=True)).squeeze(-1))
        token_logprobs = torch.cat(logprobs, dim=1)
        lengths = torch.tensor([len(ids) for ids in chunk], device=self.device)
        mask = torch.arange(longest, device=self.device).unsqueeze(0) < lengths.unsqueeze(1)
        return (token_logprobs * mask).sum(dim=1).double().cpu().tolist()

    @torch.inference_mode()
    def loglikelihood_full_forward(self, prompt: Prompt, continuations: Sequence[str]) -> np.ndarray:
        """Reference implementation: one full forward of prompt + continuation per candidate.

        Same tokenisation as ``loglikelihood``; kept to check it and to measure what sharing saves.
        """
        prompt_ids, cont_ids = self.split_boundary(prompt, continuations)
        scores = np.zeros(len(cont_ids), dtype=np.float64)
        for i, ids in enumerate(cont_ids):
            if not ids:
                continue
            full = torch.tensor([prompt_ids + ids], device=self.device)
            # The last len(ids) + 1 positions cover every prediction of a continuation token.
            logits = self.model(input_ids=full, logits_to_keep=len(ids) + 1).logits[0].float()
            logprobs = torch.log_softmax(logits[:-1], dim=-1)
            scores[i] = logprobs.gather(1, full[0, len(prompt_ids) :].unsqueeze(1)).sum().item()
        return scores

    def loglikelihood_batch(self, requests: Sequence[tuple[Prompt, Sequence[str]]]) -> list[np.ndarray]:
        return [
            self.loglikelihood(prompt, continuations)
            for prompt, continuations in tqdm(
                requests,
                desc=f"loglikelihood ({self.name})",
                disable=not self.show_progress or len(requests) < 2,
            )
        ]

    def option_token_ids(self, prompt: Prompt, options: Sequence[str]) -> list[int]:
        """First token id of each option as it would follow ``prompt``; raises when two coincide."""
        _, cont_ids = self.split_boundary(prompt, options)
        first: dict[int, str] = {}
        for option, ids in zip(options, cont_ids, strict=True):
            if not ids:
                raise AmbiguousOptionsError(f"option {option!r} encodes to no token")
            if ids[0] in first:
                piece = self.tokenizer.decode([ids[0]])
                raise AmbiguousOptionsError(
                    f"options {first[ids[0]]!r} and {option!r} both start with token {ids[0]} ({piece!r}); "
                    "use options whose first tokens differ (e.g. 'A', 'B', ... or 'Yes'/'No')"
                )
            first[ids[0]] = option
        return list(first)

    @torch.inference_mode()
    def next_token_logits(self, prompt: Prompt, options: Sequence[str]) -> np.ndarray:
        token_ids = self.option_token_ids(prompt, options)
        prompt_ids, _ = self.split_boundary(prompt, [])
        self.usage.add(prompt_tokens=len(prompt_ids), requests=1)
        # logits_to_keep=1: only the last position's logits are computed (no vocab-sized matmul per token).
        logits = self.model(input_ids=torch.tensor([prompt_ids], device=self.device), logits_to_keep=1).logits
        return logits[0, -1, token_ids].double().cpu().numpy()


def _pad_token_id(tokenizer: Any, model: Any) -> int:
    for candidate in (
        tokenizer.pad_token_id,
        getattr(model.generation_config, "pad_token_id", None),
        tokenizer.eos_token_id,
    ):
        if isinstance(candidate, int):
            return candidate
    return 0  # pads are masked out and never scored, so any valid id works


def _eos_token_ids(tokenizer: Any, model: Any) -> list[int]:
    ids: list[int] = []
    for candidate in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        for value in candidate if isinstance(candidate, list) else [candidate]:
            if isinstance(value, int) and value not in ids:
                ids.append(value)
    return ids


def _until_eos(tokens: list[int], eos_ids: list[int], pad_id: int) -> list[int]:
    """Generated tokens up to (not including) the first end-of-sequence token."""
    for pos, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[:pos]
    # No EOS: the row ran to max_new_tokens, or stopped on a stop string and was padded after it.
    while tokens and tokens[-1] == pad_id and pad_id not in eos_ids:
        tokens = tokens[:-1]
    return tokens


def _cut_at_stop(text: str, stop: list[str]) -> str:
    """Drop the first stop string and all after it (a batch may run past it before halting)."""
    cut = min((pos for pos in (text.find(s) for s in stop) if pos >= 0), default=len(text))
    return text[:cut]


def load_hf(name_or_path: str | Path, **kwargs: Any) -> HFCausalLM:
    """Load a local transformers folder (or hub id when online) with safe defaults."""
    path = Path(name_or_path)
    if path.exists() and not (path / "config.json").exists():
        raise LLMError(f"{path} is not a transformers model folder (no config.json)")
    return HFCausalLM.from_pretrained(name_or_path, **kwargs)
