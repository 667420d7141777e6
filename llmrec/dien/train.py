"""Train DIEN with the Hugging Face ``Trainer`` (safetensors checkpoints, exact resume, accelerate
underneath). Reads only the events known before the evaluated part (``split.known(part)``)."""

from __future__ import annotations

import logging

import numpy as np

from llmrec.data.splits import Split
from llmrec.data.vocabulary import ItemVocabulary
from llmrec.dien.config import DIENConfig
from llmrec.dien.data import DIENCollator, DIENExamples, category_rows, item_categories
from llmrec.dien.model import DIEN
from llmrec.training import train_and_save, training_arguments

log = logging.getLogger(__name__)


def train_dien(split: Split, config: DIENConfig, part: str = "test", callbacks: list | None = None,
               **training_overrides) -> tuple[DIEN, ItemVocabulary, dict[str, int]]:
    """Train for evaluating ``part`` and save to ``config.output_dir``; returns the model, its item
    vocabulary and the catalogue's item -> category map."""
    from transformers import Trainer, set_seed

    vocabulary = ItemVocabulary.from_split(split, part)
    categories = item_categories(split.dataset.items, config.category_column)
    examples = DIENExamples.from_interactions(split.known(part), vocabulary)
    if len(examples) == 0:
        raise ValueError("no known sequence with two or more events: DIEN has nothing to learn from")
    log.info("DIEN (%s, aux loss %s): %d examples over %d items, %d categories", config.evolution,
             config.aux_loss, len(examples), len(vocabulary) - 1, max(categories.values(), default=0))
    set_seed(config.seed)
    model = DIEN(config, len(vocabulary), max(categories.values(), default=0) + 1)
    cold = np.asarray([c for item, c in categories.items() if item not in vocabulary], dtype=np.int64)
    collator = DIENCollator(examples, category_rows(categories, vocabulary), config.max_len, seed=config.seed,
                            cold_categories=cold)
    trainer = Trainer(model=model, args=training_arguments(config, **training_overrides), train_dataset=examples,
                      data_collator=collator, callbacks=callbacks)
    train_and_save(trainer, config, "DIEN", lambda out: model.save_config(out, vocabulary.items, categories))
    return model.eval(), vocabulary, categories
