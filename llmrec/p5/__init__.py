"""P5 (Geng et al., RecSys 2022) and its successors, generative recommendation by item ID: the item
indexing schemes (random, sequential, collaborative, semantic; the original, leaky numbering only
to measure its leak) and a trie of valid IDs for constrained decoding."""

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
from llmrec.p5.trie import IdTrie, add_id_tokens

__all__ = ["INDEXES", "CollaborativeIndex", "IdTrie", "ItemIndex", "LeakyOriginalIndex", "RandomIndex",
           "SemanticIndex", "SequentialIndex", "add_id_tokens", "catalogue", "co_occurrence", "make_index",
           "residual_kmeans"]
