"""Turn a GGUF file into a plain transformers folder (fp32 safetensors), once, in a cache.

transformers dequantises GGUF weights on load (16-70 s on a CPU) and keeps a GGUF quantizer on the
model, which makes ``save_pretrained`` and trainers refuse it. So the model is rebuilt from its
config without the quantization config, the loaded weights (plus non-persistent buffers such as
rotary frequencies, which a state dict does not hold) are copied in, embeddings re-tied, and the
result saved once with safetensors. Later loads read that folder in about a second.

The folder is written under a temporary name beside its final place and renamed when complete,
so an interrupted conversion never leaves a folder that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from llmrec.llm.base import LLMError
from llmrec.utils.paths import cache_root

logger = logging.getLogger(__name__)

SOURCE_FILE = "llmrec_source.json"


def models_dir() -> Path:
    return cache_root() / "models"


def is_converted(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / SOURCE_FILE).is_file()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, *, source: dict | None = None) -> Path:
    """Dequantise ``gguf_path`` into a plain fp32 transformers folder at ``out_dir`` (atomically).

    If ``out_dir`` already holds a finished conversion (e.g. another process won the race), it is
    kept and returned. ``source`` is stored in the folder as provenance.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if is_converted(out_dir):
        return out_dir
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    started = time.perf_counter()
    logger.info("converting %s to a transformers folder at %s (once; later loads use it)", gguf_path, out_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    plain = _plain_copy(quantized)
    _check_same_logits(quantized, plain, tokenizer)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        provenance = {
            "gguf_file": gguf_path.name,
            "converted_in_s": round(time.perf_counter() - started, 1),
            **(source or {}),
        }
        (tmp / SOURCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        # mkdtemp makes the folder owner-only; a model cache is meant to be shared and read.
        for item in [tmp, *tmp.iterdir()]:
            item.chmod(0o755 if item.is_dir() else 0o644)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not is_converted(out_dir):  # not a lost race: a real failure
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return out_dir


def _plain_copy(quantized):
    """The same network without the GGUF quantizer attached (so it can be saved and trained)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(quantized.state_dict(), strict=False)
    if result.unexpected_keys:
        raise LLMError(f"GGUF conversion: unexpected weights {result.unexpected_keys[:5]}")
    # A state dict omits non-persistent buffers (rotary inv_freq etc.); copy them so RoPE matches.
    quantized_buffers = dict(quantized.named_buffers())
    for name, buffer in plain.named_buffers():
        if name in quantized_buffers:
            buffer.data.copy_(quantized_buffers[name].data)
    plain.tie_weights()
    missing = [k for k in result.missing_keys if not _is_tied(plain, k)]
    if missing:
        raise LLMError(f"GGUF conversion: weights missing after load: {missing[:5]}")
    plain.generation_config = copy.deepcopy(quantized.generation_config)
    return plain.eval()


def _is_tied(model, key: str) -> bool:
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    return key in tied


def _check_same_logits(quantized, plain, tokenizer) -> None:
    """The rebuilt model must compute exactly what the loaded one does (catches a missed buffer)."""
    import torch

    ids = tokenizer("The quick brown fox jumps over the lazy dog", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        diff = (quantized(ids).logits - plain(ids).logits).abs().max().item()
    if diff > 1e-4:
        raise LLMError(f"GGUF conversion changed the model's output (max logit difference {diff:.3g})")
