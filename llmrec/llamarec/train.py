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

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.llamarec.config import LlamaRecConfig
from llmrec.llamarec.data import RerankExample
from llmrec.llamarec.model import LetterRanker, PromptRenderer, left_pad, log_softmax
from llmrec.llm.lora import check_probe_scores, open_adapter, read_adapter_meta, write_adapter
from llmrec.training import ListDataset, train_within_budget
from llmrec.utils.devices import resolve_device

logger = logging.getLogger(__name__)
META = "llamarec.json"
PROBES = 4


def load_base(config: LlamaRecConfig) -> tuple[Any, Any]:
    """The base causal LM and its tokenizer on the configured device (4-bit with ``load_in_4bit``)."""
    return config.load_base()


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


def train_llamarec(config: LlamaRecConfig, examples: Sequence[RerankExample], renderer: PromptRenderer,
                   model: Any = None, tokenizer: Any = None, output_dir: str | None = None) -> TrainResult:
    """LoRA-tune on ``examples``; ``model``/``tokenizer``: an already loaded base (wrapped in place)."""
    if not examples:
        raise ValueError("llamarec: no training lists (each needs a user with at least two known events)")
    if model is None or tokenizer is None:
        model, tokenizer = load_base(config)
    peft_model = config.add_lora(model)
    ranker = LetterRanker(peft_model, tokenizer, renderer, chat_template=config.chat_template,
                          batch_size=config.score_batch_size)
    rows = [{"input_ids": ranker.prompt_ids(e.history, e.candidates), "target": e.target, "n": len(e.candidates)}
            for e in examples]
    collator = _Collator(ranker.pad_id)
    args = config.to_training_arguments(output_dir)
    make = _trainer_class(ranker.letter_ids)
    run = train_within_budget(
        lambda callbacks: make(model=peft_model, args=args, train_dataset=ListDataset(rows), data_collator=collator,
                               callbacks=callbacks),
        config, "llamarec", len(rows), config.max_train_minutes, resolve_device(config.device))
    return TrainResult(ranker, config, len(rows), run.steps, run.seconds, collator.real_tokens,
                       collator.padded_tokens, run.peak_memory_bytes, run.losses[-1] if run.losses else None,
                       run.rows_seen)


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
    meta = {"base_model": result.config.model, "config": result.config.to_dict(),
            "letter_ids": result.ranker.letter_ids, "training": result.report(), **(extra or {}),
            "probe": [{"history": p.history, "candidates": p.candidates} for p in probes],
            "probe_scores": reference.tolist()}
    write_adapter(result.ranker.model, result.ranker.tokenizer, out_dir, META, meta)
    load_adapter(out_dir, result.ranker.renderer, base_model=base_model)  # raises unless it reproduces
    return out_dir


def read_meta(adapter_dir: str | Path) -> dict:
    return read_adapter_meta(adapter_dir, META, "LlamaRec", ("base_model", "config", "letter_ids"))


def load_adapter(adapter_dir: str | Path, renderer: PromptRenderer, device: str | None = None,
                 batch_size: int | None = None, check: bool = True, base_model: Any = None) -> LetterRanker:
    """A ``LetterRanker`` over a fresh base model (``base_model``, or ``config.model`` loaded) + the saved
    adapter (``renderer`` must use the saved prompt settings: ``read_meta(dir)['config']``)."""
    meta = read_meta(adapter_dir)
    config = LlamaRecConfig.from_dict(meta["config"])
    if device is not None:
        config.device = device
    model, tokenizer = open_adapter(adapter_dir, base_model if base_model is not None else load_base(config)[0])
    ranker = LetterRanker(model, tokenizer, renderer, chat_template=config.chat_template,
                          batch_size=batch_size or config.score_batch_size)
    if ranker.letter_ids != list(meta["letter_ids"]):
        raise ValueError(f"{adapter_dir}: letter tokens {ranker.letter_ids[:4]}... differ from the trained "
                         f"{meta['letter_ids'][:4]}...: the tokenizer changed")
    if check and meta.get("probe"):
        probes = [RerankExample("probe", p["history"], p["candidates"], 0) for p in meta["probe"]]
        check_probe_scores(adapter_dir, probe_scores(ranker, probes), meta["probe_scores"])
    return ranker
