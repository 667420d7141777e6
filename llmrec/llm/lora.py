"""Attaching a fresh LoRA adapter (peft) to a causal LM: the one place the fine-tuned LLM methods
(TALLRec, the LlamaRec-style reranker, ...) share, so they never import each other."""

from __future__ import annotations

from typing import Any


def attach_lora(model: Any, lora_config: Any, *, model_name: str, seed: int, load_in_4bit: bool = False,
                gradient_checkpointing: bool = False) -> Any:
    """``model`` wrapped by ``peft.get_peft_model`` with ``lora_config`` (a ``peft.LoraConfig``).

    Seeded, because the adapter's initialisation is random; a 4-bit model is prepared for k-bit
    training first; a target module the model does not have is an error naming the ones it has
    (peft's own message only says nothing matched)."""
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    set_seed(seed)
    if load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [m for m in lora_config.target_modules if m not in names]
    if missing:
        raise ValueError(f"target modules {sorted(missing)} are not in model {model_name!r}; its projections "
                         f"include {sorted(n for n in names if 'proj' in n)[:12]}")
    return get_peft_model(model, lora_config)
