"""Settings shared by the methods that train with the Hugging Face ``Trainer`` (LEARN, SASRec, TALLRec).

A method's config subclasses :class:`TrainerSettings` and redeclares only the fields whose defaults
differ; :func:`training_arguments` maps the settings onto ``TrainingArguments`` (or a subclass of
it such as trl's ``SFTConfig``, via ``args_cls``) in one place.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
S = TypeVar("S", bound="TrainerSettings")


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
    gradient_accumulation_steps: int = field(default=1, metadata={
        "help": "forward passes per optimiser step (effective batch = batch_size x this x devices)"})
    bf16: bool = field(default=False, metadata={
        "help": "bfloat16 mixed precision (GPU; on an AVX2-only CPU it is ~15x slower, so off by default)"})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "recompute activations in the backward pass: less memory, ~30% slower (GPU, long inputs)"})
    report_to: str = field(default="none", metadata={"help": "trainer loggers: none, tensorboard, wandb, ..."})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[S], values: dict[str, Any]) -> S:
        """The settings saved beside a model; keys this version does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def training_arguments(settings: TrainerSettings, args_cls: type | None = None, **overrides: Any):
    """``TrainingArguments`` from the settings (``overrides`` win, e.g. from a launcher script).

    ``args_cls``: a ``TrainingArguments`` subclass to build instead (TALLRec passes trl's
    ``SFTConfig``), so every method maps the shared fields the same way.
    """
    import torch
    from transformers import TrainingArguments

    args_cls = args_cls or TrainingArguments
    names = {f.name for f in dataclasses.fields(args_cls)}
    values = dict(
        output_dir=settings.output_dir,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_steps,
        lr_scheduler_type="linear",
        max_grad_norm=settings.max_grad_norm,
        seed=settings.seed,
        # Always explicit: trl's SFTConfig turns bf16 on by default (about 15x slower on an AVX2 CPU).
        bf16=settings.bf16,
        save_strategy="steps" if settings.save_steps > 0 else "no",
        save_steps=max(1, settings.save_steps),
        save_total_limit=settings.save_total_limit,
        logging_steps=settings.logging_steps,
        disable_tqdm=not settings.progress,
        report_to=settings.report_to,
        remove_unused_columns=False,  # the collators build exactly the models' arguments
        label_names=[],
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    # transformers 5 renamed gradient checkpointing to activation checkpointing (the old name warns);
    # SFTConfig defaults it to True, so it is always passed explicitly.
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    values[checkpointing] = settings.gradient_checkpointing
    values.update(overrides)
    return args_cls(**values)


def resume_checkpoint(settings: TrainerSettings, method: str, folder: str | None = None) -> str | None:
    """The newest checkpoint in ``folder`` (default ``output_dir``) when ``settings.resume`` (None, with a
    warning, if there is none)."""
    from transformers.trainer_utils import get_last_checkpoint

    if not settings.resume:
        return None
    folder = folder or settings.output_dir
    found = get_last_checkpoint(folder) if Path(folder).is_dir() else None
    if found is None:
        log.warning("%s: resume requested but no checkpoint in %s; starting fresh", method, folder)
    return found


def train_and_save(trainer, settings: TrainerSettings, method: str,
                   save_config: Callable[[str], Any] | None = None) -> None:
    """Train (resuming from the newest checkpoint when ``settings.resume``) and save the final model.

    ``save_model`` gathers sharded weights (FSDP, DeepSpeed) and writes model.safetensors on rank 0;
    ``save_config(output_dir)``, when given, writes the method's own config and vocabulary beside
    them, on the main process only.
    """
    trainer.train(resume_from_checkpoint=resume_checkpoint(settings, method))
    trainer.save_model(settings.output_dir)
    if save_config is not None and trainer.is_world_process_zero():
        save_config(settings.output_dir)


def time_budget_callback(minutes: float) -> Any:
    """A ``TrainerCallback`` that ends training once ``minutes`` of wall-clock time have passed (checked
    after each step); its ``stopped_early`` says whether it did. Keeps a run inside a shared CPU slot."""
    import time

    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.perf_counter()
            self.stopped_early = False

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - self.started > 60.0 * minutes and state.global_step < state.max_steps:
                control.should_training_stop = True
                self.stopped_early = True

    return TimeBudget()


def peak_memory_bytes(device: Any) -> int:
    """Peak GPU memory on CUDA, else the process's peak resident set size (Linux reports KiB)."""
    import resource

    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class ListDataset:
    """Pre-encoded training rows (dicts of token ids and labels) as a map-style dataset for ``Trainer``."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


@dataclass
class BudgetedRun:
    """What one ``train_within_budget`` call did."""

    seconds: float
    steps: int
    rows_seen: int
    losses: list[float]
    peak_memory_bytes: int


def train_within_budget(make_trainer: Callable[[list | None], Any], settings: TrainerSettings, method: str,
                        rows: int, minutes: float, device: Any) -> BudgetedRun:
    """Build the trainer (``make_trainer(callbacks)``) with a wall-clock budget of ``minutes`` (0: none),
    train it (resuming when ``settings.resume``), and report time, steps, rows seen, logged losses and
    peak memory. Leaves the model in eval mode."""
    import time

    import torch

    budget = time_budget_callback(minutes) if minutes > 0 else None
    trainer = make_trainer([budget] if budget else None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(settings, method, folder=trainer.args.output_dir))
    seconds = time.perf_counter() - started
    trainer.model.eval()
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    steps = trainer.state.global_step
    seen = min(rows, steps * settings.batch_size * settings.gradient_accumulation_steps * trainer.args.world_size)
    if budget is not None and budget.stopped_early:
        log.warning("%s: the %.0f-minute budget ended training after %d steps (%d of %d training rows)", method,
                    minutes, steps, seen, rows)
    return BudgetedRun(seconds, steps, seen, losses, peak_memory_bytes(device))
