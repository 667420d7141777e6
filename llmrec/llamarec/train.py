"""LlamaRec training: LoRA (peft) on the HF ``Trainer``, the loss on the answer letter only.

Each training list becomes its prompt ids (exactly the ones scoring builds) and the index of the
target. The loss is the verbalizer's: cross-entropy of the target's letter among the list's
letters at the answer position, i.e. completion-only (no prompt token is a label) and restricted
to the answers the model may give. Only the last position's logits are computed
(``logits_to_keep=1``), so no vocabulary-sized projection is paid per prompt token.

The adapter is saved with safetensors beside ``llamarec.json`` (the base model, prompt settings,
letter token ids and probe scores); loading checks that a fresh base model plus the adapter
reproduces the probe scores, so a changed tokenizer, template or base model is caught.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.llamarec.config import LlamaRecConfig
from llmrec.llamarec.data import RerankExample
from llmrec.llamarec.model import LetterRanker, PromptRenderer, left_pad, log_softmax
from llmrec.llm.base import LLMError
from llmrec.llm.lora import attach_lora
from llmrec.llm.registry import resolve_model
from llmrec.utils.devices import resolve_device
from llmrec.utils.io import write_json

logger = logging.getLogger(__name__)
META = "llamarec.json"
PROBES = 4


def load_base(config: LlamaRecConfig) -> tuple[Any, Any]:
    """The base causal LM and its tokenizer on the configured device (4-bit with ``load_in_4bit``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = resolve_model(config.model)  # the one model-path resolver (packaged names, .gguf, folders)
    path = str(location.folder) if location.folder is not None else str(location.hub_id)
    device = resolve_device(config.device)
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code,
                              "dtype": torch.bfloat16 if config.bf16 else torch.float32}
    if config.load_in_4bit:
        if importlib.util.find_spec("bitsandbytes") is None or device.type != "cuda":
            raise LLMError("load_in_4bit (QLoRA) needs a CUDA GPU and bitsandbytes (pip install bitsandbytes)")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if config.bf16 else torch.float16)
        kwargs["device_map"] = {"": device.index or 0}
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    model: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if not config.load_in_4bit:
        model = model.to(device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def add_lora(model: Any, config: LlamaRecConfig) -> Any:
    """Wrap ``model`` with a fresh, seeded LoRA adapter on the top ``lora_layers`` layers."""
    lora = config.lora_config(int(model.config.num_hidden_layers))
    return attach_lora(model, lora, model_name=config.model, seed=config.seed, load_in_4bit=config.load_in_4bit,
                       gradient_checkpointing=config.gradient_checkpointing)


class _Lists(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


class _Collator:
    """Left-pads prompts (the answer position last in every row) and counts real and padded tokens."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id
        self.real_tokens = 0
        self.padded_tokens = 0

    def __call__(self, features: list[dict]) -> dict:
        batch = left_pad([f["input_ids"] for f in features], self.pad_id)
        self.real_tokens += int(batch["attention_mask"].sum())
        self.padded_tokens += int(batch["input_ids"].numel())
        batch["target"] = torch.tensor([f["target"] for f in features])
        batch["n_candidates"] = torch.tensor([f["n"] for f in features])
        return batch


def _trainer_class(letter_ids: list[int]):
    from transformers import Trainer

    class LetterTrainer(Trainer):
        """Cross-entropy of the target letter among the list's letters at the answer position."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            target = inputs.pop("target")
            n = inputs.pop("n_candidates")
            logits = model(**inputs, logits_to_keep=1).logits[:, -1, :]
            letters = logits.index_select(-1, torch.tensor(letter_ids, device=logits.device)).float()
            # Letters beyond a list's length are not answers to it.
            beyond = torch.arange(len(letter_ids), device=logits.device)[None, :] >= n[:, None].to(logits.device)
            loss = torch.nn.functional.cross_entropy(letters.masked_fill(beyond, float("-inf")),
                                                     target.to(logits.device))
            return (loss, {"logits": letters}) if return_outputs else loss

    return LetterTrainer


def _time_budget(minutes: float):
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        """Ends training once ``minutes`` of wall-clock time have passed (checked after each step)."""

        def __init__(self) -> None:
            self.started = time.perf_counter()
            self.stopped_early = False

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - self.started > 60.0 * minutes and state.global_step < state.max_steps:
                control.should_training_stop = True
                self.stopped_early = True

    return TimeBudget()


@dataclass
class TrainResult:
    ranker: LetterRanker
    config: LlamaRecConfig
    train_examples: int
    steps: int
    seconds: float
    real_tokens: int
    padded_tokens: int
    peak_memory_bytes: int
    final_loss: float | None
    lists_seen: int = 0
    """Training lists that went through a step (fewer than ``train_examples`` when the time budget ended it)."""

    @property
    def tokens_per_second(self) -> float:
        return self.real_tokens / self.seconds if self.seconds > 0 else float("nan")

    def report(self) -> dict:
        return {"train_examples": self.train_examples, "steps": self.steps, "epochs": self.config.epochs,
                "train_seconds": round(self.seconds, 1), "tokens_per_second": round(self.tokens_per_second, 1),
                "real_tokens": self.real_tokens, "padded_tokens": self.padded_tokens,
                "peak_memory_mib": round(self.peak_memory_bytes / 2**20, 1), "final_loss": self.final_loss,
                "lists_seen": self.lists_seen}


def peak_memory_bytes(device: torch.device) -> int:
    """Peak GPU memory on CUDA, else the process's peak resident set size (Linux reports KiB)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def train_llamarec(config: LlamaRecConfig, examples: Sequence[RerankExample], renderer: PromptRenderer,
                   model: Any = None, tokenizer: Any = None, output_dir: str | None = None) -> TrainResult:
    """LoRA-tune on ``examples``; ``model``/``tokenizer``: an already loaded base (wrapped in place)."""
    if not examples:
        raise ValueError("llamarec: no training lists (each needs a user with at least two known events)")
    if model is None or tokenizer is None:
        model, tokenizer = load_base(config)
    peft_model = add_lora(model, config)
    ranker = LetterRanker(peft_model, tokenizer, renderer, chat_template=config.chat_template,
                          batch_size=config.score_batch_size)
    rows = [{"input_ids": ranker.prompt_ids(e.history, e.candidates), "target": e.target, "n": len(e.candidates)}
            for e in examples]
    collator = _Collator(ranker.pad_id)
    args = config.to_training_arguments(output_dir)
    budget = _time_budget(config.max_train_minutes) if config.max_train_minutes > 0 else None
    trainer = _trainer_class(ranker.letter_ids)(model=peft_model, args=args, train_dataset=_Lists(rows),
                                                data_collator=collator, callbacks=[budget] if budget else None)
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    from llmrec.training import resume_checkpoint

    trainer.train(resume_from_checkpoint=resume_checkpoint(config, "LlamaRec", folder=args.output_dir))
    seconds = time.perf_counter() - started
    peft_model.eval()
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    steps = trainer.state.global_step
    seen = min(len(rows), steps * config.batch_size * config.gradient_accumulation_steps * args.world_size)
    if budget is not None and budget.stopped_early:
        logger.warning("llamarec: the %.0f-minute budget ended training after %d steps (%d of %d lists)",
                       config.max_train_minutes, steps, seen, len(rows))
    return TrainResult(ranker, config, len(rows), steps, seconds, collator.real_tokens, collator.padded_tokens,
                       peak_memory_bytes(device), losses[-1] if losses else None, seen)


# ---------------------------------------------------------------------------------------- save / load
def probe_scores(ranker: LetterRanker, probes: Sequence[RerankExample]) -> np.ndarray:
    n = len(probes[0].candidates)
    return log_softmax(ranker.letter_logits([ranker.prompt_ids(p.history, p.candidates) for p in probes], n))


def save_adapter(result: TrainResult, out_dir: str | Path, probes: Sequence[RerankExample],
                 extra: dict | None = None, base_model: Any = None) -> Path:
    """Adapter (safetensors) + tokenizer + ``llamarec.json``; then reload on a fresh base (``base_model``:
    an untouched copy; default: load ``config.model`` again) and check that the probe scores reproduce."""
    out_dir = Path(out_dir)
    probes = list(probes)[:PROBES]
    if not probes:
        raise ValueError("save_adapter needs at least one probe list to check the reload")
    reference = probe_scores(result.ranker, probes)
    result.ranker.model.save_pretrained(str(out_dir), safe_serialization=True)
    result.ranker.tokenizer.save_pretrained(str(out_dir))
    meta = {"base_model": result.config.model, "config": result.config.to_dict(),
            "letter_ids": result.ranker.letter_ids, "training": result.report(), **(extra or {}),
            "probe": [{"history": p.history, "candidates": p.candidates} for p in probes],
            "probe_scores": reference.tolist()}
    write_json(out_dir / META, meta)
    if not (out_dir / "adapter_model.safetensors").is_file():
        raise LLMError(f"{out_dir}: peft wrote no adapter_model.safetensors")
    load_adapter(out_dir, result.ranker.renderer, base_model=base_model)  # raises unless it reproduces
    return out_dir


def read_meta(adapter_dir: str | Path) -> dict:
    path = Path(adapter_dir) / META
    if not path.is_file():
        raise FileNotFoundError(f"{adapter_dir}: no {META}; not a LlamaRec adapter saved by llmrec "
                                "(train one with `llmrec llamarec train`)")
    meta = json.loads(path.read_text())
    for key in ("base_model", "config", "letter_ids"):
        if key not in meta:
            raise ValueError(f"{path}: field {key!r} is missing (expected the file written by save_adapter)")
    return meta


def load_adapter(adapter_dir: str | Path, renderer: PromptRenderer, device: str | None = None,
                 batch_size: int | None = None, check: bool = True, base_model: Any = None) -> LetterRanker:
    """A ``LetterRanker`` over a fresh base model (``base_model``, or ``config.model`` loaded) + the saved
    adapter (``renderer`` must use the saved prompt settings: ``read_meta(dir)['config']``)."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    meta = read_meta(adapter_dir)
    config = LlamaRecConfig.from_dict(meta["config"])
    if device is not None:
        config.device = device
    if not (Path(adapter_dir) / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(f"{adapter_dir}: adapter_model.safetensors is missing")
    base = base_model if base_model is not None else load_base(config)[0]
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    ranker = LetterRanker(model, tokenizer, renderer, chat_template=config.chat_template,
                          batch_size=batch_size or config.score_batch_size)
    if ranker.letter_ids != list(meta["letter_ids"]):
        raise ValueError(f"{adapter_dir}: letter tokens {ranker.letter_ids[:4]}... differ from the trained "
                         f"{meta['letter_ids'][:4]}...: the tokenizer changed")
    if check and meta.get("probe"):
        probes = [RerankExample("probe", p["history"], p["candidates"], 0) for p in meta["probe"]]
        got, want = probe_scores(ranker, probes), np.asarray(meta["probe_scores"])
        if not np.allclose(got, want, atol=1e-3):
            raise ValueError(f"{adapter_dir}: base model + adapter do not reproduce the saved probe scores (max "
                             f"difference {np.abs(got - want).max():.4g}): base model, template or item text changed")
    return ranker
