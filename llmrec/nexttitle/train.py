"""Next-title training: LoRA (peft) on the HF ``Trainer``, the causal-LM loss on the continuation only.

Each example becomes the prompt ids followed by the next item's continuation ids, split exactly as
scoring splits them (``HFCausalLM.split_boundary``); prompt positions are masked out of the labels
(-100), so the loss is completion-only. ``DataCollatorForSeq2Seq`` pads ids and labels.

The adapter is saved with safetensors beside ``nexttitle.json`` (the base model, prompt settings
and probe texts with their scores); loading checks that a fresh base model plus the adapter reproduces
the probe scores, so a changed tokenizer, adapter or base model is caught.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.llm.hf import HFCausalLM
from llmrec.llm.lora import check_probe_scores, open_adapter, read_adapter_meta, write_adapter
from llmrec.nexttitle.config import NextTitleConfig
from llmrec.nexttitle.data import CheckList, TitleExample
from llmrec.nexttitle.model import NextTitleScorer, TitlePrompter
from llmrec.training import ListDataset, train_within_budget
from llmrec.utils.devices import resolve_device

logger = logging.getLogger(__name__)
META = "nexttitle.json"
PROBES = 3


def load_base(config: NextTitleConfig) -> tuple[Any, Any]:
    """The base causal LM and its tokenizer on the configured device (4-bit with ``load_in_4bit``)."""
    return config.load_base()


def wrap(model: Any, tokenizer: Any, config: NextTitleConfig) -> HFCausalLM:
    """The LLM layer's scorer over ``model``: raw text (the prompt format is learnt), shared-prefix scoring."""
    return HFCausalLM(model, tokenizer, name=config.model, use_chat_template=False,
                      score_batch_size=config.score_batch_size, show_progress=False)


class _CountingCollator:
    """``DataCollatorForSeq2Seq`` (pads ids with the pad token and labels with -100), counting real tokens."""

    def __init__(self, tokenizer: Any) -> None:
        from transformers import DataCollatorForSeq2Seq

        self.pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        self.real_tokens = 0

    def __call__(self, features: list[dict]) -> dict:
        self.real_tokens += sum(len(f["input_ids"]) for f in features)
        return self.pad(features)


def encode(lm: HFCausalLM, prompter: TitlePrompter, example: TitleExample) -> dict:
    prompt_ids, (continuation,) = lm.split_boundary(prompter.prompt(example.history),
                                                    [prompter.continuation(example.target)])
    return {"input_ids": prompt_ids + continuation, "attention_mask": [1] * (len(prompt_ids) + len(continuation)),
            "labels": [-100] * len(prompt_ids) + continuation}


@dataclass
class TrainResult:
    scorer: NextTitleScorer
    config: NextTitleConfig
    train_examples: int
    steps: int
    seconds: float
    real_tokens: int
    peak_memory_bytes: int
    final_loss: float | None
    first_loss: float | None
    examples_seen: int

    def report(self) -> dict:
        return {"train_examples": self.train_examples, "examples_seen": self.examples_seen, "steps": self.steps,
                "epochs": self.config.epochs, "train_seconds": round(self.seconds, 1),
                "tokens_per_second": round(self.real_tokens / self.seconds, 1) if self.seconds > 0 else None,
                "real_tokens": self.real_tokens, "peak_memory_mib": round(self.peak_memory_bytes / 2**20, 1),
                "first_loss": self.first_loss, "final_loss": self.final_loss}


def train_nexttitle(config: NextTitleConfig, examples: Sequence[TitleExample], prompter: TitlePrompter,
                    model: Any = None, tokenizer: Any = None, output_dir: str | None = None) -> TrainResult:
    """LoRA-tune on ``examples``; ``model``/``tokenizer``: an already loaded base (wrapped in place)."""
    from transformers import Trainer

    if not examples:
        raise ValueError("nexttitle: no training examples (each needs a user with at least two known events)")
    if model is None or tokenizer is None:
        model, tokenizer = load_base(config)
    tokenizer.padding_side = "right"  # training pads after the continuation; scoring never pads the prompt
    peft_model = config.add_lora(model)
    lm = wrap(peft_model, tokenizer, config)
    rows = [encode(lm, prompter, e) for e in examples]
    collator = _CountingCollator(tokenizer)
    args = config.to_training_arguments(output_dir)
    run = train_within_budget(
        lambda callbacks: Trainer(model=peft_model, args=args, train_dataset=ListDataset(rows), data_collator=collator,
                                  callbacks=callbacks),
        config, "nexttitle", len(rows), config.max_train_minutes, resolve_device(config.device))
    scorer = NextTitleScorer(lm, prompter, config.score, config.title_weight)
    return TrainResult(scorer, config, len(rows), run.steps, run.seconds, collator.real_tokens, run.peak_memory_bytes,
                       run.losses[-1] if run.losses else None, run.losses[0] if run.losses else None, run.rows_seen)


# ---------------------------------------------------------------------------------------- save / load
def probe_texts(prompter: TitlePrompter, probes: Sequence[CheckList]) -> list[dict]:
    """The exact prompt and continuation strings of the probe lists. The reload check scores these texts,
    so it tests base model + adapter + tokenizer wherever the adapter is loaded (a context whose known
    events give other popularity buckets, e.g. a hybrid's fitting stage, changes prompts, not the check)."""
    return [{"prompt": prompter.prompt(p.history), "continuations": [prompter.continuation(c) for c in p.candidates]}
            for p in probes]


def probe_scores(lm: HFCausalLM, texts: Sequence[dict]) -> np.ndarray:
    return np.stack([lm.loglikelihood(t["prompt"], t["continuations"]) for t in texts])


def save_adapter(result: TrainResult, out_dir: str | Path, probes: Sequence[CheckList], extra: dict | None = None,
                 base_model: Any = None) -> Path:
    """Adapter (safetensors) + tokenizer + ``nexttitle.json``; then reload on a fresh base (``base_model``:
    an untouched copy; default: load ``config.model`` again) and check that the probe scores reproduce."""
    out_dir = Path(out_dir)
    probes = list(probes)[:PROBES]
    if not probes:
        raise ValueError("save_adapter needs at least one probe list to check the reload")
    texts = probe_texts(result.scorer.prompter, probes)
    reference = probe_scores(result.scorer.lm, texts)
    meta = {"base_model": result.config.model, "config": result.config.to_dict(), "training": result.report(),
            **(extra or {}), "probe": texts,
            "probe_scores": reference.tolist()}
    write_adapter(result.scorer.lm.model, result.scorer.lm.tokenizer, out_dir, META, meta)
    load_adapter(out_dir, result.scorer.prompter, base_model=base_model)  # raises unless it reproduces
    return out_dir


def read_meta(adapter_dir: str | Path) -> dict:
    return read_adapter_meta(adapter_dir, META, "next-title", ("base_model", "config"))


def load_adapter(adapter_dir: str | Path, prompter: TitlePrompter, device: str | None = None,
                 check: bool = True, base_model: Any = None) -> NextTitleScorer:
    """A ``NextTitleScorer`` over a fresh base model (``base_model``, or ``config.model`` loaded) + the saved
    adapter (``prompter`` must use the saved prompt settings: ``read_meta(dir)['config']``)."""
    meta = read_meta(adapter_dir)
    config = NextTitleConfig.from_dict(meta["config"])
    if device is not None:
        config.device = device
    model, tokenizer = open_adapter(adapter_dir, base_model if base_model is not None else load_base(config)[0])
    scorer = NextTitleScorer(wrap(model, tokenizer, config), prompter, config.score, config.title_weight)
    if check and meta.get("probe"):
        texts = meta["probe"]
        if texts and "prompt" not in texts[0]:  # saved as (history, candidates) ids: render them here
            texts = probe_texts(prompter, [CheckList("probe", t["history"], t["candidates"]) for t in texts])
        check_probe_scores(adapter_dir, probe_scores(scorer.lm, texts), meta["probe_scores"])
    return scorer
