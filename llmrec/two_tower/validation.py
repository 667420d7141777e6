"""Per-epoch validation for the two-tower model, and early stopping on it.

Its own module because it subclasses ``transformers.TrainerCallback``: importing ``llmrec.two_tower``
(the registry does, for every command) stays free of the transformers import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from transformers import TrainerCallback

log = logging.getLogger(__name__)


class EpochValidation(TrainerCallback):
    """After every epoch: ``evaluate(model) -> metrics`` (e.g. validation RMSE and top-100 through
    the real evaluators, which the Trainer's eval loop cannot run: they rank the whole catalogue
    from full histories), kept in ``history``; stops training once ``metric`` has not improved for
    ``patience`` epochs (0: never stops)."""

    def __init__(self, evaluate: Callable[[torch.nn.Module], dict], metric: str, greater_is_better: bool,
                 patience: int = 0):
        self.evaluate, self.metric = evaluate, metric
        self.greater_is_better, self.patience = greater_is_better, patience
        self.history: list[dict] = []

    def best(self) -> dict:
        sign = 1.0 if self.greater_is_better else -1.0
        return max(self.history, key=lambda h: sign * h[self.metric])

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        metrics = self.evaluate(model)
        model.train(was_training)
        self.history.append({"epoch": round(float(state.epoch or 0.0), 3), **metrics})
        log.info("two-tower validation after epoch %s: %s", self.history[-1]["epoch"], metrics)
        if self.patience and len(self.history) > self.patience:
            best_at = self.history.index(self.best())
            if len(self.history) - 1 - best_at >= self.patience:
                control.should_training_stop = True
        return control
