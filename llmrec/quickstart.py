"""The quickstart: MovieLens 100K, temporal 70/30 split, embedding ranker vs popularity and item-CF.

``run_quickstart`` is the whole main job as a Python function; ``llmrec quickstart`` calls it.
It loads real data, finds the cold-start items the split creates, embeds every movie with the
packaged all-MiniLM-L6-v2, ranks the full catalogue for each test user, and reports all / warm /
long-tail / cold-start rows next to the popularity and item-CF baselines, on the one path
(``llmrec.run``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from llmrec.data.registry import load_dataset
from llmrec.data.splits import temporal_split
from llmrec.run import RunConfig, run

log = logging.getLogger(__name__)


@dataclass
class QuickstartConfig:
    data_dir: str | None = field(default=None, metadata={
        "help": "folder holding ml-100k/ (default: $LLMREC_DATA_DIR, else download to the cache)"})
    out_dir: str = field(default="outputs/quickstart", metadata={"help": "where metrics.json and metrics.png go"})
    model: str = field(default="all-MiniLM-L6-v2", metadata={
        "help": "sentence-transformers model name or path for item embeddings"})
    test_ratio: float = field(default=0.3, metadata={"help": "share of events (latest in time) held out for test"})
    max_cases: int | None = field(default=None, metadata={
        "help": "evaluate a seeded subsample of test users (quick runs)"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "embedding cache folder (default ~/.cache/llmrec/embeddings)"})
    show_progress: bool = field(default=True, metadata={"help": "show progress bars"})


def run_quickstart(config: QuickstartConfig | None = None, echo=print) -> dict:
    """Run the main job; returns ``{"split": ..., "results": {scorer: metrics}, "files": [...]}``."""
    config = config or QuickstartConfig()
    start = time.perf_counter()
    echo("[1/4] loading MovieLens 100K ...")
    dataset = load_dataset("ml-100k", config.data_dir)
    echo(f"      {dataset.summary()['interactions']:,} ratings, {dataset.n_users} users, {dataset.n_items} movies "
         f"from {dataset.source}")

    echo(f"[2/4] temporal split: first {1 - config.test_ratio:.0%} of events (by time) train, "
         f"last {config.test_ratio:.0%} test ...")
    split = temporal_split(dataset, test_ratio=config.test_ratio)
    summary = split.summary()
    echo(f"      train {summary['train']:,} events, test {summary['test']:,}; "
         f"{summary['cold_test_items']} cold-start movies "
         f"(in test, never in train) carry {summary['test_events_on_cold_items']} test events")

    echo(f"[3/4] embedding {dataset.n_items} movie descriptions with {config.model} ...")
    embedding: dict = {"model": config.model, "show_progress": config.show_progress}
    if config.cache_dir:
        embedding["cache_dir"] = config.cache_dir

    echo("[4/4] full-ranking evaluation over the whole catalogue (history items excluded) ...")
    run_config = RunConfig(dataset="ml-100k", data_dir=config.data_dir, split="temporal", mode="full",
                           max_cases=config.max_cases, out_dir=config.out_dir, show_progress=config.show_progress,
                           title="MovieLens 100K, temporal 70/30")
    outcome = run(run_config, ["embedding", "popularity", "itemcf"], options={"embedding": embedding}, split=split,
                  echo=lambda line: echo("" if line.startswith(dataset.name + ":") else line))
    echo(f"done in {time.perf_counter() - start:.0f} s")
    return {"split": summary, "results": outcome.results, "files": [str(f) for f in outcome.files]}
