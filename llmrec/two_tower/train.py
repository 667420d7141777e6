"""Train the two-tower model with the Hugging Face ``Trainer`` (safetensors checkpoints, exact
resume, accelerate underneath). Reads only the events known before the evaluated part."""

from __future__ import annotations

import logging

import numpy as np
import torch

from llmrec.data.splits import Split
from llmrec.data.vocabulary import PAD, ItemVocabulary
from llmrec.training import train_and_save, training_arguments
from llmrec.two_tower.config import TwoTowerConfig
from llmrec.two_tower.data import TwoTowerCollator, TwoTowerEvents
from llmrec.two_tower.model import TwoTower

log = logging.getLogger(__name__)


def read_text_vectors(folder: str) -> dict[str, np.ndarray]:
    """Item id -> text vector from a folder written by ``llmrec embed``."""
    from llmrec.embed import read_embedding_folder

    ids, vectors, _ = read_embedding_folder(folder)
    return {str(i): vectors[k] for k, i in enumerate(ids)}


def text_table(vectors: dict[str, np.ndarray], vocabulary: ItemVocabulary) -> torch.Tensor:
    """(len(vocabulary), dim) text vectors of the vocabulary rows; zeros for padding and items without text."""
    dim = len(next(iter(vectors.values())))
    table = np.zeros((len(vocabulary), dim), dtype=np.float32)
    for k, item in enumerate(vocabulary.items):
        if item in vectors:
            table[k + 1] = vectors[item]
    missing = sum(item not in vectors for item in vocabulary.items)
    if missing:
        log.warning("two-tower: %d of %d training items have no text vector (zeros)", missing, len(vocabulary) - 1)
    return torch.from_numpy(table)


def log_popularity(counts: np.ndarray) -> torch.Tensor:
    """log of each row's share of the training events (the in-batch sampling probability)."""
    share = np.maximum(counts, 1.0) / max(counts.sum(), 1.0)
    out = np.log(share)
    out[PAD] = 0.0
    return torch.from_numpy(out.astype(np.float32))


def train_two_tower(split: Split, config: TwoTowerConfig, part: str = "test", callbacks: list | None = None,
                    **training_overrides) -> tuple[TwoTower, ItemVocabulary]:
    """Train for evaluating ``part`` on ``split.known(part)`` and save to ``config.output_dir``."""
    from transformers import Trainer, set_seed

    vocabulary = ItemVocabulary.from_split(split, part)
    events = TwoTowerEvents.from_interactions(split.known(part), vocabulary)
    if len(events) < 2:
        raise ValueError("fewer than two known events: the two-tower model has nothing to learn from")
    if not events.has_ratings and config.rating_weight > 0 and config.retrieval_weight == 0:
        raise ValueError(f"{split.dataset.name} has no ratings: the rating-only two-tower model cannot train")
    mean = events.mean_rating()
    text = text_table(read_text_vectors(config.text_embeddings), vocabulary) if config.text_embeddings else None
    log.info("two-tower: %d events over %d items, ratings %s, weights retrieval %g / rating %g", len(events),
             len(vocabulary) - 1, events.has_ratings, config.retrieval_weight, config.rating_weight)
    set_seed(config.seed)
    model = TwoTower(config, len(vocabulary), mean, log_popularity(events.item_counts(len(vocabulary))), text,
                     n_users=len(events.users) + 1)
    collator = TwoTowerCollator(events, config.max_history, config.history_keep, mean, seed=config.seed)
    trainer = Trainer(model=model, args=training_arguments(config, **training_overrides), train_dataset=events,
                      data_collator=collator, callbacks=callbacks)
    model.user_ids = list(events.users) if config.user_id else []
    train_and_save(trainer, config, "two-tower", lambda out: model.save_config(out, vocabulary.items))
    return model.eval(), vocabulary

