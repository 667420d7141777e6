"""TALLRec training: LoRA (peft) through trl's ``SFTTrainer``, early stopping on validation AUC,
guarded save / reload, and the few-shot protocol (seeded subsets, several seeds, mean ± std).

Examples are tokenised here by ``PromptEncoder`` (the same code that builds scoring prompts) and
handed to trl pre-tokenised as ``input_ids`` + ``completion_mask``; with ``answer_only_loss`` trl's
``completion_only_loss`` masks the prompt out of the loss, so only "Yes." / "No." is learnt.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.data.loaders.tallrec import TallRecExample
from llmrec.llm.lora import attach_lora, load_causal_lm
from llmrec.tallrec.config import TallRecConfig
from llmrec.tallrec.data import few_shot_subset
from llmrec.tallrec.guards import (
    TALLREC_META,
    AdapterError,
    base_fingerprint,
    check_adapter_files,
    check_adapter_matches_base,
    check_scores_reproduce,
)
from llmrec.tallrec.model import PromptEncoder, YesNoScorer
from llmrec.training import resume_checkpoint
from llmrec.utils.devices import resolve_device

logger = logging.getLogger(__name__)
PROBE_EXAMPLES = 8


# ---------------------------------------------------------------------------------------- model
def load_base(config: TallRecConfig) -> tuple[Any, Any]:
    """The base causal LM and its tokenizer, on the configured device (4-bit with ``load_in_4bit``)."""
    return load_causal_lm(config.model, device=config.device, bf16=config.bf16, load_in_4bit=config.load_in_4bit,
                          trust_remote_code=config.trust_remote_code)


def cpu_autocast(config: TallRecConfig) -> bool:
    """Score under bf16 autocast: ``bf16`` asked on a CPU (the weights stay fp32, see load_base)."""
    return bool(config.bf16) and resolve_device(config.device).type == "cpu"


def add_lora(model: Any, config: TallRecConfig) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter (seeded: the init depends on ``config.seed``)."""
    return attach_lora(model, config.lora_config(), model_name=config.model, seed=config.seed,
                       load_in_4bit=config.load_in_4bit, gradient_checkpointing=config.gradient_checkpointing)


# ---------------------------------------------------------------------------------------- callbacks
class _TokenCounter:
    """Wraps the trainer's collator: counts real (unpadded) and computed (padded) tokens."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator
        self.real_tokens = 0
        self.padded_tokens = 0

    def __call__(self, features: list[dict]) -> dict:
        batch = self.collator(features)
        self.padded_tokens += int(batch["input_ids"].numel())
        mask = batch.get("attention_mask")
        self.real_tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch


def _auc_callback(scorer: YesNoScorer, examples: Sequence[TallRecExample], every_steps: int, patience: int):
    from transformers import TrainerCallback

    class AUCEarlyStopping(TrainerCallback):
        """Scores the validation examples, keeps the best adapter weights, stops after ``patience``
        scorings without improvement, and puts the best weights back when training ends."""

        def __init__(self) -> None:
            self.history: list[dict] = []
            self.best_auc = -np.inf
            self.best_step = -1
            self.best_state: dict[str, torch.Tensor] | None = None
            self.bad = 0

        def _score(self, state, control, model) -> None:
            metrics = scorer.evaluate(examples)
            auc = metrics["auc"]
            self.history.append({"step": state.global_step, "epoch": state.epoch, "auc": auc})
            state.log_history.append({"step": state.global_step, "eval_auc": auc})
            logger.info("step %d: validation AUC %.4f", state.global_step, auc)
            if auc > self.best_auc:
                self.best_auc, self.best_step, self.bad = auc, state.global_step, 0
                self.best_state = {n: p.detach().clone() for n, p in scorer.model.named_parameters()
                                   if p.requires_grad}
            else:
                self.bad += 1
                if patience and self.bad >= patience:
                    control.should_training_stop = True

        def on_step_end(self, args, state, control, model=None, **kw):
            if every_steps and state.global_step % every_steps == 0:
                self._score(state, control, model)

        def on_epoch_end(self, args, state, control, model=None, **kw):
            if not every_steps:
                self._score(state, control, model)

        def on_train_end(self, args, state, control, model=None, **kw):
            if self.best_state is not None and patience:
                params = dict(scorer.model.named_parameters())
                with torch.no_grad():
                    for name, value in self.best_state.items():
                        params[name].copy_(value)

    return AUCEarlyStopping()


# ---------------------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    model: Any
    tokenizer: Any
    scorer: YesNoScorer
    config: TallRecConfig
    train_examples: int
    steps: int
    seconds: float
    real_tokens: int
    padded_tokens: int
    best_valid_auc: float | None = None
    best_step: int | None = None
    valid_history: list[dict] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    train_auc: float | None = None
    """AUC of the kept adapter on (a seeded subset of) its own training examples: near the validation
    AUC with both low means under-fitting, far above it means over-fitting."""

    @property
    def tokens_per_second(self) -> float:
        return self.real_tokens / self.seconds if self.seconds > 0 else float("nan")


def encoded_dataset(encoder: PromptEncoder, examples: Sequence[TallRecExample], with_offsets: bool = False) -> Any:
    """Pre-tokenised rows for trl; ``with_offsets``: also each example's prior logit and answer (the
    columns :class:`OffsetYesNoTrainer` reads)."""
    from datasets import Dataset

    rows = [encoder.encode_for_training(e) for e in examples]
    columns: dict[str, list] = {"input_ids": [r.input_ids for r in rows],
                                "completion_mask": [r.completion_mask for r in rows]}
    if with_offsets:
        columns.update(offset=[float(e.offset) for e in examples], answer=[int(e.label) for e in examples])
    return Dataset.from_dict(columns)


class _OffsetCollator:
    """Wraps trl's collator, which keeps only token columns: the offset and answer go alongside."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def __call__(self, features: list[dict]) -> dict:
        offsets = [float(f.pop("offset")) for f in features]
        answers = [int(f.pop("answer")) for f in features]
        batch = self.collator(features)
        batch["offset"] = torch.tensor(offsets, dtype=torch.float32)
        batch["answer"] = torch.tensor(answers, dtype=torch.float32)
        return batch


def offset_trainer(yes_id: int, no_id: int, **kwargs: Any) -> Any:
    """trl's ``SFTTrainer`` with TALLRec's answer loss replaced by the binary cross-entropy of
    sigmoid(offset + logit(Yes) - logit(No)) at the answer position: with a collaborative prior as
    the offset, LoRA learns what the prior gets wrong (see ``llmrec.tallrec.prior``). Scoring
    (``YesNoScorer.p_yes``) computes the same quantity, so training and scoring agree."""
    from trl import SFTTrainer

    class OffsetYesNoTrainer(SFTTrainer):
        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if self._signature_columns is not None and "offset" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "offset", "answer"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            offset, answer, labels = inputs.pop("offset"), inputs.pop("answer"), inputs.pop("labels")
            inputs.pop("seq_lengths", None)
            outputs = model(**inputs, use_cache=False)
            # The answer token is the first labelled one; the logits one position earlier predict it.
            position = (labels != -100).int().argmax(dim=1) - 1
            logits = outputs.logits[torch.arange(len(position), device=position.device), position]
            gap = (logits[:, yes_id] - logits[:, no_id]).float() + offset.to(logits.device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(gap, answer.to(logits.device))
            return (loss, outputs) if return_outputs else loss

    trainer = OffsetYesNoTrainer(**kwargs)
    trainer.data_collator = _OffsetCollator(trainer.data_collator)
    return trainer


def train_tallrec(config: TallRecConfig, train_examples: Sequence[TallRecExample],
                  valid_examples: Sequence[TallRecExample] = (), output_dir: str | Path | None = None,
                  model: Any = None, tokenizer: Any = None) -> TrainResult:
    """Fine-tune with LoRA on ``train_examples`` (a seeded ``config.shots`` subset when set).

    ``valid_examples`` (a seeded ``max_eval_examples`` subset) drive early stopping on AUC; without
    them the adapter after the last step is kept. ``output_dir``: the trainer's scratch folder
    (default ``<config.output_dir>/trainer``; the adapter itself is written by :func:`save_adapter`).
    ``model``/``tokenizer``: an already loaded base model (tests, repeated runs); it is wrapped in
    place, so pass a fresh one per run.
    """
    from trl import SFTTrainer

    if model is None or tokenizer is None:
        model, tokenizer = load_base(config)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    subset = few_shot_subset(list(train_examples), config.shots, config.seed)
    if not subset:
        raise ValueError("no training examples")
    valid = few_shot_subset(list(valid_examples), config.max_eval_examples, seed=0)
    peft_model = add_lora(model, config)
    scorer = YesNoScorer(peft_model, tokenizer, template=config.template, max_length=config.max_length,
                         batch_size=config.score_batch_size, autocast_bf16=cpu_autocast(config))
    with_prior = config.prior != "none"
    dataset = encoded_dataset(scorer.encoder, subset, with_offsets=with_prior)
    args = config.to_sft_config(None if output_dir is None else str(output_dir))
    callbacks = []
    early = None
    if valid:
        early = _auc_callback(scorer, valid, config.eval_every_steps, config.early_stopping_patience)
        callbacks.append(early)
    common = dict(model=peft_model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=callbacks)
    trainer = (offset_trainer(scorer.encoder.yes_id, scorer.encoder.no_id, **common) if with_prior
               else SFTTrainer(**common))
    counter = _TokenCounter(trainer.data_collator)
    trainer.data_collator = counter
    device = resolve_device(config.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(config, "TALLRec", folder=args.output_dir))
    seconds = time.perf_counter() - started
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    peft_model.eval()
    train_auc = None
    if config.train_auc_examples:
        fitted = few_shot_subset(subset, config.train_auc_examples, seed=0)
        if len({e.label for e in fitted}) == 2:  # AUC needs both answers
            train_auc = float(scorer.evaluate(fitted)["auc"])
    return TrainResult(peft_model, tokenizer, scorer, config, len(subset), trainer.state.global_step, seconds,
                       counter.real_tokens, counter.padded_tokens,
                       best_valid_auc=float(early.best_auc) if early and early.best_step >= 0 else None,
                       best_step=early.best_step if early else None,
                       valid_history=early.history if early else [], peak_memory_bytes=peak, train_auc=train_auc)


# ---------------------------------------------------------------------------------------- save / load
def save_adapter(result: TrainResult, out_dir: str | Path, probe_examples: Sequence[TallRecExample],
                 base_model: Any = None, atol: float = 1e-4, extra: dict | None = None) -> Path:
    """Save the adapter (safetensors) + tokenizer + ``tallrec.json``, then run every guard: the
    files hold trained LoRA tensors, and a fresh base model + the saved adapter reproduce the
    trained model's P(Yes) on ``probe_examples``. ``base_model``: a fresh, untouched copy of the base
    model for the reload check (default: load ``config.model`` again). ``extra``: more fields for
    tallrec.json (the builder's collaborative prior)."""
    out_dir = Path(out_dir)
    probes = list(probe_examples)[:PROBE_EXAMPLES]
    if not probes:
        raise ValueError("save_adapter needs at least one probe example to check the reload")
    reference = result.scorer.p_yes(probes)
    result.model.save_pretrained(str(out_dir), safe_serialization=True)
    result.tokenizer.save_pretrained(str(out_dir))
    encoder = result.scorer.encoder
    meta = {
        "base_model": result.config.model,
        "base_fingerprint": base_fingerprint(result.model.get_base_model()),
        "template": encoder.template_name,
        "max_length": encoder.max_length,
        "answer_token_ids": [encoder.yes_id, encoder.no_id],
        "config": result.config.to_dict(),
        "probe": [{"instruction": e.instruction, "input": e.input, "output": e.output, "offset": e.offset}
                  for e in probes],
        "probe_p_yes": reference.tolist(),
        **(extra or {}),
    }
    from llmrec.utils.io import write_json

    write_json(out_dir / TALLREC_META, meta)
    check_adapter_files(out_dir, result.config.target_modules)
    if base_model is None:
        base_model, _ = load_base(result.config)
    scorer = load_adapter(out_dir, base_model=base_model, check=False)
    check_scores_reproduce(reference, scorer.p_yes(probes), out_dir, atol=atol)
    return out_dir


def load_adapter(adapter_dir: str | Path, base_model: Any = None, base_name: str | None = None,
                 device: str | None = None, batch_size: int = 8, check: bool = True) -> YesNoScorer:
    """A ``YesNoScorer`` over base model + saved adapter. ``base_model``: an already loaded base
    (default: load the one recorded in tallrec.json). Mismatches raise ``AdapterMismatchError``;
    with ``check``, the recorded probe scores must reproduce."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    adapter_dir = Path(adapter_dir)
    meta_path = adapter_dir / TALLREC_META
    if not meta_path.is_file():
        raise AdapterError(f"{adapter_dir}: no {TALLREC_META}; not a TALLRec adapter saved by llmrec")
    meta = json.loads(meta_path.read_text())
    config = TallRecConfig.from_dict(meta.get("config", {}))
    if device is not None:
        config.device = device
    check_adapter_files(adapter_dir, config.target_modules)
    if base_model is None:
        base_model, _ = load_base(config)
        base_name = base_name or config.model
    check_adapter_matches_base(adapter_dir, base_model, base_name)
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    model = PeftModel.from_pretrained(base_model, str(adapter_dir)).eval()
    scorer = YesNoScorer(model, tokenizer, template=meta["template"], max_length=meta["max_length"],
                         batch_size=batch_size, autocast_bf16=cpu_autocast(config))
    if list(scorer.answer_ids) != list(meta["answer_token_ids"]):
        raise AdapterError(f"{adapter_dir}: answer tokens {list(scorer.answer_ids)} differ from the trained "
                           f"{meta['answer_token_ids']}: tokenizer or template changed")
    if check and meta.get("probe"):
        probes = [TallRecExample(p["instruction"], p["input"], p["output"], 1 if p["output"].lower().startswith("y")
                                 else 0, float(p.get("offset", 0.0))) for p in meta["probe"]]
        check_scores_reproduce(np.asarray(meta["probe_p_yes"]), scorer.p_yes(probes), adapter_dir)
    return scorer


# ---------------------------------------------------------------------------------------- few-shot protocol
def few_shot_protocol(config: TallRecConfig, train_examples: Sequence[TallRecExample],
                      valid_examples: Sequence[TallRecExample], test_examples: Sequence[TallRecExample],
                      shots: Sequence[int] = (16, 64, 256), seeds: Sequence[int] = (0, 1, 2),
                      load: Any = None) -> dict:
    """TALLRec's few-shot protocol: for each shot count and seed, train on a seeded subset with
    early stopping on ``valid_examples`` AUC, then report AUC on ``test_examples``; mean ± std per
    shot count. ``load``: returns a fresh (model, tokenizer) per run (default ``load_base``)."""
    load = load or (lambda: load_base(config))
    runs: list[dict] = []
    for k in shots:
        for seed in seeds:
            run_config = TallRecConfig.from_dict({**config.to_dict(), "shots": k, "seed": seed})
            model, tokenizer = load()
            result = train_tallrec(run_config, train_examples, valid_examples,
                                   output_dir=f"{config.output_dir}/trainer-{k}-{seed}", model=model,
                                   tokenizer=tokenizer)
            test = result.scorer.evaluate(test_examples)
            runs.append({"shots": k, "seed": seed, "test_auc": test["auc"], "valid_auc": result.best_valid_auc,
                         "best_step": result.best_step, "steps": result.steps, "train_seconds": result.seconds,
                         "tokens_per_second": result.tokens_per_second})
            logger.info("%d-shot seed %d: test AUC %.4f", k, seed, test["auc"])
    summary = {}
    for k in shots:
        aucs = np.array([r["test_auc"] for r in runs if r["shots"] == k], dtype=float)
        summary[str(k)] = {"mean": float(aucs.mean()), "std": float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0,
                           "n": len(aucs)}
    return {"runs": runs, "summary": summary}
