"""The candidates stage: which items each evaluation case ranks.

* ``full``: the whole catalogue (history excluded by the evaluator);
* ``sampled``: the case's targets plus N seeded negatives (the sampled protocol of many papers and
  LLMRank's 1 + 19); the random stream is seeded on the case (user, history), never on a target;
* ``recalled``: top items of several recall channels (any scorers), merged round-robin and
  de-duplicated; targets are *not* forced in, so a target that was not recalled is a miss;
* ``given``: lists read from a file (JSON lines ``{"user": ..., "candidates": [...]}``).

The evaluator builds candidates once, before any scorer runs, so every scorer ranks the same lists.
Only ``sampled`` looks at targets (it must put them in the list); ``recalled`` and ``given`` never do.
This package imports no method: recall channels arrive as scorers.
"""

from llmrec.candidates.base import CANDIDATE_MODES, CandidateLists, case_seed, order_keys
from llmrec.candidates.given import read_candidate_file, write_candidate_file
from llmrec.candidates.recalled import MultiChannelRecall, RecallResult, top_k_excluding
from llmrec.candidates.sampled import sample_candidates

__all__ = [
    "CANDIDATE_MODES",
    "CandidateLists",
    "MultiChannelRecall",
    "RecallResult",
    "case_seed",
    "order_keys",
    "read_candidate_file",
    "sample_candidates",
    "top_k_excluding",
    "write_candidate_file",
]
