"""Train and evaluate SASRec: one process on the CPU, or GPUs under ``accelerate launch``.

    python scripts/train_sasrec.py --dataset amazon-scientific --epochs 20
    accelerate launch --config_file scripts/accelerate/multi_gpu_ddp.yaml scripts/train_sasrec.py \
        --dataset amazon-games --batch_size 256

Training runs on every process (the Trainer handles DDP / DeepSpeed / FSDP); the main process
evaluates with the one evaluator and writes metrics next to the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import HfArgumentParser

from llmrec.sasrec.config import SASRecConfig


@dataclass
class RunArguments:
    dataset: str = field(default="amazon-scientific", metadata={"help": "data set name (llmrec data list)"})
    data_dir: str | None = field(default=None, metadata={"help": "folder of the data sets ($LLMREC_DATA_DIR)"})
    split: str = field(default="auto", metadata={
        "help": "auto (the source's own split if it has one, else leave_one_out), predefined, leave_one_out, "
                "temporal, random"})
    part: str = field(default="test", metadata={"help": "held-out part to evaluate: test or valid"})
    max_users: int | None = field(default=None, metadata={"help": "seeded user subsample (catalogue stays whole)"})
    max_cases: int | None = field(default=None, metadata={"help": "seeded subsample of evaluation cases"})
    eval_mode: str = field(default="full", metadata={"help": "full ranking, or sampled negatives"})
    threads: int | None = field(default=None, metadata={
        "help": "torch CPU threads (1 is fastest on a busy shared CPU; None: torch's default)"})


def main() -> None:
    import torch
    from accelerate import PartialState

    from llmrec.data.registry import load_dataset
    from llmrec.data.splits import make_split
    from llmrec.eval import EvalConfig, RankingEvaluator
    from llmrec.eval.report import results_table, write_results
    from llmrec.learn import subsample_users
    from llmrec.sasrec import ItemVocabulary, SASRec, SASRecScorer, train_sasrec

    run, config = HfArgumentParser((RunArguments, SASRecConfig)).parse_args_into_dataclasses()
    if run.threads:
        torch.set_num_threads(run.threads)
    state = PartialState()

    dataset = load_dataset(run.dataset, run.data_dir)
    if run.max_users:
        dataset = subsample_users(dataset, run.max_users)
    kind = run.split if run.split != "auto" else (
        "predefined" if dataset.eval_sequences is not None else "leave_one_out")
    split = make_split(dataset, kind)

    train_sasrec(split, config, part=run.part)

    if state.is_main_process:
        # Reload the saved file: under FSDP the in-memory model is sharded, the file holds it whole.
        model, items = SASRec.from_pretrained(config.output_dir, map_location=str(state.device))
        vocabulary = ItemVocabulary(items)
        evaluator = RankingEvaluator(split, EvalConfig(part=run.part, mode=run.eval_mode, max_cases=run.max_cases))
        scorer = SASRecScorer(model, vocabulary)
        results = {scorer.name: evaluator(scorer)}
        print(results_table(results))
        write_results(results, config.output_dir, title=f"{dataset.name}, {split.name} split, {run.part}")
        print(f"model and metrics in {config.output_dir}")


if __name__ == "__main__":
    main()
