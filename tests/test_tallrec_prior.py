"""TALLRec's collaborative prior (``prior=evidence``): fitted on known examples' statistics from
strictly earlier events, added to the answer's logit, trained with the same offset loss the scorer
computes, saved and reloaded with the adapter, and scored alone for the ablation. Tiny models."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

# The same toy data, options and tiny-model fixtures as the scorer tests: pytest registers imported
# fixtures, and their use as test arguments is what ruff's F811 reports here.
# ruff: noqa: F811
from test_tallrec_scorer import _options, model_dir, split, synthetic, tokenizer  # noqa: F401

from llmrec.data.splits import make_split
from llmrec.llm.testing import tiny_llama
from llmrec.registry import BuildContext, build_scorer
from llmrec.scoring import History
from llmrec.tallrec.config import TallRecConfig
from llmrec.tallrec.data import item_titles, rating_examples
from llmrec.tallrec.evidence import ItemEvidence, KnownResiduals, Stats, residuals_before, user_before
from llmrec.tallrec.model import YesNoScorer
from llmrec.tallrec.prior import FEATURES, CollaborativePrior, fit_prior, with_offsets
from llmrec.tallrec.scorer import known_examples
from llmrec.tallrec.train import encoded_dataset, offset_trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_prior_learns_that_liked_items_get_liked_and_round_trips():
    rng = np.random.default_rng(0)
    stats, labels = [], []
    for _ in range(400):
        share = float(rng.uniform(0.05, 0.95))
        item = Stats(int(rng.integers(5, 50)), 1 + 4 * share, share, 0.5)
        stats.append((item, Stats(10, 3.5, 0.6)))
        labels.append(int(rng.random() < share))
    prior = CollaborativePrior.fit(stats, labels)
    assert prior.coef[FEATURES.index("item share liked (logit, shrunk)")] > 0
    liked, disliked = Stats(40, 4.6, 0.9, 0.1), Stats(40, 1.6, 0.1, 0.1)
    assert prior.logit(liked, None) > prior.logit(disliked, None)
    # A cold item or user sits at the global values; the saved form reproduces every logit.
    cold = prior.features(None, None)
    assert cold[:4] == pytest.approx([math.log(prior.like_rate / (1 - prior.like_rate))] * 2 + [0.0, 0.0])
    again = CollaborativePrior.from_dict(prior.to_dict())
    assert again.logit(liked, Stats(3, 2.0, 0.0)) == pytest.approx(prior.logit(liked, Stats(3, 2.0, 0.0)))
    with pytest.raises(ValueError, match="features"):
        CollaborativePrior.from_dict({**prior.to_dict(), "features": ["something else"]})
    with pytest.raises(ValueError, match="both answers"):
        CollaborativePrior.fit(stats[:3], [1, 1, 1])


def test_user_residuals_compare_each_rating_with_its_items_earlier_mean():
    events = pd.DataFrame({"user_id": ["a", "b", "c", "a", "c"], "item_id": ["1", "1", "1", "2", "2"],
                           "timestamp": [1, 2, 2, 3, 4], "rating": [5.0, 3.0, 1.0, 4.0, 2.0]})
    got = residuals_before(events)
    # Item 1: first rating has no earlier mean; b and c (same second) both compare with a's 5.0.
    assert np.isnan(got[0]) and got[1] == -2.0 and got[2] == -4.0 and np.isnan(got[3]) and got[4] == -2.0
    habits = user_before(np.array([1.0, 2.0]), residuals=got[[2, 4]])  # user c's two ratings, in order
    assert habits[0] is None and (habits[1].residual, habits[1].residual_count) == (-4.0, 1)
    known = KnownResiduals(events, ItemEvidence(events))
    # A known event keeps its residual at the time; an unknown one is compared with the known mean (item 1: 3.0).
    assert known.of("c", ["1", "2"], [1.0, 2.0]) == [-4.0, -2.0]
    assert known.of("d", ["1", "9"], [4.0, 3.0]) == [1.0, None]  # d's events are not known; 9 is unrated
    assert known.of("a", ["1"], [5.0]) == [None]  # item 1 had no earlier rating when a rated it


def test_example_statistics_come_from_strictly_earlier_events_only():
    dataset = synthetic()
    events = dataset.interactions
    titles = item_titles(dataset)
    before = rating_examples(events, titles, "movie", history_len=5, with_stats=True)
    cut = int(np.median(events["timestamp"]))
    # Every rating at or after the cut changes: the statistics of examples before it must not.
    moved = events.assign(rating=np.where(events["timestamp"] >= cut, 6 - events["rating"], events["rating"]))
    after = rating_examples(moved, titles, "movie", history_len=5, with_stats=True)
    early = [(a, b) for a, b in zip(before, after, strict=True) if a.timestamp < cut]
    assert early and all(a.stats == b.stats for a, b in early)
    assert any(a.stats != b.stats for a, b in zip(before, after, strict=True) if a.timestamp > cut)
    # The TALLRec JSON stays TALLRec's: neither the statistics nor an offset are written.
    assert {"stats", "offset"}.isdisjoint(before[0].to_json())


def test_offset_loss_is_the_log_loss_the_scorer_computes(tokenizer):
    from trl import SFTConfig

    dataset = synthetic()
    examples = rating_examples(dataset.interactions, item_titles(dataset), "movie", history_len=5, with_stats=True)
    prior = fit_prior(examples)
    batch_examples = with_offsets(examples[:6], prior)
    assert any(abs(e.offset) > 1e-3 for e in batch_examples)
    model = tiny_llama(len(tokenizer))
    yes_no = YesNoScorer(model, tokenizer, template="alpaca")
    args = SFTConfig(output_dir="/tmp/llmrec-offset-test", report_to="none", use_cpu=True, bf16=False,
                     per_device_train_batch_size=6, max_steps=1, completion_only_loss=True)
    trainer = offset_trainer(yes_no.encoder.yes_id, yes_no.encoder.no_id, model=model, args=args,
                             train_dataset=encoded_dataset(yes_no.encoder, batch_examples, with_offsets=True),
                             processing_class=tokenizer)
    batch = trainer.data_collator([dict(row) for row in trainer.train_dataset])
    model.eval()
    with torch.no_grad():
        loss = float(trainer.compute_loss(model, dict(batch)))
    p = yes_no.p_yes(batch_examples)
    labels = np.array([e.label for e in batch_examples])
    expected = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    assert loss == pytest.approx(expected, rel=1e-4)


def test_builder_with_prior_trains_saves_reloads_and_scores_the_prior_alone(split, model_dir, tmp_path):
    context = BuildContext(split, part="test", show_progress=False)
    trained = build_scorer("tallrec", context, **_options(model_dir, tmp_path, prior="evidence"))
    info = trained.diagnostics()
    assert info["mode"] == "trained" and info["prior"]["features"] == list(FEATURES)
    histories = [History(["1", "2", "3"], [5.0, 1.0, 4.0]), History(["7", "8"], [2.0, 1.0])]
    cands = [["4", "9"], ["4", "9"]]
    loaded = build_scorer("tallrec", BuildContext(split, load={"tallrec": str(tmp_path / "adapter")},
                                                  show_progress=False), model=str(model_dir), device="cpu")
    np.testing.assert_allclose(loaded.score(histories, cands), trained.score(histories, cands), atol=1e-5)
    assert loaded.diagnostics()["prior"] == info["prior"]

    alone = build_scorer("tallrec", context, prior="evidence", prior_only=True)
    assert alone.yes_no is None and alone.diagnostics()["mode"] == "prior only"
    prior = CollaborativePrior.from_dict(info["prior"])
    train, _ = known_examples(context, TallRecConfig(prior="evidence"))
    assert prior.to_dict() == fit_prior(train).to_dict()  # fitted on the known training part, deterministically
    got = alone.score(histories, cands)
    # The user's statistics come from the history given; the item's from the known events.
    user = Stats(2, 1.5, 0.0)
    item = alone.item_evidence.get("9")
    assert got[1, 1] == pytest.approx(1 / (1 + math.exp(-prior.logit(item, user))))


def test_evaluated_ratings_never_reach_the_prior(split):
    """Flip every rating of the evaluated (test) part: the prior, fitted on known events, and its
    scores must not change; flipping known ratings must change them (the test can fail)."""
    dataset = split.dataset
    test_keys = set(zip(split.test["user_id"], split.test["item_id"], strict=True))
    events = dataset.interactions
    in_test = np.array([(u, i) in test_keys for u, i in zip(events["user_id"], events["item_id"], strict=True)])

    def scores(flip) -> np.ndarray:
        changed = events.assign(rating=np.where(flip, 6 - events["rating"], events["rating"]))
        moved = make_split(type(dataset)(dataset.name, changed, dataset.items, domain=dataset.domain), "temporal",
                           test_ratio=0.25, valid_ratio=0.1)
        alone = build_scorer("tallrec", BuildContext(moved, part="test", show_progress=False), prior="evidence",
                             prior_only=True)
        return alone.score([History(["1", "2", "3"], [5.0, 1.0, 4.0])], [["4", "9", "12", "20"]])

    base = scores(np.zeros(len(events), dtype=bool))
    np.testing.assert_allclose(scores(in_test), base)
    assert not np.allclose(scores(~in_test), base)


def test_prior_options_are_checked():
    with pytest.raises(ValueError, match="prior must be one of"):
        TallRecConfig(prior="bias")
    with pytest.raises(ValueError, match="prior_only needs a prior"):
        TallRecConfig(prior_only=True)
    with pytest.raises(ValueError, match="answer_only_loss"):
        TallRecConfig(prior="evidence", answer_only_loss=False)
