"""Train and evaluate SASRec: one process on the CPU, or GPUs under ``accelerate launch``.

    python scripts/train_sasrec.py --dataset amazon-scientific --epochs 20
    accelerate launch --config_file scripts/accelerate/multi_gpu_ddp.yaml scripts/train_sasrec.py \
        --dataset amazon-games --batch_size 256

Training runs on every process (the Trainer handles DDP / DeepSpeed / FSDP); the main process
evaluates through ``llmrec.run`` (the one path) and writes metrics next to the model.
"""

from __future__ import annotations

from transformers import HfArgumentParser

from llmrec.run import RunConfig
from llmrec.sasrec.config import SASRecConfig


def main() -> None:
    from accelerate import PartialState

    from llmrec.run import load_split, run
    from llmrec.sasrec import ItemVocabulary, SASRec, SASRecScorer, train_sasrec

    run_config, config = HfArgumentParser((RunConfig, SASRecConfig)).parse_args_into_dataclasses()
    state = PartialState()
    split = load_split(run_config)

    train_sasrec(split, config, part=run_config.part)

    if state.is_main_process:
        # Reload the saved file: under FSDP the in-memory model is sharded, the file holds it whole.
        model, items = SASRec.from_pretrained(config.output_dir, map_location=str(state.device))
        run_config.out_dir = config.output_dir
        run(run_config, [SASRecScorer(model, ItemVocabulary(items))], split=split)
        print(f"model and metrics in {config.output_dir}")


if __name__ == "__main__":
    main()
