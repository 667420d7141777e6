"""Train and evaluate LEARN: one process on the CPU, or GPUs under ``accelerate launch``.

    python scripts/train_learn.py --dataset amazon-scientific --item_tower pch
    accelerate launch --config_file scripts/accelerate/multi_gpu_ddp.yaml scripts/train_learn.py \
        --dataset amazon-scientific --text_model /models/Qwen2.5-7B --dtype bfloat16 --layer -1

Content embeddings are computed by the main process first (cached on disk; the other processes
then read the cache), training runs on every process (the Trainer handles DDP / DeepSpeed / FSDP),
and the main process evaluates with the one evaluator and writes metrics next to the model.
Every flag comes from the dataclasses below and ``llmrec.learn.config`` (``--help`` lists them).
"""

from __future__ import annotations

from transformers import HfArgumentParser

from llmrec.learn.config import CEGConfig, LearnConfig
from llmrec.training import RunArguments


def main() -> None:
    from accelerate import PartialState

    from llmrec.data.text import learn_item_text
    from llmrec.learn import ContentEmbeddingGenerator, LearnModel, LearnScorer, train_learn

    run, ceg_config, config = HfArgumentParser((RunArguments, CEGConfig, LearnConfig)).parse_args_into_dataclasses()
    state = PartialState()
    if ceg_config.device == "auto":
        ceg_config.device = str(state.device)  # each process embeds on its own GPU
    split = run.load_split()
    texts = learn_item_text(split.dataset).to_dict()
    with state.main_process_first():  # the main process fills the cache, the others read it
        content = ContentEmbeddingGenerator(ceg_config)(texts, progress=state.is_main_process)

    train_learn(split, content, config, part=run.part, ceg_config=ceg_config)

    if state.is_main_process:
        # Reload the saved file: under FSDP the in-memory model is sharded, the file holds it whole.
        model = LearnModel.from_pretrained(config.output_dir, map_location=str(state.device))
        scorer = LearnScorer(model, content, name=f"learn-{config.item_tower}-{ceg_config.text_model}")
        run.evaluate_and_write(split, scorer, config.output_dir)
        print(f"model and metrics in {config.output_dir}; CEG: {content.stats}")


if __name__ == "__main__":
    main()
