"""The one path: load -> split -> candidates -> score -> evaluate -> write.

Every command (``llmrec evaluate | quickstart | rerank | learn | sasrec | tallrec score``), launcher
script and benchmark calls :func:`run` (or its steps), so a number in one place means what it means
everywhere: the same split, the same candidates, the same evaluator, the same report::

    from llmrec.run import RunConfig, run
    outcome = run(RunConfig(dataset="ml-100k", split="temporal", mode="full"),
                  ["popularity", "itemcf", "embedding"])
    outcome.results["itemcf"]["ndcg@10"]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmrec.candidates import CANDIDATE_MODES
from llmrec.data.splits import Split
from llmrec.eval import EvalConfig, PointwiseEvaluator, RankingEvaluator
from llmrec.eval.report import results_table, write_results
from llmrec.registry import BuildContext
from llmrec.scoring import Scorer

log = logging.getLogger(__name__)
TASKS = ("ranking", "pointwise")


@dataclass
class RunConfig:
    """Data, split, candidates and evaluation of one run. Every field is a flag of the commands."""

    dataset: str = field(default="ml-100k", metadata={"help": "data set name (see `llmrec data list`)"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder holding the data sets (default: $LLMREC_DATA_DIR, else ~/.cache/llmrec/data)"})
    download: bool = field(default=True, metadata={
        "help": "download MovieLens when its folder is absent (never when a local folder is incomplete)"})
    on_unknown_items: str = field(default="error", metadata={
        "help": "interactions naming items missing from the catalogue: error, or drop them (counted)"})
    split: str = field(default="auto", metadata={"help": "how to split: see llmrec.data.splits.SPLIT_HELP"})
    test_ratio: float | None = field(default=None, metadata={
        "help": "temporal / temporal_loo / random splits: share of events held out (None: the split's default)"})
    valid_ratio: float | None = field(default=None, metadata={
        "help": "temporal / temporal_loo splits: share of events before the test cut held out for validation"})
    part: str = field(default="test", metadata={
        "help": "held-out part to evaluate (test or valid); models learn only from events known before it"})
    max_users: int | None = field(default=None, metadata={
        "help": "seeded subsample of users (with all their events; the catalogue stays whole). Results say "
                "'N of M users'"})
    task: str = field(default="ranking", metadata={
        "help": "ranking (HR/NDCG/Recall/MRR over candidates) or pointwise (AUC / log loss of liked-or-not pairs)"})
    mode: str = field(default="full", metadata={
        "help": "ranking candidates: full (whole catalogue), sampled (targets + negatives), recalled "
                "(multi-channel, targets not forced in), given (a file)"})
    num_negatives: int = field(default=100, metadata={"help": "sampled mode: negatives per case (LLMRank: 19)"})
    n_candidates: int = field(default=20, metadata={"help": "recalled mode: candidates per case"})
    channels: list[str] = field(default_factory=lambda: ["popularity", "itemcf", "bm25", "embedding"], metadata={
        "help": "recalled mode: registered scorers used as recall channels, in merge order"})
    candidates_file: str | None = field(default=None, metadata={
        "help": "given mode: JSON lines {\"user\": ..., \"candidates\": [...]}"})
    max_cases: int | None = field(default=None, metadata={
        "help": "seeded subsample of evaluation cases (pointwise: of pairs)"})
    min_history: int = field(default=1, metadata={"help": "cases with a shorter history are dropped (counted)"})
    max_history: int | None = field(default=None, metadata={
        "help": "scorers see at most this many recent history events (the whole history is still excluded)"})
    like_threshold: float | None = field(default=None, metadata={
        "help": "pointwise: ratings strictly above it are likes (default 3: TALLRec); ignored when the data "
                "has a label column"})
    batch_size: int = field(default=256, metadata={"help": "cases per scorer call (LLM scorers: a few)"})
    seed: int = field(default=42, metadata={"help": "seed of negative sampling and case subsampling"})
    user_seed: int = field(default=0, metadata={"help": "seed of the --max-users subsample"})
    threads: int | None = field(default=None, metadata={
        "help": "torch CPU threads (1 is often fastest on a busy shared CPU; default: torch's choice)"})
    out_dir: str = field(default="outputs/evaluate", metadata={"help": "folder for metrics.json and metrics.png"})
    title: str | None = field(default=None, metadata={"help": "chart and table title (default: data set and split)"})
    show_progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.mode not in CANDIDATE_MODES:
            raise ValueError(f"mode must be one of {CANDIDATE_MODES}, got {self.mode!r}")
        if self.on_unknown_items not in ("error", "drop"):
            raise ValueError(f"on_unknown_items must be 'error' or 'drop', got {self.on_unknown_items!r}")
        if self.max_users is not None and self.max_users < 1:
            raise ValueError(f"max_users must be at least 1, got {self.max_users}")

    def split_options(self) -> dict[str, float]:
        options = {}
        if self.test_ratio is not None:
            options["test_ratio"] = self.test_ratio
        if self.valid_ratio is not None:
            options["valid_ratio"] = self.valid_ratio
        return options

    def eval_config(self) -> EvalConfig:
        return EvalConfig(part=self.part, mode=self.mode, num_negatives=self.num_negatives,
                          n_candidates=self.n_candidates, candidates_file=self.candidates_file,
                          min_history=self.min_history, max_history=self.max_history, max_cases=self.max_cases,
                          batch_size=self.batch_size, seed=self.seed, show_progress=self.show_progress)


@dataclass
class RunOutcome:
    split: Split
    evaluator: Any
    results: dict[str, dict]
    scorers: dict[str, Scorer]
    files: list[Path] = field(default_factory=list)
    table: str = ""


def load_split(config: RunConfig) -> Split:
    """Set the thread count, load the data set, subsample users if asked and split it."""
    from llmrec.data.registry import load_dataset
    from llmrec.data.schema import subsample_users
    from llmrec.data.splits import make_split

    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    options: dict[str, Any] = {}
    if config.on_unknown_items != "error":
        options["on_unknown_items"] = config.on_unknown_items
    data = load_dataset(config.dataset, config.data_dir, download=config.download, **options)
    if config.max_users is not None:
        data = subsample_users(data, config.max_users, seed=config.user_seed)
    return make_split(data, config.split, **config.split_options())


def build_context(split: Split, config: RunConfig, options: dict[str, dict] | None = None,
                  load: dict[str, str] | None = None) -> BuildContext:
    return BuildContext(split, part=config.part, load=dict(load or {}), seed=config.seed,
                        show_progress=config.show_progress, options=dict(options or {}))


def make_evaluator(split: Split, config: RunConfig, context: BuildContext):
    """The evaluator of ``config.task``; recall channels come from the registry."""
    if config.task == "pointwise":
        return PointwiseEvaluator.from_split(split, part=config.part, like_threshold=config.like_threshold,
                                             min_history=config.min_history, max_history=config.max_history,
                                             max_pairs=config.max_cases, seed=config.seed,
                                             batch_size=config.batch_size, show_progress=config.show_progress)
    channels = [context.build(name) for name in config.channels] if config.mode == "recalled" else []
    return RankingEvaluator(split, config.eval_config(), channels=channels)


def describe(split: Split) -> str:
    """One line on the data and the split, for the top of every run."""
    s = split.summary()
    pop = split.dataset.population()
    users = f"{pop['users']:,} users" + (f" (seeded subsample of {pop['users_total']:,})" if pop["subsampled"] else "")
    line = (f"{split.dataset.name}: {users}, {split.dataset.n_items:,} items; {split.name} split: "
            f"train {s['train']:,}, valid {s['valid']:,}, test {s['test']:,} events; {s['cold_test_items']} "
            f"cold-start test items")
    if s["trains_on_future"]:
        line += (f"; NOTE this protocol trains on the future ({s['train_events_after_median_test']:.0%} of training "
                 "events are later than the median test event)")
    return line


def run(config: RunConfig, scorers: Sequence[str | Scorer], options: dict[str, dict] | None = None,
        load: dict[str, str] | None = None, split: Split | None = None, echo: Callable[[str], Any] = print,
        write: bool = True) -> RunOutcome:
    """Evaluate ``scorers`` (registered names or scorer objects) on one split and one candidate set,
    print the table and write ``metrics.json`` + ``metrics.png`` to ``config.out_dir``.

    ``options``: scorer name -> config options; ``load``: scorer name -> saved model folder.
    """
    split = split if split is not None else load_split(config)
    echo(describe(split))
    context = build_context(split, config, options, load)
    evaluator = make_evaluator(split, config, context)
    results: dict[str, dict] = {}
    built: dict[str, Scorer] = {}
    for entry in scorers:
        scorer = context.build(entry) if isinstance(entry, str) else entry
        if scorer.name in results:
            raise ValueError(f"two scorers are named {scorer.name!r}; give them distinct names")
        built[scorer.name] = scorer
        results[scorer.name] = evaluator(scorer)
    table = results_table(results)
    echo(table)
    files: list[Path] = []
    if write:
        title = config.title or f"{split.dataset.name}, {split.name} split"
        files = write_results(results, config.out_dir, title=title, run_config=asdict(config))
        echo("wrote " + ", ".join(str(f) for f in files))
    return RunOutcome(split, evaluator, results, built, files, table)


def run_config_flags(defaults: dict[str, Any] | None = None, renamed: dict[str, str] | None = None) -> type:
    """RunConfig's fields as a dataclass for ``HfArgumentParser`` beside a method's config (launcher
    scripts): ``defaults`` replace RunConfig's, ``renamed`` renames the fields the method's config
    also has (e.g. ``seed`` -> ``eval_seed``). :func:`run_config_from_flags` maps them back."""
    import dataclasses
    import typing

    defaults, renamed = defaults or {}, renamed or {}
    hints = typing.get_type_hints(RunConfig)
    specs = []
    for f in dataclasses.fields(RunConfig):
        if f.name in defaults:
            spec = field(default=defaults[f.name], metadata=f.metadata)
        elif f.default_factory is not dataclasses.MISSING:
            spec = field(default_factory=f.default_factory, metadata=f.metadata)
        else:
            spec = field(default=f.default, metadata=f.metadata)
        specs.append((renamed.get(f.name, f.name), hints[f.name], spec))
    return dataclasses.make_dataclass("RunFlags", specs)


def run_config_from_flags(flags: Any, renamed: dict[str, str] | None = None) -> RunConfig:
    import dataclasses

    values, renamed = vars(flags), renamed or {}
    return RunConfig(**{f.name: values[renamed.get(f.name, f.name)] for f in dataclasses.fields(RunConfig)})
