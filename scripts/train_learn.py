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

from dataclasses import dataclass, field

from transformers import HfArgumentParser

from llmrec.learn.config import CEGConfig, LearnConfig


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
    from llmrec.data.text import learn_item_text
    from llmrec.eval import EvalConfig, RankingEvaluator
    from llmrec.eval.report import results_table, write_results
    from llmrec.learn import ContentEmbeddingGenerator, LearnModel, LearnScorer, subsample_users, train_learn

    run, ceg_config, config = HfArgumentParser((RunArguments, CEGConfig, LearnConfig)).parse_args_into_dataclasses()
    if run.threads:
        torch.set_num_threads(run.threads)
    state = PartialState()
    if ceg_config.device == "auto":
        ceg_config.device = str(state.device)  # each process embeds on its own GPU

    dataset = load_dataset(run.dataset, run.data_dir)
    if run.max_users:
        dataset = subsample_users(dataset, run.max_users)
    kind = run.split if run.split != "auto" else (
        "predefined" if dataset.eval_sequences is not None else "leave_one_out")
    split = make_split(dataset, kind)
    texts = learn_item_text(dataset).to_dict()
    with state.main_process_first():  # the main process fills the cache, the others read it
        content = ContentEmbeddingGenerator(ceg_config)(texts, progress=state.is_main_process)

    train_learn(split, content, config, part=run.part, ceg_config=ceg_config)

    if state.is_main_process:
        # Reload the saved file: under FSDP the in-memory model is sharded, the file holds it whole.
        model = LearnModel.from_pretrained(config.output_dir, map_location=str(state.device))
        evaluator = RankingEvaluator(split, EvalConfig(part=run.part, mode=run.eval_mode, max_cases=run.max_cases))
        scorer = LearnScorer(model, content, name=f"learn-{config.item_tower}-{ceg_config.text_model}")
        results = {scorer.name: evaluator(scorer)}
        print(results_table(results))
        write_results(results, config.output_dir, title=f"{dataset.name}, {split.name} split, {run.part}")
        print(f"model and metrics in {config.output_dir}; CEG: {content.stats}")


if __name__ == "__main__":
    main()
