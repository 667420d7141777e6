"""TALLRec (Bao et al., RecSys 2023): LoRA instruction tuning of a causal LM to answer "will the
user like this item? Yes./No.", scored as P(Yes) from the two answer logits.

As a registered scorer on the one path (``llmrec.run``; see ``llmrec.tallrec.scorer``)::

    run(RunConfig(dataset="ml-100k", split="temporal", valid_ratio=0.1, task="pointwise"),
        ["item-prior", "tallrec"], options={"tallrec": {"shots": 64}})

With collaborative evidence in the prompt (the target's known ratings and the user's rating habits in
words, leak-free; ``llmrec.tallrec.evidence``): ``options={"tallrec": {"shots": 64, "evidence": "both"}}``.

With TALLRec's JSON files (import / export)::

    examples = movielens_examples(load_dataset("ml-100k", data_dir))
    parts = split_examples(examples, by="user")          # 8:1:1, leak-free: by user or by time
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
    question_example,
    rating_examples,
    read_examples,
    sequence_examples,
    write_examples,
)
from llmrec.tallrec.evidence import EVIDENCE, ItemEvidence, Stats, evidence_text, items_before
from llmrec.tallrec.guards import AdapterError, AdapterMismatchError, check_adapter_files
from llmrec.tallrec.model import PromptEncoder, YesNoScorer, answer_token_ids
from llmrec.tallrec.split import leaked_examples, remove_overlap, split_examples, users_of
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
    "movielens_examples", "question_example", "rating_examples", "read_examples", "sequence_examples",
    "write_examples", "EVIDENCE", "ItemEvidence", "Stats", "evidence_text", "items_before",
    "AdapterError", "AdapterMismatchError", "check_adapter_files", "PromptEncoder",
    "YesNoScorer", "answer_token_ids", "leaked_examples", "remove_overlap", "split_examples", "users_of",
    "TrainResult", "few_shot_protocol", "load_adapter", "load_base", "save_adapter", "train_tallrec",
]
