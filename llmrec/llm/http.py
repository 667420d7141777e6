"""An OpenAI-compatible server (vLLM, llama.cpp server, a hosted API) behind ``LanguageModel``.

Only the standard library is used (urllib), so the backend adds no dependency.

* ``generate`` posts to ``/chat/completions`` (default) or ``/completions``; prompts run
  concurrently on a small thread pool.
* ``loglikelihood`` and ``next_token_logits`` post to ``/completions`` with ``echo=True`` and
  ``logprobs``: the server returns the log-prob of every prompt token, and the continuation's
  tokens are those starting at or after the prompt's end (found by ``text_offset``). Servers
  without prompt log-probs (most hosted chat APIs) raise ``NotImplementedError``. These calls take
  plain text; chat prompts need a local tokenizer with the model's chat template
  (``chat_template_tokenizer=``) to render them as the server would.
* ``next_token_logits`` returns log-probs of each option's first token: logits minus one shared
  constant (the log partition), so argmax and softmax over the options are the same.
* The API key is read from an environment variable at each request and never stored on the
  object, logged, or put in a cache key; any server text shown in an error or a log line has the
  key replaced by ``[redacted $VAR]``. A 401/403 without a key names the variable that was unset.
* Redirects to another host (scheme, host or port differ from the request's) are refused with
  ``RedirectRefusedError``: the request carries ``Authorization: Bearer <key>``, and urllib's
  default handling would send it to wherever a 30x points and accept that host's answer.
* Cached answers are keyed on base URL + model + request, so two servers never share entries.
* A 200 answer whose JSON lacks a field or has one of the wrong type (``"usage": "lots"``, a
  list as ``content``) raises ``MalformedResponseError`` naming the URL and the field.
* Connection errors, timeouts, 429 and 5xx are retried with bounded exponential backoff.

The transport (the POST, its retries, key redaction, redirect refusal and answer-field checks) lives
in ``llmrec.llm.transport``; its error classes are re-exported here.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.llm.base import (
    AmbiguousOptionsError,
    Generation,
    LLMError,
    Message,
    Prompt,
    Usage,
    normalize_prompt,
)
from llmrec.llm.cache import ResponseCache
from llmrec.llm.transport import JSONTransport, MalformedResponseError, RedirectRefusedError, ServerError

DEFAULT_BASE_URL = "http://localhost:8000/v1"


class _TransportSetting:
    """An attribute of ``OpenAICompatibleLM`` kept on its transport, so that a change reaches the next request."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj.transport, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj.transport, self.name, value)


class OpenAICompatibleLM:
    """A model served behind an OpenAI-compatible HTTP API."""

    # Connection settings live on ``self.transport``; these read and write them there.
    base_url = _TransportSetting()
    api_key_env = _TransportSetting()  # the variable's NAME; the key itself is never stored
    timeout = _TransportSetting()
    max_retries = _TransportSetting()
    backoff = _TransportSetting()
    max_backoff = _TransportSetting()

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        endpoint: str = "chat",
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        price_per_1k_prompt: float = 0.0,
        price_per_1k_completion: float = 0.0,
        cache: ResponseCache | str | Path | None = None,
        max_workers: int = 4,
        chat_template_tokenizer: Any = None,
        extra_body: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if endpoint not in {"chat", "completions"}:
            raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        if max_retries < 0 or timeout <= 0:
            raise ValueError("max_retries must be >= 0 and timeout > 0")
        self.transport = JSONTransport(
            (base_url or os.environ.get("LLMREC_OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/"),
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_backoff=max_backoff,
        )
        self.model = model
        self.name = name or model
        self.endpoint = endpoint
        self.price_per_1k_prompt = price_per_1k_prompt
        self.price_per_1k_completion = price_per_1k_completion
        self.cache = ResponseCache(cache) if isinstance(cache, (str, Path)) else cache
        self.max_workers = max_workers
        self.extra_body = dict(extra_body or {})
        self.usage = Usage()
        self._usage_lock = threading.Lock()
        self._tokenizer = _load_tokenizer(chat_template_tokenizer)
        self._server_tokenize: bool | None = None  # unknown until tried

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleLM(model={self.model!r}, base_url={self.base_url!r}, "
            f"endpoint={self.endpoint!r}, "
            f"api_key_env={self.api_key_env!r})"
        )

    # ------------------------------------------------------------------ transport
    def _post(self, path: str, body: dict[str, Any], *, retry: bool = True, root: str | None = None) -> dict[str, Any]:
        """POST JSON and return the decoded answer, retrying transient failures with backoff."""
        return self.transport.post(path, body, retry=retry, root=root)

    def _account(self, prompt_tokens: int, completion_tokens: int, requests: int = 1) -> None:
        cost = (prompt_tokens * self.price_per_1k_prompt + completion_tokens * self.price_per_1k_completion) / 1000
        with self._usage_lock:
            self.usage.add(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                requests=requests,
                cost_usd=cost,
            )

    def _cache_hit(self) -> None:
        with self._usage_lock:
            self.usage.add(cache_hits=1)

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
    ) -> list[Generation]:
        prompts = [normalize_prompt(p) for p in prompts]
        if len(prompts) <= 1 or self.max_workers <= 1:
            return [self._generate_one(p, max_new_tokens, temperature, stop) for p in prompts]
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return list(pool.map(lambda p: self._generate_one(p, max_new_tokens, temperature, stop), prompts))

    def _generate_one(
        self, prompt: Prompt, max_new_tokens: int, temperature: float, stop: Sequence[str] | None
    ) -> Generation:
        params: dict[str, Any] = {
            "endpoint": self.endpoint,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "stop": list(stop or []),
            **self.extra_body,
        }
        # Sampled answers are not cached: a cached sample would repeat forever.
        cache = self.cache if temperature == 0 else None
        if cache is not None and (hit := cache.get(self.model, prompt, params, base_url=self.base_url)) is not None:
            self._cache_hit()
            return Generation(hit["text"], hit["prompt_tokens"], hit["completion_tokens"], cached=True)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            **self.extra_body,
        }
        if stop:
            body["stop"] = list(stop)
        if self.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            path, where = "/chat/completions", ["choices", 0, "message", "content"]
        else:
            body["prompt"] = self._render(prompt)
            path, where = "/completions", ["choices", 0, "text"]
        answer = self._post(path, body)
        text = self.transport.text(answer, where, self.base_url + path)
        prompt_tokens, completion_tokens = self.transport.usage(answer, self.base_url + path)
        self._account(prompt_tokens, completion_tokens)
        generation = Generation(text, prompt_tokens, completion_tokens)
        if cache is not None:
            cache.put(
                self.model,
                prompt,
                params,
                {"text": text, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
                base_url=self.base_url,
            )
        return generation

    # ------------------------------------------------------------------ scoring via prompt log-probs
    def _render(self, prompt: Prompt) -> str:
        """Plain text for /completions; chat messages need the model's template, rendered locally."""
        prompt = normalize_prompt(prompt)
        if isinstance(prompt, str):
            return prompt
        if self._tokenizer is None or not getattr(self._tokenizer, "chat_template", None):
            raise NotImplementedError(
                "scoring a chat prompt over HTTP needs the model's chat template: pass "
                "chat_template_tokenizer=<HF tokenizer folder or object>, or pass plain text"
            )
        return self._tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)

    def _echo_token_logprobs(self, prompt: Prompt, continuations: Sequence[str]) -> list[list[tuple[str, float]]]:
        """Per continuation: its (token, log-prob) pairs as the server tokenised prompt + continuation."""
        text = self._render(prompt)
        # Same boundary rule as the HF backend: trailing spaces move onto the continuation.
        context = text.rstrip(" ") or text
        moved = text[len(context) :]
        fulls = [context + (moved + c if c else "") for c in continuations]
        params = {"kind": "echo_logprobs", **self.extra_body}
        hit = self.cache.get(self.model, fulls, params, base_url=self.base_url) if self.cache is not None else None
        if hit is not None:
            self._cache_hit()
            return [[(t, lp) for t, lp in row] for row in hit]
        body = {
            "model": self.model,
            "prompt": fulls,
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": True,
            "logprobs": 1,
            **self.extra_body,
        }
        try:
            answer = self._post("/completions", body)
        except ServerError as error:
            if error.status in (400, 404, 422, 501):
                raise NotImplementedError(
                    f"{self.base_url} does not score prompts (completions, echo=True, logprobs): {error}"
                ) from error
            raise
        url = self.base_url + "/completions"
        choices = answer.get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise self.transport.malformed(url, "choices", "a list of objects", choices)
        choices = sorted(choices, key=lambda c: c["index"] if isinstance(c.get("index"), int) else 0)
        if len(choices) != len(fulls):
            raise LLMError(f"{url} returned {len(choices)} choices for {len(fulls)} prompts")
        rows = []
        for k, (full, choice) in enumerate(zip(fulls, choices, strict=True)):
            logprobs = choice.get("logprobs") or {}
            if not isinstance(logprobs, dict):
                raise self.transport.malformed(url, f"choices.{k}.logprobs", "an object", logprobs)
            tokens, values, offsets = (
                logprobs.get("tokens"),
                logprobs.get("token_logprobs"),
                logprobs.get("text_offset"),
            )
            if not tokens or values is None or offsets is None:
                raise NotImplementedError(
                    f"{self.base_url} returned no prompt log-probs (echo=True): it cannot score continuations"
                )
            if not all(isinstance(x, list) for x in (tokens, values, offsets)):
                raise self.transport.malformed(
                    url, f"choices.{k}.logprobs", "lists of tokens, token_logprobs, text_offset", logprobs
                )
            if not len(tokens) == len(values) == len(offsets):
                raise LLMError(f"{url} logprobs: tokens, token_logprobs and text_offset differ in length")
            row = []
            for token, value, offset in zip(tokens, values, offsets, strict=True):
                if not isinstance(offset, int) or isinstance(offset, bool):
                    raise self.transport.malformed(url, f"choices.{k}.logprobs.text_offset", "integers", offset)
                # Continuation tokens start at or after the boundary; the generated token lies past the end.
                if len(context) <= offset < len(full):
                    if value is None:
                        raise LLMError(f"{url} gave no log-prob for continuation token {token!r}")
                    if not isinstance(value, (int, float)) or isinstance(value, bool):
                        raise self.transport.malformed(url, f"choices.{k}.logprobs.token_logprobs", "numbers", value)
                    row.append((str(token), float(value)))
            rows.append(row)
        self._account(*self.transport.usage(answer, url))
        if self.cache is not None:
            self.cache.put(self.model, fulls, params, rows, base_url=self.base_url)
        return rows

    def loglikelihood(self, prompt: Prompt, continuations: Sequence[str]) -> np.ndarray:
        if not continuations:
            return np.zeros(0)
        rows = self._echo_token_logprobs(prompt, continuations)
        return np.array([sum(lp for _, lp in row) for row in rows], dtype=np.float64)

    def loglikelihood_batch(self, requests: Sequence[tuple[Prompt, Sequence[str]]]) -> list[np.ndarray]:
        if len(requests) <= 1 or self.max_workers <= 1:
            return [self.loglikelihood(p, c) for p, c in requests]
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            return list(pool.map(lambda r: self.loglikelihood(*r), requests))

    def next_token_logits(self, prompt: Prompt, options: Sequence[str]) -> np.ndarray:
        rows = self._echo_token_logprobs(prompt, options)
        seen: dict[str, str] = {}
        values = []
        for option, row in zip(options, rows, strict=True):
            if not row:
                raise AmbiguousOptionsError(f"option {option!r} encodes to no token")
            token, value = row[0]
            if token in seen:
                raise AmbiguousOptionsError(f"options {seen[token]!r} and {option!r} both start with token {token!r}")
            seen[token] = option
            values.append(value)
        return np.array(values, dtype=np.float64)

    # ------------------------------------------------------------------ tokens
    def token_count(self, text: str) -> int:
        """Exact with a local tokenizer or a vLLM ``/tokenize`` endpoint; else about 4 characters a token."""
        if not text:
            return 0
        if self._tokenizer is not None:
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        if self._server_tokenize is not False:
            # vLLM serves /tokenize beside /v1, not under it.
            try:
                answer = self._post(
                    "/tokenize",
                    {"model": self.model, "prompt": text, "add_special_tokens": False},
                    retry=False,
                    root=self.base_url.removesuffix("/v1"),
                )
                self._server_tokenize = True
                return int(answer.get("count", len(answer.get("tokens", []))))
            except (LLMError, ValueError, TypeError):
                self._server_tokenize = False
        return math.ceil(len(text) / 4)


def _load_tokenizer(tokenizer: Any) -> Any:
    if tokenizer is None or not isinstance(tokenizer, (str, Path)):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer)


__all__ = ["MalformedResponseError", "Message", "OpenAICompatibleLM", "RedirectRefusedError", "ServerError"]
