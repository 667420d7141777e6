"""Train SASRec with the Hugging Face ``Trainer`` (accelerate underneath: CPU, one GPU, or many
with DDP / DeepSpeed / FSDP under ``accelerate launch``), with safetensors checkpoints and exact
resume. Reads only the events known before the evaluated part (``split.known(part)``).
"""

from __future__ import annotations

import logging

from llmrec.data.splits import Split
from llmrec.sasrec.config import SASRecConfig
from llmrec.sasrec.data import ItemVocabulary, SASRecCollator, SASRecSequences
from llmrec.sasrec.model import SASRec
from llmrec.training import train_and_save, training_arguments

log = logging.getLogger(__name__)


def train_sasrec(split: Split, config: SASRecConfig, part: str = "test", model: SASRec | None = None,
                 callbacks: list | None = None, **training_overrides) -> tuple[SASRec, ItemVocabulary]:
    """Train for evaluating ``part`` and save to ``config.output_dir``.

    Vocabulary and sequences come from ``split.known(part)`` only: ``split.train`` for 'valid';
    train + valid for 'test' (leave-one-out then trains on everything before each user's last event).
    """
    from transformers import Trainer, set_seed

    vocabulary = ItemVocabulary.from_split(split, part)
    dataset = SASRecSequences.from_interactions(split.known(part), vocabulary, config.max_len)
    if len(dataset) == 0:
        raise ValueError("no training sequence with two or more events: SASRec has nothing to learn from")
    log.info("SASRec: %d training windows over %d items, %s loss", len(dataset), len(vocabulary) - 1, config.loss)
    if model is None:
        set_seed(config.seed)
        model = SASRec(config, len(vocabulary))
    elif model.n_items != len(vocabulary):
        raise ValueError(f"model has {model.n_items} item rows, the training vocabulary {len(vocabulary)}")
    trainer = Trainer(model=model, args=training_arguments(config, **training_overrides), train_dataset=dataset,
                      data_collator=SASRecCollator(len(vocabulary), sample_negatives=config.loss == "bce",
                                                   seed=config.seed),
                      callbacks=callbacks)
    train_and_save(trainer, config, "SASRec", lambda out: model.save_config(out, vocabulary.items))
    return model.eval(), vocabulary
