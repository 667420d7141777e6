"""Train and evaluate SASRec: one process on the CPU, or GPUs under ``accelerate launch``.

    python scripts/train_sasrec.py --dataset amazon-scientific --epochs 20
    accelerate launch --config_file scripts/accelerate/multi_gpu_ddp.yaml scripts/train_sasrec.py \
        --dataset amazon-games --batch_size 256

Training runs on every process (the Trainer handles DDP / DeepSpeed / FSDP); the main process
evaluates with the one evaluator and writes metrics next to the model.
"""

from __future__ import annotations

from transformers import HfArgumentParser

from llmrec.sasrec.config import SASRecConfig
from llmrec.training import RunArguments


def main() -> None:
    from accelerate import PartialState

    from llmrec.sasrec import ItemVocabulary, SASRec, SASRecScorer, train_sasrec

    run, config = HfArgumentParser((RunArguments, SASRecConfig)).parse_args_into_dataclasses()
    state = PartialState()
    split = run.load_split()

    train_sasrec(split, config, part=run.part)

    if state.is_main_process:
        # Reload the saved file: under FSDP the in-memory model is sharded, the file holds it whole.
        model, items = SASRec.from_pretrained(config.output_dir, map_location=str(state.device))
        run.evaluate_and_write(split, SASRecScorer(model, ItemVocabulary(items)), config.output_dir)
        print(f"model and metrics in {config.output_dir}")


if __name__ == "__main__":
    main()
