"""Train LEARN with the Hugging Face ``Trainer`` (accelerate underneath: the same code runs on CPU,
one GPU, or many with DDP / DeepSpeed / FSDP when started by ``accelerate launch``).

The Trainer brings what we would otherwise hand-write: seeded data order, AdamW with warm-up and
decay, gradient clipping, safetensors checkpoints of weights + optimiser + scheduler + RNG state,
and exact resume. In-batch negatives are per device (no cross-device gather).
"""

from __future__ import annotations

import logging

from llmrec.data.splits import Split
from llmrec.learn.ceg import ContentEmbeddings
from llmrec.learn.config import CEGConfig, LearnConfig
from llmrec.learn.data import LearnCollator, LearnSequences, resolve_cvr_label
from llmrec.learn.model import LearnModel
from llmrec.training import train_and_save, training_arguments

log = logging.getLogger(__name__)


def train_learn(split: Split, content: ContentEmbeddings, config: LearnConfig, part: str = "test",
                ceg_config: CEGConfig | None = None, model: LearnModel | None = None,
                callbacks: list | None = None, **training_overrides) -> LearnModel:
    """Train for evaluating ``part`` and save the final model to ``config.output_dir``.

    Sequences and CVR labels come from ``split.known(part)`` only: ``split.train`` for 'valid';
    train + valid for 'test'. ``content`` must hold a CEG row for the training items (it may hold
    more: the whole catalogue, cold items included; rows no training event uses are never read).
    """
    from transformers import Trainer

    train = split.known(part)
    cvr_mode = resolve_cvr_label(config, train)
    dataset = LearnSequences.from_interactions(train, content.index(), config, cvr_mode=cvr_mode)
    if len(dataset) == 0:
        raise ValueError("no training sequence with two or more events: LEARN has nothing to learn from")
    log.info("LEARN: %d training windows, item tower %s, CVR label %s", len(dataset), config.item_tower, cvr_mode)
    if model is None:
        from transformers import set_seed

        set_seed(config.seed)  # initial weights reproducible from the seed alone
        model = LearnModel(config, content.dim, content.n_segments)
    args = training_arguments(config, **training_overrides)
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      data_collator=LearnCollator(content, cvr_mode=cvr_mode, seed=config.seed),
                      callbacks=callbacks)
    extra = {"cvr_mode": cvr_mode, "content_model": content.model_key,
             "ceg": None if ceg_config is None else vars(ceg_config)}
    train_and_save(trainer, config, "LEARN", lambda out: model.save_config(out, extra=extra))
    return model.eval()
