"""Pretrain PTUM with the Hugging Face ``Trainer`` (accelerate underneath: CPU, one GPU, or many
under ``accelerate launch``; safetensors checkpoints and exact resume), then fine-tune it:

* ``finetune_next_item``: next-item prediction (next-K with K = 1) for the recommendation scorer;
* ``finetune_ptum``: user demographics from few labels, a linear head on the user vector.

Pretraining and next-item fine-tuning read only ``split.known(part)``; the demographics task reads
the users table too, and only for the users its seeded split puts in train.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import tempfile
from typing import Any

import numpy as np
import torch

from llmrec.data.splits import Split
from llmrec.ptum.config import PTUMConfig
from llmrec.ptum.data import (
    DemographicData,
    ItemVocabulary,
    LabelledUsers,
    PTUMCollator,
    PTUMSequences,
    collate_labelled,
    demographic_data,
    pad_rows,
    text_item_vectors,
    user_sequences,
    user_subset,
)
from llmrec.ptum.model import PTUM, PTUMClassifier
from llmrec.training import train_and_save, training_arguments

log = logging.getLogger(__name__)


def new_encoder(split: Split, config: PTUMConfig, vocabulary: ItemVocabulary, seed: int | None = None) -> PTUM:
    """A randomly initialised PTUM over ``vocabulary`` (text vectors computed when item_encoder='text')."""
    from transformers import set_seed

    vectors = text_item_vectors(split.dataset, vocabulary, config) if config.item_encoder == "text" else None
    set_seed(config.seed if seed is None else seed)
    return PTUM(config, len(vocabulary), item_vectors=vectors)


def pretrain_ptum(split: Split, config: PTUMConfig, part: str = "test", model: PTUM | None = None,
                  callbacks: list | None = None, **training_overrides: Any) -> tuple[PTUM, ItemVocabulary]:
    """Pretrain on the behaviour windows of ``split.known(part)`` and save to ``config.output_dir``."""
    from transformers import Trainer

    vocabulary = ItemVocabulary.from_split(split, part)
    dataset = PTUMSequences.from_split(split, vocabulary, config, part)
    if len(dataset) == 0:
        raise ValueError("no behaviour window long enough to pretrain on (next-K needs K + 1 events)")
    tasks = [name for name, on in (("masked", config.masked_task), (f"next-{config.next_k}", config.next_k_task)) if on]
    log.info("PTUM: %d windows over %d items, tasks %s", len(dataset), len(vocabulary) - 1, "+".join(tasks))
    if model is None:
        model = new_encoder(split, config, vocabulary)
    elif model.n_items != len(vocabulary):
        raise ValueError(f"model has {model.n_items} item rows, the pretraining vocabulary {len(vocabulary)}")
    collator = PTUMCollator(len(vocabulary), masked=config.masked_task, mask_share=config.mask_share,
                            mask_negatives=config.mask_negatives, next_k=config.next_k if config.next_k_task else 0,
                            next_negatives=config.next_negatives, seed=config.seed)
    trainer = Trainer(model=model, args=training_arguments(config, **training_overrides), train_dataset=dataset,
                      data_collator=collator, callbacks=callbacks)
    train_and_save(trainer, config, "PTUM", lambda out: model.save_config(out, vocabulary.items))
    return model.eval(), vocabulary


def next_item_windows(split: Split, vocabulary: ItemVocabulary, max_len: int, part: str = "test",
                      user_fraction: float = 1.0, seed: int = 0) -> PTUMSequences:
    """Every known event after a user's first as a target, with up to ``max_len`` events before it;
    from a seeded ``user_fraction`` of the users (``user_subset``)."""
    sequences = user_sequences(split.known(part), vocabulary)
    users = user_subset(list(sequences), user_fraction, seed) if user_fraction < 1.0 else set(sequences)
    out = [seq[max(0, end - max_len - 1):end] for user, seq in sequences.items() if user in users
           for end in range(2, len(seq) + 1)]
    return PTUMSequences(out)


def finetune_next_item(split: Split, model: PTUM, vocabulary: ItemVocabulary, config: PTUMConfig,
                       part: str = "test", **training_overrides: Any) -> PTUM:
    """Fine-tune on next-item prediction (the user vector scores the next item against
    ``config.next_negatives`` negatives) for ``config.next_item_epochs``, on the sequences of a
    seeded ``config.user_fraction`` of the users; saved to ``<output_dir>/next-item``."""
    from transformers import Trainer

    if model.n_items != len(vocabulary):
        raise ValueError(f"model has {model.n_items} item rows, the vocabulary {len(vocabulary)}")
    settings = dataclasses.replace(config, epochs=config.next_item_epochs, learning_rate=config.finetune_learning_rate,
                                   output_dir=f"{config.output_dir}/next-item")
    dataset = next_item_windows(split, vocabulary, model.config.max_len, part, config.user_fraction, config.seed)
    if len(dataset) == 0:
        raise ValueError("no user has two known events: nothing to fine-tune next-item prediction on")
    collator = PTUMCollator(len(vocabulary), masked=False, next_k=1, next_negatives=config.next_negatives,
                            seed=config.seed)
    trainer = Trainer(model=model.train(), args=training_arguments(settings, **training_overrides),
                      train_dataset=dataset, data_collator=collator)
    train_and_save(trainer, settings, "PTUM next-item", lambda out: model.save_config(out, vocabulary.items))
    return model.eval()


def finetune_ptum(split: Split, config: PTUMConfig, encoder: PTUM, vocabulary: ItemVocabulary, target: str,
                  label_fraction: float, seed: int, part: str = "test", holdout: str = "test",
                  **training_overrides: Any) -> dict:
    """Demographics: fine-tune ``encoder`` (a copy; pretrained, or fresh for 'scratch') with a linear
    head on ``label_fraction`` of the training users (``config.finetune_encoder='frozen'``: the head
    only) and report accuracy, macro-F1 and macro one-vs-rest AUC on the test users, or with
    ``holdout='valid'`` on a validation slice of the training pool (for tuning: no test user is read).

    The training settings are ``config``'s with the ``finetune_*`` epochs, batch size and learning rate;
    nothing is saved (no checkpoint, no model)."""
    from transformers import Trainer, set_seed

    data = demographic_data(split, vocabulary, target, label_fraction, seed, encoder.config.max_len,
                            config.test_share, part, holdout)
    set_seed(seed)
    model = PTUMClassifier(copy.deepcopy(encoder).train(), len(data.classes),
                           freeze_encoder=config.finetune_encoder == "frozen")
    with tempfile.TemporaryDirectory(prefix="ptum-finetune-") as tmp:
        settings = dataclasses.replace(config, epochs=config.finetune_epochs, seed=seed, output_dir=tmp,
                                       batch_size=config.finetune_batch_size,
                                       learning_rate=(config.probe_learning_rate if config.finetune_encoder == "frozen"
                                                      else config.finetune_learning_rate),
                                       save_steps=0, resume=False)
        trainer = Trainer(model=model, args=training_arguments(settings, **training_overrides),
                          train_dataset=LabelledUsers(data.train_items, data.train_labels),
                          data_collator=collate_labelled)
        trainer.train()
    probabilities = predict_proba(model.eval(), data.test_items, len(data.classes))
    return {"target": target, "label_fraction": label_fraction, "seed": seed, "classes": data.classes,
            "holdout": holdout, "finetune_encoder": config.finetune_encoder,
            **demographic_metrics(data, probabilities)}


def demographic_metrics(data: DemographicData, probabilities: np.ndarray) -> dict:
    """Accuracy, macro-F1 and one-vs-rest AUC of class ``probabilities`` for ``data``'s evaluated
    users, with the majority-class accuracy (the training users' most frequent class) beside them."""
    from sklearn.metrics import accuracy_score, f1_score

    from llmrec.eval.metrics import macro_auc

    predicted = probabilities.argmax(-1)
    majority = int(np.bincount(data.train_labels).argmax())
    return {"train_users": len(data.train_users), "test_users": len(data.test_users),
            "accuracy": float(accuracy_score(data.test_labels, predicted)),
            "macro_f1": float(f1_score(data.test_labels, predicted, average="macro", zero_division=0)),
            "auc": macro_auc(data.test_labels, probabilities),
            "majority_accuracy": float(np.mean(np.asarray(data.test_labels) == majority))}


@torch.no_grad()
def predict_proba(model: PTUMClassifier, items: list[np.ndarray], n_classes: int, batch_size: int = 256) -> np.ndarray:
    """(len(items), n_classes) class probabilities."""
    device = next(model.parameters()).device
    out = [model(pad_rows(items[i:i + batch_size]).to(device))["logits"].softmax(-1).cpu()
           for i in range(0, len(items), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, n_classes), dtype=np.float32)
