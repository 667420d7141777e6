"""Guards against TALLRec's most common failure: a saved adapter that holds nothing.

TALLRec's public code (peft 0.3) overrides ``state_dict`` so that on newer peft versions the saved
``adapter_model.bin`` is empty or untrained, and the reloaded model scores at AUC 0.5 with no error.
Here, after every save:

1. the adapter file exists, is safetensors, holds lora_A/lora_B tensors for every target module, and
   its lora_B tensors are not all zero (peft initialises B to zero: an all-zero B is an untrained,
   i.e. empty, adapter) and hold no NaN/inf;
2. base model + reloaded adapter reproduce the scores of the in-memory model on probe examples;
3. loading an adapter onto a different base model fails with a message naming the model and the
   mismatching module shapes, instead of a bare size-mismatch traceback or silently wrong scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.errors import LLMRecError

ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
#: Our own record beside peft's files: base model, prompt settings, answer tokens, probe scores.
TALLREC_META = "tallrec.json"


class AdapterError(LLMRecError, RuntimeError):
    """A saved adapter is missing, empty, untrained or does not reproduce its scores."""


class AdapterMismatchError(AdapterError, ValueError):
    """An adapter was trained on a different base model (names or tensor shapes disagree)."""


@dataclass
class AdapterReport:
    path: Path
    tensors: int
    modules: list[str]
    nonzero_lora_b: int
    bytes: int


def check_adapter_files(adapter_dir: str | Path, target_modules: Sequence[str] | None = None) -> AdapterReport:
    """Check (1) of the module docstring; raises ``AdapterError`` saying what is wrong."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    file = adapter_dir / ADAPTER_FILE
    if not (adapter_dir / ADAPTER_CONFIG).is_file():
        raise AdapterError(f"{adapter_dir}: no {ADAPTER_CONFIG}; not a peft adapter folder")
    if not file.is_file():
        raise AdapterError(f"{adapter_dir}: no {ADAPTER_FILE} (adapters are saved as safetensors only)")
    size = file.stat().st_size
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise AdapterError(f"{file}: not a readable safetensors file ({err})") from None
    lora = {k: v for k, v in tensors.items() if "lora_A" in k or "lora_B" in k}
    if not lora:
        raise AdapterError(f"{file}: holds no LoRA tensors ({len(tensors)} tensors, {size} bytes): an empty "
                           "adapter would score like the untrained base model")
    modules = sorted({k.split(".lora_")[0].rsplit(".", 1)[-1] for k in lora})
    if target_modules:
        missing = [m for m in target_modules if m not in modules]
        if missing:
            raise AdapterError(f"{file}: no LoRA tensors for target modules {missing} (found {modules})")
    for key, value in lora.items():
        if not bool(value.float().isfinite().all()):
            raise AdapterError(f"{file}: tensor {key} holds NaN or inf (training diverged)")
    b = [v for k, v in lora.items() if "lora_B" in k]
    nonzero = sum(int(bool(v.float().abs().max() > 0)) for v in b)
    if nonzero == 0:
        raise AdapterError(f"{file}: every lora_B tensor is zero, as peft initialises them: the adapter is "
                           "untrained (empty) and would leave AUC at the base model's")
    return AdapterReport(file, len(lora), modules, nonzero, size)


def base_fingerprint(model: Any) -> dict:
    """What identifies a base model's architecture for adapter compatibility."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return {key: getattr(text, key, None) for key in
            ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
             "intermediate_size", "vocab_size")}


def check_adapter_matches_base(adapter_dir: str | Path, base_model: Any, base_name: str | None = None) -> None:
    """Raise ``AdapterMismatchError`` when ``adapter_dir`` was not trained on ``base_model``.

    Compares the recorded architecture fingerprint (when the folder has ``tallrec.json``) and the
    shape of every LoRA tensor against the base module it adapts.
    """
    from safetensors import safe_open

    adapter_dir = Path(adapter_dir)
    meta_path = adapter_dir / TALLREC_META
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text()) if (adapter_dir / ADAPTER_CONFIG).is_file() else {}
    recorded = config.get("base_model_name_or_path")
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        recorded = meta.get("base_model", recorded)
        want, have = meta.get("base_fingerprint") or {}, base_fingerprint(base_model)
        diff = {k: (want[k], have.get(k)) for k in want if want[k] != have.get(k)}
        if diff:
            raise AdapterMismatchError(
                f"{adapter_dir}: adapter was trained on base model {recorded!r}, but the given base model "
                f"{base_name or '?'!r} differs in "
                + ", ".join(f"{k} (adapter {a}, base {b})" for k, (a, b) in diff.items()))
    modules = dict(base_model.named_modules())
    problems: list[str] = []
    with safe_open(str(adapter_dir / ADAPTER_FILE), framework="pt") as handle:
        for key in handle.keys():
            if ".lora_A" not in key and ".lora_B" not in key:
                continue
            shape = tuple(handle.get_slice(key).get_shape())
            # "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" -> "model.layers.0.self_attn.q_proj"
            name = key.split(".lora_")[0].removeprefix("base_model.model.")
            module = modules.get(name)
            if module is None or not hasattr(module, "in_features"):
                problems.append(f"{name}: no such linear layer in the base model")
            elif ".lora_A" in key and shape[1] != module.in_features:
                problems.append(f"{name}: adapter expects {shape[1]} inputs, base layer has {module.in_features}")
            elif ".lora_B" in key and shape[0] != module.out_features:
                problems.append(f"{name}: adapter gives {shape[0]} outputs, base layer has {module.out_features}")
            if len(problems) >= 3:
                break
    if problems:
        raise AdapterMismatchError(f"{adapter_dir}: adapter (trained on {recorded!r}) does not fit base model "
                                   f"{base_name or '?'!r}: " + "; ".join(problems))


def check_scores_reproduce(reference: np.ndarray, reloaded: np.ndarray, adapter_dir: str | Path,
                           atol: float = 1e-4) -> float:
    """Raise ``AdapterError`` when the reloaded model's P(Yes) differs from the trained model's."""
    reference, reloaded = np.asarray(reference, float), np.asarray(reloaded, float)
    gap = float(np.max(np.abs(reference - reloaded))) if len(reference) else 0.0
    if reference.shape != reloaded.shape or not gap <= atol:
        raise AdapterError(f"{adapter_dir}: base model + reloaded adapter do not reproduce the trained model's "
                           f"P(Yes) (max difference {gap:.2e} > {atol:.0e}): the saved adapter is incomplete")
    return gap
