"""Settings shared by the methods that train with the Hugging Face ``Trainer`` (LEARN, SASRec).

A method's config subclasses :class:`TrainerSettings` and redeclares only the fields whose defaults
differ; :func:`training_arguments` maps the settings onto ``TrainingArguments`` in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class TrainerSettings:
    epochs: float = field(default=10.0, metadata={"help": "passes over the training sequences"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimiser steps (-1: use epochs)"})
    batch_size: int = field(default=128, metadata={"help": "sequences per device per step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW peak learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: float = field(default=0.0, metadata={
        "help": "linear warm-up: a number of steps, or a fraction of all steps when below 1"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    seed: int = field(default=42, metadata={"help": "seed for initialisation, data order and dropout"})
    output_dir: str = field(default="runs/model", metadata={
        "help": "where checkpoints (safetensors) and the final model go"})
    save_steps: int = field(default=500, metadata={"help": "write a checkpoint every this many steps (0: never)"})
    save_total_limit: int = field(default=2, metadata={"help": "keep at most this many checkpoints"})
    resume: bool = field(default=False, metadata={
        "help": "continue from the newest checkpoint in output_dir (weights, optimiser, scheduler, data "
                "position and RNG state)"})
    logging_steps: int = field(default=50, metadata={"help": "log the losses every this many steps"})
    progress: bool = field(default=True, metadata={"help": "show tqdm progress bars"})


def training_arguments(settings: TrainerSettings, **overrides: Any):
    """``TrainingArguments`` from the settings (``overrides`` win, e.g. from a launcher script)."""
    import torch
    from transformers import TrainingArguments

    values = dict(
        output_dir=settings.output_dir,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_steps,
        lr_scheduler_type="linear",
        max_grad_norm=settings.max_grad_norm,
        seed=settings.seed,
        save_strategy="steps" if settings.save_steps > 0 else "no",
        save_steps=max(1, settings.save_steps),
        save_total_limit=settings.save_total_limit,
        logging_steps=settings.logging_steps,
        disable_tqdm=not settings.progress,
        report_to="none",
        remove_unused_columns=False,  # the collators build exactly the models' arguments
        label_names=[],
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    values.update(overrides)
    return TrainingArguments(**values)


def train_and_save(trainer, settings: TrainerSettings, method: str) -> None:
    """Train (resuming from the newest checkpoint when ``settings.resume``) and save the final model.

    ``save_model`` gathers sharded weights (FSDP, DeepSpeed) and writes model.safetensors on rank 0.
    """
    from transformers.trainer_utils import get_last_checkpoint

    resume_from = None
    if settings.resume:
        resume_from = get_last_checkpoint(settings.output_dir) if Path(settings.output_dir).is_dir() else None
        if resume_from is None:
            log.warning("%s: resume requested but no checkpoint in %s; starting fresh", method, settings.output_dir)
    trainer.train(resume_from_checkpoint=resume_from)
    trainer.save_model(settings.output_dir)


@dataclass
class RunArguments:
    """Data and evaluation flags of the training scripts (``scripts/train_*.py``)."""

    dataset: str = field(default="amazon-scientific", metadata={"help": "data set name (llmrec data list)"})
    data_dir: str | None = field(default=None, metadata={"help": "folder of the data sets ($LLMREC_DATA_DIR)"})
    split: str = field(default="auto", metadata={
        "help": "auto (the source's own split if it has one, else leave_one_out), predefined, leave_one_out, "
                "temporal, random"})
    part: str = field(default="test", metadata={"help": "held-out part to evaluate: test or valid"})
    max_users: int | None = field(default=None, metadata={"help": "seeded user subsample (catalogue stays whole)"})
    max_cases: int | None = field(default=None, metadata={"help": "seeded subsample of evaluation cases"})
    eval_mode: str = field(default="full", metadata={"help": "full ranking, or sampled negatives"})
    threads: int | None = field(default=None, metadata={
        "help": "torch CPU threads (1 is fastest on a busy shared CPU; None: torch's default)"})

    def load_split(self):
        return load_split(self.dataset, self.data_dir, self.split, self.max_users, self.threads)

    def evaluate_and_write(self, split, scorer, output_dir: str) -> dict:
        return evaluate_and_write(split, scorer, output_dir, part=self.part, mode=self.eval_mode,
                                  max_cases=self.max_cases)


def load_split(dataset: str, data_dir: str | None = None, split: str = "auto", max_users: int | None = None,
               threads: int | None = None):
    """Set the thread count, load the data set, subsample users if asked (seed 0) and split it.
    Shared by the ``llmrec learn | sasrec`` commands and the ``scripts/train_*.py`` launchers."""
    import torch

    from llmrec.data.registry import load_dataset
    from llmrec.data.schema import subsample_users
    from llmrec.data.splits import make_split

    if threads:
        torch.set_num_threads(threads)
    data = load_dataset(dataset, data_dir)
    if max_users is not None:
        data = subsample_users(data, max_users, seed=0)
    result = make_split(data, split)
    print(f"{data.name}: {result.summary()}")
    return result


def evaluate_and_write(split, scorer, output_dir: str, part: str = "test", mode: str = "full",
                       max_cases: int | None = None, num_negatives: int | None = None) -> dict:
    """Evaluate ``scorer`` with the one evaluator, print the table and write JSON + PNG to ``output_dir``."""
    from llmrec.eval import EvalConfig, RankingEvaluator
    from llmrec.eval.report import results_table, write_results

    settings = dict(part=part, mode=mode, max_cases=max_cases)
    if num_negatives is not None:
        settings["num_negatives"] = num_negatives
    result = RankingEvaluator(split, EvalConfig(**settings))(scorer)
    print(results_table({scorer.name: result}))
    for path in write_results({scorer.name: result}, output_dir,
                              title=f"{split.dataset.name}, {split.name} split, {part}"):
        print(f"wrote {path}")
    return result
