"""Loading a causal LM for fine-tuning and attaching a fresh LoRA adapter (peft) to it: the one
place the fine-tuned LLM methods (TALLRec, the LlamaRec-style reranker, the next-title LM, ...)
share, so they never import each other."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any


def load_causal_lm(model_name: str, *, device: str = "auto", bf16: bool = False, load_in_4bit: bool = False,
                   trust_remote_code: bool = False) -> tuple[Any, Any]:
    """The base causal LM and its tokenizer on ``device`` (4-bit NF4 with ``load_in_4bit``).

    ``model_name`` goes through the one model-path resolver (packaged names, .gguf, folders). bf16 on
    a CPU keeps fp32 weights (the trainer's bf16 autocast does the rest), so a saved adapter reloads
    to the very scores it was trained to; on a GPU the weights are bf16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmrec.llm.base import LLMError
    from llmrec.llm.registry import resolve_model
    from llmrec.utils.devices import resolve_device

    location = resolve_model(model_name)
    path = str(location.folder) if location.folder is not None else str(location.hub_id)
    target = resolve_device(device)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if load_in_4bit:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise LLMError("load_in_4bit (QLoRA) needs bitsandbytes: pip install bitsandbytes (CUDA GPU only)")
        if target.type != "cuda":
            raise LLMError("load_in_4bit (QLoRA) needs a CUDA GPU; on a CPU train in float32 without it")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float16)
        kwargs["device_map"] = {"": target.index or 0}
    kwargs["dtype"] = torch.bfloat16 if bf16 and target.type != "cpu" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    model: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if not load_in_4bit:
        model = model.to(target)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


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


@dataclass
class LoraSettings:
    """The base model, LoRA adapter and loading settings a LoRA-tuned LLM method shares (its config
    subclasses this beside ``llmrec.training.TrainerSettings`` and calls ``check_lora`` from its own
    ``__post_init__``)."""

    model: str = field(default="smollm2-135m", metadata={
        "help": "base causal LM: a packaged model (smollm2-135m, qwen2.5-0.5b, gemma3-270m), a local "
                "transformers folder, a .gguf file, or a hub id (only when HF_HUB_OFFLINE is unset)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank r"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha (the update is scaled by alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], metadata={
        "help": "module names LoRA adapts (comma-separated on the command line)"})
    lora_layers: int = field(default=10, metadata={
        "help": "adapt only the top this many decoder layers (0: all); gradients then stop at the lowest "
                "adapted layer, so a CPU step costs less"})
    load_in_4bit: bool = field(default=False, metadata={
        "help": "QLoRA: load the base model in 4-bit NF4 with bitsandbytes (CUDA GPU and bitsandbytes needed)"})
    device: str = field(default="auto", metadata={"help": "auto (cuda if present), cpu, cuda, cuda:1"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow a model folder's own Python code to run (off: built-in architectures only)"})

    def check_lora(self, owner: str) -> None:
        """Normalise ``target_modules`` (a comma-separated string from a command line) and validate."""
        if isinstance(self.target_modules, str):
            self.target_modules = [m for m in self.target_modules.split(",") if m]
        if not self.target_modules:
            raise ValueError(f"{owner}.target_modules is empty: name at least one module (e.g. q_proj)")
        if self.lora_r < 1 or self.lora_alpha <= 0 or not 0.0 <= self.lora_dropout < 1.0 or self.lora_layers < 0:
            raise ValueError(f"{owner}: need lora_r >= 1, lora_alpha > 0, 0 <= lora_dropout < 1, lora_layers >= 0; "
                             f"got {self.lora_r}, {self.lora_alpha}, {self.lora_dropout}, {self.lora_layers}")

    def lora_config(self, n_layers: int) -> Any:
        """A ``peft.LoraConfig`` on the top ``lora_layers`` of ``n_layers`` decoder layers (all when 0)."""
        from peft import LoraConfig

        layers = None
        if self.lora_layers and self.lora_layers < n_layers:
            layers = list(range(n_layers - self.lora_layers, n_layers))
        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                          target_modules=list(self.target_modules), layers_to_transform=layers, bias="none",
                          task_type="CAUSAL_LM")

    def load_base(self) -> tuple[Any, Any]:
        """The base causal LM and its tokenizer (``load_causal_lm`` with these settings; bf16 from the
        trainer settings when the config has them)."""
        return load_causal_lm(self.model, device=self.device, bf16=bool(getattr(self, "bf16", False)),
                              load_in_4bit=self.load_in_4bit, trust_remote_code=self.trust_remote_code)

    def add_lora(self, model: Any) -> Any:
        """``model`` wrapped with a fresh, seeded adapter (``seed`` and ``gradient_checkpointing`` from the
        trainer settings when the config has them)."""
        return attach_lora(model, self.lora_config(int(model.config.num_hidden_layers)), model_name=self.model,
                           seed=int(getattr(self, "seed", 0)), load_in_4bit=self.load_in_4bit,
                           gradient_checkpointing=bool(getattr(self, "gradient_checkpointing", False)))


# ---------------------------------------------------------------------------------------- saved adapters
#: Beside a saved adapter: the users whose known events were its training or checking targets.
TRAIN_USERS_FILE = "train_users.json"


def adopt_prompt_settings(config: Any, trained: Any) -> None:
    """A loaded adapter scores with the prompt it learnt: ``trained``'s ``prompt_settings()`` replace
    ``config``'s; the scoring knobs (batch size, score, device, ...) stay this run's."""
    for key, value in trained.prompt_settings().items():
        setattr(config, key, value)


def save_on_main_process(save: Any, output_dir: Any, target_users: Any) -> None:
    """Call ``save()`` (the method's adapter writer) and list ``target_users`` in ``train_users.json``,
    on the main process only (under ``accelerate launch`` every process trains, one writes). A learned
    hybrid that reuses the adapter on its own fitting lists (ltr's ``fit_load``) leaves these users out."""
    from pathlib import Path

    from accelerate import PartialState

    from llmrec.utils.io import write_json

    if PartialState().is_main_process:
        save()
        write_json(Path(output_dir) / TRAIN_USERS_FILE, sorted(set(target_users)))


def write_adapter(model: Any, tokenizer: Any, out_dir: Any, meta_name: str, meta: dict) -> None:
    """The peft adapter (safetensors) and tokenizer in ``out_dir``, with the method's ``meta_name`` JSON
    (written atomically) beside them."""
    from pathlib import Path

    from llmrec.llm.base import LLMError
    from llmrec.utils.io import write_json

    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    write_json(out_dir / meta_name, meta)
    if not (out_dir / "adapter_model.safetensors").is_file():
        raise LLMError(f"{out_dir}: peft wrote no adapter_model.safetensors")


def read_adapter_meta(adapter_dir: Any, meta_name: str, method: str, required: tuple[str, ...]) -> dict:
    """The ``meta_name`` JSON of a saved adapter; a missing file or field is named."""
    import json
    from pathlib import Path

    path = Path(adapter_dir) / meta_name
    if not path.is_file():
        raise FileNotFoundError(f"{adapter_dir}: no {meta_name}; not a {method} adapter saved by llmrec "
                                f"(train one with `llmrec {method.lower()} train`)")
    meta = json.loads(path.read_text())
    for key in required:
        if key not in meta:
            raise ValueError(f"{path}: field {key!r} is missing (expected the file written by save_adapter)")
    return meta


def open_adapter(adapter_dir: Any, base_model: Any) -> tuple[Any, Any]:
    """``base_model`` with the saved adapter on it (eval mode), and the saved tokenizer."""
    from pathlib import Path

    from peft import PeftModel
    from transformers import AutoTokenizer

    if not (Path(adapter_dir) / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(f"{adapter_dir}: adapter_model.safetensors is missing")
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    return PeftModel.from_pretrained(base_model, str(adapter_dir)).eval(), tokenizer


def check_probe_scores(adapter_dir: Any, got: Any, want: Any, atol: float = 1e-3) -> None:
    """Refuse an adapter whose reload does not reproduce the scores saved with it."""
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or not np.allclose(got, want, atol=atol):
        gap = np.abs(got - want).max() if got.shape == want.shape else float("inf")
        raise ValueError(f"{adapter_dir}: base model + adapter do not reproduce the saved probe scores (max "
                         f"difference {gap:.4g}): base model, adapter, tokenizer or prompt changed")
