"""Train and evaluate the two-tower model: one process on the CPU, or GPUs under ``accelerate launch``.

    python scripts/train_two_tower.py --dataset ml-100k --split random --epochs 10
    accelerate launch --config_file scripts/accelerate/multi_gpu_ddp.yaml scripts/train_two_tower.py \\
        --dataset amazon-games --batch_size 4096

Training runs on every process; the main process evaluates through ``llmrec.run`` (the one path) and
writes metrics next to the model.
"""

from __future__ import annotations

from transformers import HfArgumentParser

from llmrec.run import run_config_flags, run_config_from_flags
from llmrec.two_tower.config import TwoTowerConfig

RENAMED = {"seed": "eval_seed", "batch_size": "eval_batch_size"}


def main() -> None:
    from accelerate import PartialState

    from llmrec.data.vocabulary import ItemVocabulary
    from llmrec.run import load_split, run
    from llmrec.two_tower import TwoTower, TwoTowerScorer, train_two_tower

    flags, config = HfArgumentParser((run_config_flags(renamed=RENAMED), TwoTowerConfig)).parse_args_into_dataclasses()
    run_config = run_config_from_flags(flags, RENAMED)
    state = PartialState()
    split = load_split(run_config)
    train_two_tower(split, config, part=run_config.part)
    if state.is_main_process:
        model, items = TwoTower.from_pretrained(config.output_dir)
        run_config.out_dir = config.output_dir
        run(run_config, [TwoTowerScorer(model, ItemVocabulary(items), score=config.score)], split=split)
        print(f"model and metrics in {config.output_dir}")


if __name__ == "__main__":
    main()
