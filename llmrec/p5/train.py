"""Train P5 with the Hugging Face ``Trainer`` (accelerate underneath: CPU, one GPU, or several under
``accelerate launch``), with safetensors checkpoints and resume. The index, the tokenizer and the
examples come from ``split.known(part)`` (and the catalogue) only.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from llmrec.data.splits import Split
from llmrec.p5.config import P5Config
from llmrec.p5.data import P5Collator, P5Dataset, build_examples
from llmrec.p5.indexing import ItemIndex, make_index
from llmrec.p5.model import P5Model, trained_for
from llmrec.p5.prompts import PromptSet, default_prompts
from llmrec.training import resume_checkpoint, training_arguments

log = logging.getLogger(__name__)


def fit_index(split: Split, config: P5Config, part: str = "test") -> ItemIndex:
    """The configured item index fitted for evaluating ``part`` (only 'original' reads ``part``: it leaks)."""
    index = make_index(config.index, **config.index_options())
    if index.leaky:
        log.warning("P5: the %s index is LEAKY (numbers items along whole sequences, test events included); "
                    "its results only measure the leak", index.name)
    return index.fit(split, part)


def train_p5(split: Split, config: P5Config, part: str = "test", prompts: PromptSet | None = None,
             callbacks: list | None = None, **training_overrides) -> P5Model:
    """Fit the index, build the examples and the model, train, and save to ``config.output_dir``.
    The returned model carries ``train_report`` (examples per family, seconds, seconds per epoch)."""
    from transformers import Trainer

    prompts = prompts or default_prompts()
    index = fit_index(split, config, part)
    examples = build_examples(split, index, config, prompts, part)
    if not examples:
        raise ValueError("P5: no user has two or more known events, so there is nothing to train on")
    families = Counter(e.family for e in examples)
    log.info("P5: %d examples (%s) over %d indexed items, %s index", len(examples), dict(families), len(index),
             index.name)
    words = [*prompts.words(), *(e.target for e in examples), *(e.source for e in examples[:2000])]
    p5 = P5Model.build(config, index, words)
    dataset = P5Dataset(examples, p5.tokenizer)
    trainer = Trainer(model=p5.model, args=training_arguments(config, **training_overrides), train_dataset=dataset,
                      data_collator=P5Collator(p5.tokenizer.pad_token_id, causal=p5.causal), callbacks=callbacks)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(config, "P5"))
    seconds = time.perf_counter() - start
    p5.model = trainer.model
    if trainer.is_world_process_zero():
        p5.save(config.output_dir, trained_for(split, part))
    epochs = max(float(trainer.state.epoch or config.epochs), 1e-9)
    p5.train_report = {"examples": len(examples), "families": dict(families), "items": len(index),
                       "vocabulary": len(p5.tokenizer), "parameters": sum(p.numel() for p in p5.model.parameters()),
                       "seconds": round(seconds, 1), "seconds_per_epoch": round(seconds / epochs, 1)}
    return p5
