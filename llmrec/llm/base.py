"""The one interface every LLM backend meets (local transformers model, packaged GGUF, HTTP server).

Methods (LLMRank, TALLRec, generative recommenders, ...) code against ``LanguageModel`` only, so a
tiny test model, a packaged SmolLM2 and a vLLM server are interchangeable.

Prompts are either plain text or chat messages. A backend with a chat template (instruct models,
chat endpoints) renders messages with it and appends the assistant turn opener; a backend without
one (base models) joins the message contents as plain text (see ``messages_to_text``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

import numpy as np

from llmrec.errors import LLMRecError

Message = dict[str, str]
#: Plain text, or chat messages ``[{"role": "system"|"user"|"assistant", "content": ...}, ...]``.
Prompt = str | list[Message]


class LLMError(LLMRecError, RuntimeError):
    """A backend could not answer (server down after retries, model missing, bad response)."""


class ModelNotInstalledError(LLMError, ModuleNotFoundError):
    """A named packaged model's PyPI package is absent; the message holds the exact pip command."""


class AmbiguousOptionsError(LLMError, ValueError):
    """``next_token_logits`` options share a first token, so their logits cannot be told apart."""


@dataclass
class Generation:
    """One generated answer. ``cached`` is True when it came from the response cache (no model call)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


@dataclass
class Usage:
    """Running totals for one backend instance (tokens, calls, cache hits, money for paid APIs)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    cache_hits: int = 0
    cost_usd: float = 0.0

    def add(self, other: Usage | None = None, **increments: float) -> Usage:
        """Add another ``Usage`` and/or keyword increments in place; returns self for chaining."""
        if other is not None:
            for f in fields(self):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        for key, value in increments.items():
            if not hasattr(self, key):
                raise AttributeError(f"Usage has no field {key!r}")
            setattr(self, key, getattr(self, key) + value)
        return self

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@runtime_checkable
class LanguageModel(Protocol):
    """What every backend offers. All scores are natural-log probabilities / raw logits."""

    name: str
    usage: Usage

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> list[Generation]:
        """One ``Generation`` per prompt, same order. ``temperature=0`` means greedy decoding."""
        ...

    def loglikelihood(self, prompt: Prompt, continuations: Sequence[str]) -> np.ndarray:
        """Sum of log-probs of each continuation's tokens given the prompt; shape ``(n,)``.

        For chat prompts the continuation is scored as the start of the assistant's answer.
        """
        ...

    def loglikelihood_batch(self, requests: Sequence[tuple[Prompt, Sequence[str]]]) -> list[np.ndarray]:
        """``loglikelihood`` for many (prompt, continuations) pairs; one array per request."""
        ...

    def next_token_logits(self, prompt: Prompt, options: Sequence[str]) -> np.ndarray:
        """Logit of each option's first token at the first answer position; shape ``(n,)``.

        Raises ``AmbiguousOptionsError`` when two options start with the same token.
        """
        ...

    def token_count(self, text: str) -> int:
        """Number of tokens ``text`` takes with this model's tokenizer (an estimate for HTTP backends)."""
        ...


def normalize_prompt(prompt: Prompt) -> Prompt:
    """Check a prompt's shape early: a malformed message list fails here, not deep in a backend."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, list) or not prompt:
        raise TypeError(f"a prompt is a str or a non-empty list of chat messages, got {type(prompt).__name__}")
    for i, message in enumerate(prompt):
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            raise TypeError(f"chat message {i} must be a dict with str 'role' and 'content', got {message!r}")
    return prompt


def messages_to_text(messages: list[Message]) -> str:
    """Render chat messages for a model without a chat template: contents joined by blank lines.

    Base models have no roles; the plain concatenation is what a user would have typed.
    """
    return "\n\n".join(m["content"] for m in messages)
