"""Registers ``tallrec``: P(Yes) of a causal LM asked TALLRec's question for each (history, candidate).

The prompt is rendered from item titles exactly as the instruction builders render training
examples (:func:`llmrec.tallrec.data.question_example`): the last ``history_len`` history items,
liked (``is_liked`` of the rating the history carries) under "User Preference", the others under
"User Unpreference" (no ratings: all are preferences), and the candidate's title as the target.
The scorer sees histories and candidates only; the target's own rating never reaches it.
With ``evidence`` (item | user | both) the prompt also says what the known ratings say about the
candidate (from ``context.known``: the events before the evaluated part) and about the user (from
the history given), see ``llmrec.tallrec.evidence``; a loaded adapter keeps the mode it was trained with.

What the builder does, in this order:

1. ``context.load_dir("tallrec")`` is set (``--load tallrec=FOLDER``): load that saved adapter;
2. ``zero_shot``: the untrained base model;
3. otherwise train: examples from ``context.known`` only (never a held-out event), the latest
   ``early_stopping_share`` of them by target time held out for early stopping, LoRA through trl's
   ``SFTTrainer`` (``train_tallrec``), the guarded ``save_adapter`` to ``output_dir``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from llmrec.data.loaders.tallrec import TallRecExample
from llmrec.data.schema import LIKE_THRESHOLD, RATING, Dataset, is_liked
from llmrec.registry import BuildContext, register_scorer
from llmrec.scoring import Candidates, Histories, History, check_scores, history_ratings, per_user_candidates
from llmrec.tallrec.config import TallRecConfig
from llmrec.tallrec.data import (
    UNLABELLED,
    InstructionExample,
    item_titles,
    prompt_domain,
    question_example,
    rating_examples,
    rating_scale,
    sequence_examples,
)
from llmrec.tallrec.evidence import ItemEvidence, KnownResiduals, check_evidence, summarize
from llmrec.tallrec.model import YesNoScorer
from llmrec.tallrec.prior import CollaborativePrior, fit_prior, with_offsets
from llmrec.tallrec.split import split_examples

logger = logging.getLogger(__name__)


class TallRecScorer:
    """A ``Scorer``: P(Yes) for every (history, candidate) pair, from a :class:`YesNoScorer`."""

    def __init__(self, yes_no: YesNoScorer | None, titles: Mapping[str, str], domain: str = "movie",
                 history_len: int = 10, name: str = "tallrec", info: dict | None = None,
                 evidence: str = "none", item_evidence: ItemEvidence | None = None, scale: float = 5.0,
                 prior: CollaborativePrior | None = None, known: pd.DataFrame | None = None) -> None:
        if yes_no is None and prior is None:
            raise ValueError("tallrec: nothing to score with (no LLM and no prior)")
        self.yes_no = yes_no
        self.prior = prior
        self.titles = titles
        self.domain = domain
        self.history_len = history_len
        self.name = name
        self.info = dict(info or {})
        self.prompts = 0
        self.evidence = check_evidence(evidence)
        if (evidence in ("item", "both") or prior is not None) and item_evidence is None:
            raise ValueError(f"tallrec: evidence {evidence!r} / a prior needs the item statistics of the known events")
        self.item_evidence = item_evidence
        self.scale = scale
        # The user's residuals (rating minus item mean) for the prior, from the known events.
        self.residuals = (KnownResiduals(known, item_evidence) if prior is not None and known is not None
                          and item_evidence is not None else None)
        if prior is not None and self.residuals is None:
            raise ValueError("tallrec: a prior needs the known events (for the user's rating residuals)")

    def question(self, history: Sequence[str], candidate: str) -> InstructionExample:
        """The question about ``candidate`` after ``history`` (no answer attached). Evidence, when on,
        comes from the known events (item) and the whole given history (user), never the pair's label."""
        full = history if isinstance(history, History) else History(history)
        shown = full.last(self.history_len)
        ratings = history_ratings(shown)
        liked = [True] * len(shown) if ratings is None else [bool(v) for v in
                                                             is_liked(np.asarray(ratings, float), LIKE_THRESHOLD)]
        spec, offset = None, 0.0
        if self.evidence != "none" or self.prior is not None:
            item = self.item_evidence.get(str(candidate)) if self.item_evidence is not None else None
            ratings_all = history_ratings(full)
            residuals = (self.residuals.of(full.user, list(full), ratings_all)
                         if self.residuals is not None and ratings_all is not None else None)
            user = summarize(ratings_all, LIKE_THRESHOLD, residuals)
            spec = None if self.evidence == "none" else (self.evidence, item, user, self.scale)
            offset = 0.0 if self.prior is None else self.prior.logit(item, user)
        question = question_example(list(shown), liked, str(candidate), self.titles, self.domain, evidence=spec)
        return replace(question, offset=offset) if offset else question

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        rows = per_user_candidates(candidates, len(histories))
        width = len(rows[0]) if rows else 0
        if any(len(r) != width for r in rows):
            raise ValueError("tallrec: per-user candidate lists must have equal lengths")
        questions = [self.question(h, c) for h, cands in zip(histories, rows, strict=True) for c in cands]
        self.prompts += len(questions)
        if self.yes_no is None:  # the prior alone (prior_only): the ablation of the LLM
            p = 1.0 / (1.0 + np.exp(-np.array([q.offset for q in questions], dtype=np.float64)))
        else:
            p = self.yes_no.p_yes(questions) if questions else np.zeros(0)
        return check_scores(p.reshape(len(rows), width), len(rows), width, self.name)

    def diagnostics(self) -> dict:
        return {**self.info, "prompts_scored": self.prompts}


class QuestionScorer:
    """Scores the questions of a TALLRec JSON file as pointwise pairs (``llmrec tallrec score``).

    A file has no split and often no user ids, so a pair's candidate is the question itself
    (:func:`question_id`: instruction + input, never the answer) and its history is empty; the
    file's own wording is scored as written. ``p_yes`` keeps every score, by question."""

    def __init__(self, yes_no: YesNoScorer, examples: Sequence[TallRecExample], name: str = "tallrec") -> None:
        self.yes_no = yes_no
        self.name = name
        self.questions = {question_id(e): TallRecExample(e.instruction, e.input, "", UNLABELLED) for e in examples}
        self.p_yes: dict[str, float] = {}

    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        rows = per_user_candidates(candidates, len(histories))
        keys = [str(c) for r in rows for c in r]
        todo = sorted({k for k in keys if k not in self.p_yes})
        self.p_yes.update(zip(todo, self.yes_no.p_yes([self.questions[k] for k in todo]).tolist(), strict=True))
        width = len(rows[0]) if rows else 0
        return check_scores(np.array([self.p_yes[k] for k in keys]).reshape(len(rows), width), len(rows), width,
                            self.name)


def question_id(example: TallRecExample) -> str:
    return f"{example.instruction}\n{example.input}"


def file_evaluator(examples: Sequence[TallRecExample], name: str = "tallrec-json", total: int | None = None,
                   batch_size: int = 64, show_progress: bool = True):
    """The one pointwise evaluator over a file's questions (labels: the file's answers)."""
    from llmrec.eval.pointwise import PointwiseEvaluator

    total = len(examples) if total is None else total
    return PointwiseEvaluator([History() for _ in examples], [question_id(e) for e in examples],
                              [e.label for e in examples], name=name, batch_size=batch_size,
                              show_progress=show_progress, counts={"label": "the file's answers"},
                              population={"pairs_total": total, "subsampled_pairs": len(examples) < total})


def known_examples(context: BuildContext, config: TallRecConfig
                   ) -> tuple[list[InstructionExample], list[InstructionExample]]:
    """(training, early-stopping) examples built from the events known before the evaluated part.

    Rated data: the MovieLens way; otherwise the sequence way (each user's last known event and a
    sampled negative). The early-stopping examples are the latest ``early_stopping_share`` by
    target time, so no training prompt shows one of their targets.
    """
    known = context.known
    dataset = context.dataset
    if RATING in known.columns:
        examples = rating_examples(known, item_titles(dataset), prompt_domain(dataset), config.history_len,
                                   evidence=config.evidence, with_stats=config.prior != "none")
    else:
        _need_ratings(config.evidence, context, config.prior)
        only_known = Dataset(dataset.name, known, dataset.items, domain=dataset.domain, source=dataset.source,
                             timestamps_are_order=dataset.timestamps_are_order)
        examples = sequence_examples(only_known, history_len=config.history_len, seed=config.seed)
    if not examples:
        raise ValueError(f"tallrec: no training example can be built from the {len(known)} events known before "
                         f"the {context.part} part (each needs a titled target and history)")
    if config.early_stopping_share <= 0:
        return examples, []
    share = config.early_stopping_share
    parts = split_examples(examples, ratios=(1.0 - share, share, 0.0), by="time")
    return parts["train"], parts["valid"]


def _need_ratings(evidence: str, context: BuildContext, prior: str = "none") -> None:
    if evidence != "none" and RATING not in context.known.columns:
        raise ValueError(f"tallrec: evidence {evidence!r} speaks of ratings, but the known events of "
                         f"{context.dataset.source or context.dataset.name} have no '{RATING}' column; use "
                         f"evidence=none")
    if prior != "none" and RATING not in context.known.columns:
        raise ValueError(f"tallrec: prior {prior!r} is fitted on rating statistics, but the known events of "
                         f"{context.dataset.source or context.dataset.name} have no '{RATING}' column; use "
                         f"prior=none")


def _saved_meta(folder: str | os.PathLike) -> dict:
    import json
    from pathlib import Path

    from llmrec.tallrec.guards import TALLREC_META

    return json.loads((Path(folder) / TALLREC_META).read_text())


def saved_evidence(folder: str | os.PathLike) -> str:
    """The evidence mode an adapter was trained with (its tallrec.json), "none" for older adapters."""
    return check_evidence(str(_saved_meta(folder).get("config", {}).get("evidence", "none")))


def saved_prior(folder: str | os.PathLike) -> CollaborativePrior | None:
    """The collaborative prior an adapter was trained with (its tallrec.json), None without one."""
    values = _saved_meta(folder).get("prior")
    return None if values is None else CollaborativePrior.from_dict(values, source=f"{folder}/tallrec.json")


def build_tallrec(context: BuildContext, config: TallRecConfig) -> TallRecScorer:
    from llmrec.tallrec.train import cpu_autocast, load_adapter, load_base, save_adapter, train_tallrec

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub from a run
    titles = item_titles(context.dataset)
    domain = prompt_domain(context.dataset)
    saved = context.load_dir("tallrec")
    # A loaded adapter is scored with the prompts it was trained on, whatever the option says.
    evidence = saved_evidence(saved) if saved else config.evidence
    if saved and evidence != config.evidence and config.evidence != "none":
        logger.warning("tallrec: the adapter in %s was trained with evidence=%s; scoring with it, not %s", saved,
                       evidence, config.evidence)
    # A loaded adapter keeps the prior it was trained with; otherwise one is fitted on the known examples.
    prior_mode = ("evidence" if saved_prior(saved) is not None else "none") if saved else config.prior
    _need_ratings(evidence, context, prior_mode)
    # Item statistics for scored pairs: the events known before the evaluated part, nothing later.
    items = (ItemEvidence(context.known, LIKE_THRESHOLD) if evidence in ("item", "both") or prior_mode != "none"
             else None)
    scale = rating_scale(context.known)
    prior = saved_prior(saved) if saved else None
    train: list[InstructionExample] = []
    stop: list[InstructionExample] = []
    if not saved and prior_mode != "none":
        train, stop = known_examples(context, config)
        prior = fit_prior(train)  # all training-part examples (like the item prior: every known rating)
        train, stop = with_offsets(train, prior), with_offsets(stop, prior)

    def scorer(yes_no: YesNoScorer | None, **info) -> TallRecScorer:
        if yes_no is not None:
            yes_no.show_progress = context.show_progress
        if prior is not None:
            info["prior"] = prior.to_dict()
        return TallRecScorer(yes_no, titles, domain, config.history_len, info={**info, "evidence": evidence},
                             evidence=evidence, item_evidence=items, scale=scale, prior=prior,
                             known=context.known)

    if saved:
        return scorer(load_adapter(saved, device=config.device, batch_size=config.score_batch_size),
                      mode="loaded", adapter=str(saved))
    if config.prior_only:
        return scorer(None, mode="prior only")
    model, tokenizer = load_base(config)
    if config.zero_shot:
        return scorer(YesNoScorer(model.eval(), tokenizer, template=config.template, max_length=config.max_length,
                                  batch_size=config.score_batch_size, autocast_bf16=cpu_autocast(config)),
                      mode="zero-shot", model=config.model)
    if not train:
        train, stop = known_examples(context, config)
    logger.info("tallrec: %d training and %d early-stopping examples from %d known events", len(train), len(stop),
                len(context.known))
    result = train_tallrec(config, train, stop, model=model, tokenizer=tokenizer)
    from accelerate import PartialState

    # Under `accelerate launch` every process trains; only the main one writes and checks the adapter.
    if PartialState().is_main_process:
        save_adapter(result, config.output_dir, stop or train,
                     extra=None if prior is None else {"prior": prior.to_dict()})
    return scorer(result.scorer, mode="trained", adapter=config.output_dir, model=config.model,
                  train_examples=result.train_examples, early_stopping_examples=len(stop), steps=result.steps,
                  best_valid_auc=result.best_valid_auc, train_auc=result.train_auc,
                  train_seconds=round(result.seconds, 1), real_tokens=result.real_tokens,
                  tokens_per_second=round(result.tokens_per_second, 1))


register_scorer("tallrec", build_tallrec, TallRecConfig,
                "TALLRec: P(Yes) of a causal LM asked 'will the user like this item?' (LoRA-tuned on the known "
                "events, loaded with --load tallrec=FOLDER, or zero_shot)",
                trains=True, uses_llm=True, tasks=("pointwise", "ranking"))
