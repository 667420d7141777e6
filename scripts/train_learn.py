"""Train and evaluate LEARN: one process on the CPU, or GPUs under ``accelerate launch``.

    python scripts/train_learn.py --dataset amazon-scientific --item_tower pch
    accelerate launch --config_file scripts/accelerate/multi_gpu_ddp.yaml scripts/train_learn.py \
        --dataset amazon-scientific --text_model /models/Qwen2.5-7B --dtype bfloat16 --layer -1

Content embeddings are computed by the main process first (cached on disk; the other processes
then read the cache), training runs on every process (the Trainer handles DDP / DeepSpeed / FSDP),
and the main process evaluates through ``llmrec.run`` (the one path: same split, candidates,
evaluator and report as ``llmrec evaluate``) and writes metrics next to the model.
Every flag comes from ``llmrec.run.RunConfig`` and ``llmrec.learn.config`` (``--help`` lists them).
"""

from __future__ import annotations

from transformers import HfArgumentParser

from llmrec.learn.config import LearnRunConfig
from llmrec.run import RunConfig


def main() -> None:
    from accelerate import PartialState

    from llmrec.data.text import learn_item_text
    from llmrec.learn import ContentEmbeddingGenerator, LearnModel, LearnScorer, train_learn
    from llmrec.run import load_split, run

    run_config, config = HfArgumentParser((RunConfig, LearnRunConfig)).parse_args_into_dataclasses()
    state = PartialState()
    if config.device == "auto":
        config.device = str(state.device)  # each process embeds on its own GPU
    split = load_split(run_config)
    ceg_config = config.ceg_config()
    texts = learn_item_text(split.dataset).to_dict()
    with state.main_process_first():  # the main process fills the cache, the others read it
        content = ContentEmbeddingGenerator(ceg_config)(texts, progress=state.is_main_process)

    train_learn(split, content, config.learn_config(), part=run_config.part, ceg_config=ceg_config)

    if state.is_main_process:
        # Reload the saved file: under FSDP the in-memory model is sharded, the file holds it whole.
        model = LearnModel.from_pretrained(config.output_dir, map_location=str(state.device))
        scorer = LearnScorer(model, content, name=f"learn-{config.item_tower}-{ceg_config.text_model}")
        run_config.out_dir = config.output_dir
        run(run_config, [scorer], split=split)
        print(f"model and metrics in {config.output_dir}; CEG: {content.stats}")


if __name__ == "__main__":
    main()
