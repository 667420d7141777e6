"""Registers ``ltr``: a learned hybrid of registered scorers, fitted on training users' next items.

Building (training):
1. the known events are split once more (:func:`llmrec.ltr.data.holdout_last_split`): each user's last
   known event is a fitting target; the feature scorers are built (trained) on the events before;
2. seeded fitting lists (target + sampled negatives, the evaluator's own sampler) are scored by every
   feature scorer; the ranking model learns from them (held-out fitting users stop the boosting);
3. with ``refit`` the feature scorers are rebuilt on every known event for scoring.
No event of the evaluated part reaches any of this: the evaluated part's targets are never read.
A user's ``--load NAME=FOLDER`` is only used for the final scorers (a model trained on all known
events has seen the fitting targets, so it cannot produce honest fitting features).

``--load ltr=FOLDER`` reads a saved ranking model (and the trained feature scorers saved beside it).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from llmrec.llm.lora import TRAIN_USERS_FILE
from llmrec.ltr.config import LTRConfig
from llmrec.ltr.data import fitting_lists, holdout_last_split
from llmrec.ltr.model import FitData, LTRScorer, Ranker, compute_features, feature_names
from llmrec.registry import BuildContext, get_spec, register_scorer
from llmrec.scoring import Scorer
from llmrec.utils.io import write_json

logger = logging.getLogger(__name__)
STAMP = "ltr_stage.json"


def _stage_stamp(context: BuildContext) -> dict:
    """What a saved feature model was trained on: reused only for the same data, split and part."""
    return {"dataset": context.dataset.name, "split": context.split.name, "part": context.part,
            "known_events": int(len(context.known))}


def _saved_model(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.safetensors"))


Wrap = Callable[[Scorer, str], Scorer]
"""``wrap(scorer, stage)``: what a caller may put around each built feature scorer (e.g. a score cache)."""


def build_features(context: BuildContext, names: list[str], stage_dir: Path, user_load: dict[str, str],
                   wrap: Wrap | None = None) -> list[Scorer]:
    """Build each feature scorer for ``context``; trained ones go to (or are reloaded from) ``stage_dir/NAME``."""
    scorers = []
    stamp = _stage_stamp(context)
    for name in names:
        spec = get_spec(name)
        options: dict = {}
        load = dict(user_load)
        if spec.trains and name not in user_load:
            folder = stage_dir / name
            stamp_file = folder / STAMP
            if _saved_model(folder):
                saved = json.loads(stamp_file.read_text()) if stamp_file.is_file() else None
                if saved != stamp:
                    raise ValueError(f"{folder} holds a {name} model trained on {saved}, not on {stamp}: remove it "
                                     f"or choose another ltr output_dir")
                load[name] = str(folder)
            elif spec.config_cls is not None and "output_dir" in {f.name for f in dataclasses.fields(spec.config_cls)}:
                options["output_dir"] = str(folder)
        stage = dataclasses.replace(context, load=load)
        scorer = stage.build(name, **options)
        if spec.trains and name not in user_load and _saved_model(stage_dir / name):
            write_json(stage_dir / name / STAMP, stamp)
        scorers.append(wrap(scorer, stage_dir.name) if wrap is not None else scorer)
    return scorers


def _first_stage(context: BuildContext, config: LTRConfig, built: list[Scorer], stage_dir: Path,
                 user_load: dict[str, str], wrap: Wrap | None) -> Scorer | None:
    """The first-stage scorer of full ranking: the built feature scorer of that name, else built now."""
    if not config.first_stage:
        return None
    if config.first_stage in config.features:
        return built[config.features.index(config.first_stage)]
    return build_features(context, [config.first_stage], stage_dir, user_load, wrap)[0]


def loaded_for_fitting(context: BuildContext, config: LTRConfig) -> tuple[dict[str, str], set[str]]:
    """``fit_load``: the saved models that also score the fitting lists, and the users they trained on
    (left out of those lists, so no fitting target was a training label of a feature model)."""
    folders: dict[str, str] = {}
    users: set[str] = set()
    for name in config.fit_load:
        if name not in config.features:
            raise ValueError(f"LTRConfig.fit_load names {name!r}, which is not among the features {config.features}")
        folder = context.load_dir(name)
        if not folder:
            raise ValueError(f"LTRConfig.fit_load names {name!r} but no saved model is loaded for it "
                             f"(--load {name}=FOLDER)")
        listed = Path(folder) / TRAIN_USERS_FILE
        if not listed.is_file():
            raise ValueError(f"{folder}: no {TRAIN_USERS_FILE}, so the fitting lists cannot leave out the users this "
                             f"{name} model trained on; without it, drop {name} from fit_load")
        trained = json.loads(listed.read_text())
        if not isinstance(trained, list):
            raise ValueError(f"{listed}: expected a JSON list of user ids, got {type(trained).__name__}")
        folders[name] = folder
        users |= {str(u) for u in trained}
    return folders, users


def train_ltr(context: BuildContext, config: LTRConfig, wrap: Wrap | None = None) -> LTRScorer:
    out = Path(config.output_dir)
    inner = holdout_last_split(context.split, context.part)
    fit_context = BuildContext(inner, part="test", seed=context.seed, show_progress=context.show_progress,
                               options=context.options)
    fit_load, exclude = loaded_for_fitting(context, config)
    fit_scorers = build_features(fit_context, config.features, out / "fit", fit_load, wrap)
    fit_first = _first_stage(fit_context, config, fit_scorers, out / "fit", fit_load, wrap)
    lists = fitting_lists(inner, config.fit_users, config.num_negatives, config.seed, fit_first, config.rerank_top,
                          exclude_users=exclude)
    logger.info("ltr: %d fitting lists of %d candidates from the known events' last items", len(lists),
                len(lists.candidates[0]))
    features = compute_features(fit_scorers, lists.histories, lists.candidates, show_progress=context.show_progress)
    data = FitData(features, lists.labels, feature_names(config.features))
    start = time.perf_counter()
    ranker = Ranker(config.model, data.names).fit(data, config)
    fit_seconds = time.perf_counter() - start
    if config.refit:
        scorers = build_features(context, config.features, out / "final", dict(context.load), wrap)
        first = _first_stage(context, config, scorers, out / "final", dict(context.load), wrap)
    else:
        scorers, first = fit_scorers, fit_first
    report = {"fit_users": len(lists), "fit_users_of": int(inner.held("test")["user_id"].nunique()),
              "fit_lists_drawn": config.fit_users, "features": list(config.features), "refit": config.refit,
              "first_stage": config.first_stage or None, "fit_load": list(config.fit_load),
              "fit_users_left_out": len(exclude), "ranker_fit_seconds": round(fit_seconds, 3)}
    scorer = LTRScorer(scorers, ranker, config.features, name=config.name, fit_data=data, report=report,
                       first_stage=first, rerank_top=config.rerank_top)
    ranker.save(out)
    write_json(out / "ltr_config.json", dataclasses.asdict(config))
    write_json(out / "ltr_report.json", {**report, "importances": ranker.importances(), "ranker": ranker.report})
    return scorer


def load_ltr(context: BuildContext, folder: str, config: LTRConfig) -> LTRScorer:
    ranker = Ranker.load(folder)
    saved = json.loads((Path(folder) / "ltr_config.json").read_text())
    features = saved["features"]
    if feature_names(features) != ranker.names:
        raise ValueError(f"{folder}: ltr_config.json features {features} do not match the saved model's")
    stage = "final" if saved.get("refit", True) else "fit"
    user_load = dict(context.load) if stage == "final" else {}
    user_load.pop("ltr", None)
    stage_context = context if stage == "final" else BuildContext(
        holdout_last_split(context.split, context.part), part="test", seed=context.seed,
        show_progress=context.show_progress, options=context.options)
    scorers = build_features(stage_context, features, Path(folder) / stage, user_load)
    saved_config = dataclasses.replace(config, features=features, first_stage=saved.get("first_stage", ""),
                                       rerank_top=saved.get("rerank_top", config.rerank_top))
    first = _first_stage(stage_context, saved_config, scorers, Path(folder) / stage, user_load, None)
    return LTRScorer(scorers, ranker, features, name=config.name, report={"loaded": folder}, first_stage=first,
                     rerank_top=saved_config.rerank_top)


def build_ltr(context: BuildContext, config: LTRConfig) -> LTRScorer:
    saved = context.load_dir("ltr")
    if saved:
        return load_ltr(context, saved, config)
    return train_ltr(context, config)


register_scorer("ltr", build_ltr, LTRConfig,
                "learned hybrid: LambdaMART (or logistic) over every feature scorer's score, rank and z-score "
                "(LLM included), fitted on training users' last known items",
                trains=True, uses_llm=True, composes=True)
