"""TALLRec (Bao et al., RecSys 2023): LoRA instruction tuning of a causal LM to answer "will the
user like this item? Yes./No.", scored as P(Yes) from the two answer logits.

    examples = movielens_examples(load_dataset("ml-100k", data_dir))
    parts = split_examples(examples)                    # 8:1:1, by example or by user
    result = train_tallrec(TallRecConfig(shots=64), parts["train"], parts["valid"])
    save_adapter(result, "adapters/tallrec", parts["valid"])   # guarded: non-empty, reload reproduces
    scorer = load_adapter("adapters/tallrec"); scorer.evaluate(parts["test"])["auc"]
"""

from llmrec.tallrec.config import TallRecConfig
from llmrec.tallrec.data import (
    InstructionExample,
    build_examples,
    few_shot_subset,
    mind_examples,
    movielens_examples,
    read_examples,
    remove_overlap,
    sequence_examples,
    split_examples,
    write_examples,
)
from llmrec.tallrec.guards import AdapterError, AdapterMismatchError, check_adapter_files
from llmrec.tallrec.model import PromptEncoder, YesNoScorer, answer_token_ids
from llmrec.tallrec.train import (
    TrainResult,
    few_shot_protocol,
    load_adapter,
    load_base,
    save_adapter,
    train_tallrec,
)

__all__ = [
    "TallRecConfig", "InstructionExample", "build_examples", "few_shot_subset", "mind_examples",
    "movielens_examples", "read_examples", "remove_overlap", "sequence_examples", "split_examples",
    "write_examples", "AdapterError", "AdapterMismatchError", "check_adapter_files", "PromptEncoder",
    "YesNoScorer", "answer_token_ids", "TrainResult", "few_shot_protocol", "load_adapter", "load_base",
    "save_adapter", "train_tallrec",
]
