"""Train and evaluate DIEN: one process on the CPU, or GPUs under ``accelerate launch``.

    python scripts/train_dien.py --dataset ml-100k --split leave_one_out --task pointwise --epochs 2
    accelerate launch --config_file scripts/accelerate/multi_gpu_ddp.yaml scripts/train_dien.py \\
        --dataset amazon-games --batch_size 1024

Training runs on every process; the main process evaluates through ``llmrec.run`` (the one path) and
writes metrics next to the model.
"""

from __future__ import annotations

from transformers import HfArgumentParser

from llmrec.dien.config import DIENConfig
from llmrec.run import run_config_flags, run_config_from_flags

RENAMED = {"seed": "eval_seed", "batch_size": "eval_batch_size"}


def main() -> None:
    from accelerate import PartialState

    from llmrec.data.vocabulary import ItemVocabulary
    from llmrec.dien import DIEN, DIENScorer, train_dien
    from llmrec.run import load_split, run

    flags, config = HfArgumentParser((run_config_flags(renamed=RENAMED), DIENConfig)).parse_args_into_dataclasses()
    run_config = run_config_from_flags(flags, RENAMED)
    state = PartialState()
    split = load_split(run_config)
    train_dien(split, config, part=run_config.part)
    if state.is_main_process:
        model, items, categories = DIEN.from_pretrained(config.output_dir)
        run_config.out_dir = config.output_dir
        run(run_config, [DIENScorer(model, ItemVocabulary(items), categories)], split=split)
        print(f"model and metrics in {config.output_dir}")


if __name__ == "__main__":
    main()
