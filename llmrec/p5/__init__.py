"""P5 (Geng et al., RecSys 2022) and its successors, generative recommendation by item ID: the item
indexing schemes (random, sequential, collaborative, semantic; the original, leaky numbering only
to measure its leak), prompt families as template files, a text-to-text model trained with the HF
``Trainer``, a trie of valid IDs for constrained decoding, and the ``p5`` scorer."""

from llmrec.p5.config import P5Config
from llmrec.p5.data import P5Collator, P5Dataset, P5Example, build_examples
from llmrec.p5.files import load_index, save_index
from llmrec.p5.indexing import (
    INDEXES,
    CollaborativeIndex,
    ItemIndex,
    LeakyOriginalIndex,
    RandomIndex,
    SemanticIndex,
    SequentialIndex,
    catalogue,
    co_occurrence,
    make_index,
    residual_kmeans,
)
from llmrec.p5.model import P5Model
from llmrec.p5.prompts import PromptSet, default_prompts
from llmrec.p5.scorer import P5Scorer
from llmrec.p5.train import fit_index, train_p5
from llmrec.p5.trie import IdTrie, add_id_tokens

__all__ = ["INDEXES", "CollaborativeIndex", "IdTrie", "ItemIndex", "LeakyOriginalIndex", "P5Collator", "P5Config",
           "P5Dataset", "P5Example", "P5Model", "P5Scorer", "PromptSet", "RandomIndex", "SemanticIndex",
           "SequentialIndex", "add_id_tokens", "build_examples", "catalogue", "co_occurrence", "default_prompts",
           "fit_index", "load_index", "make_index", "residual_kmeans", "save_index", "train_p5"]
