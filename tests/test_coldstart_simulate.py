"""LLM-simulated interactions for cold items: leakage, selection, cache and resumption, augmenting, files.

A tiny random HF model (``tiny_lm``) answers for real through ``next_token_logits``; a hashing
bag-of-words encoder makes the prefilter fast and exactly reproducible in the test.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrec.coldstart.files import read_simulated, write_simulated
from llmrec.coldstart.simulate import (
    COLUMNS,
    SimulateConfig,
    SimulateResult,
    augment_split,
    known_events,
    simulate_interactions,
)
from llmrec.data.schema import ITEM, LIKE_THRESHOLD, RATING, TIME, USER, Dataset, is_liked
from llmrec.data.splits import Split, temporal_split
from llmrec.embed.files import render_item_texts
from llmrec.errors import DataFormatError
from llmrec.registry import BuildContext, build_scorer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DAY = 86_400
START = 880_000_000
GENRES = ["Action", "Comedy", "Drama"]


def new_releases(seed: int = 0) -> Dataset:
    """24 users with a favourite genre watch 14 films each over 14 days; the 8 films released in
    the last days are watched only after the 70% time cut, so they are the cold items."""
    rng = np.random.default_rng(seed)
    n_old, n_new, n_users = 30, 8, 24
    item_genre = rng.integers(0, 3, n_old + n_new)
    user_genre = rng.integers(0, 3, n_users)
    rows = []
    for u in range(n_users):
        seen: set[int] = set()
        for step in range(14):
            pool = np.arange(n_old if step < 10 else n_old + n_new)
            liked = pool[item_genre[pool] == user_genre[u]]
            choices = [i for i in (liked if rng.random() < 0.8 else pool) if i not in seen] or \
                [i for i in pool if i not in seen]
            item = int(rng.choice(choices))
            seen.add(item)
            rows.append((f"u{u}", str(item), START + step * DAY + u * 60, float(rng.integers(1, 6))))
    inter = pd.DataFrame(rows, columns=[USER, ITEM, TIME, RATING])
    items = pd.DataFrame({ITEM: [str(i) for i in range(n_old + n_new)],
                          "title": [f"Film {i} ({1990 + i % 8})" for i in range(n_old + n_new)],
                          "genres": [GENRES[g] for g in item_genre]})
    return Dataset("releases", inter, items, domain="movie")


class HashEncoder:
    """Bag of words hashed into 32 dimensions: items sharing a genre word point the same way."""

    model_id, dim = "hash-bow", 32

    def encode(self, texts, batch_size=64, show_progress=True):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in str(text).lower().replace(".", " ").split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


class Recording:
    """Wraps a LanguageModel: records every scored prompt; can crash on call ``fail_on`` (1-based)
    or answer NaN / inf logits for prompts naming ``poison``."""

    def __init__(self, inner, fail_on: int | None = None, poison: str | None = None, bad: float = math.nan):
        self.inner, self.fail_on, self.poison, self.bad = inner, fail_on, poison, bad
        self.name, self.usage, self.model = inner.name, inner.usage, inner.model
        self.has_chat_template = inner.has_chat_template
        self.prompts: list = []

    def next_token_logits(self, prompt, options):
        if self.fail_on is not None and len(self.prompts) + 1 >= self.fail_on:
            raise RuntimeError("simulated crash mid-run")
        self.prompts.append(prompt)
        if self.poison is not None and self.poison in text_of(prompt):
            return np.array([self.bad, 0.0])
        return self.inner.next_token_logits(prompt, options)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def text_of(prompt) -> str:
    return prompt if isinstance(prompt, str) else prompt[-1]["content"]


def history_of(prompt) -> tuple[str, ...]:
    return tuple(line[2:] for line in text_of(prompt).splitlines() if line.startswith("- "))


@pytest.fixture(scope="module")
def split() -> Split:
    return temporal_split(new_releases(), test_ratio=0.3)


@pytest.fixture(scope="module")
def lm():
    from llmrec.llm.testing import tiny_lm

    return tiny_lm(chat=True)


def cfg(tmp_path: Path, **kw) -> SimulateConfig:
    return SimulateConfig(**{"cache_dir": str(tmp_path / "cache"), "prefilter_users": 6, "keep_users": 3,
                             "history_items": 4, "batch_size": 4, "show_progress": False, **kw})


def run(split, tmp_path, llm, **kw) -> SimulateResult:
    return simulate_interactions(split, cfg(tmp_path, **kw), llm=llm, encoder=HashEncoder())


def test_config_has_help_and_validates() -> None:
    assert all(f.metadata.get("help") for f in dataclasses.fields(SimulateConfig))
    for bad in ({"keep_users": 0}, {"keep_users": 30, "prefilter_users": 20}, {"min_p_yes": 1.5}, {"items": "all"}):
        with pytest.raises(ValueError):
            SimulateConfig(**bad)


def test_the_cold_items_are_the_new_releases(split) -> None:
    cold = split.unseen_items()
    assert set(split.cold_items("test")) <= set(cold) and {str(i) for i in range(30, 38)} <= set(cold)
    assert not set(cold) & set(split.known("test")[ITEM])


def test_events_are_simulated_top_p_yes_prefiltered_users_after_the_known_period(split, lm, tmp_path) -> None:
    llm = Recording(lm)
    result = run(split, tmp_path, llm)
    events, known = result.events, split.known("test")
    cold = split.unseen_items()
    assert list(events.columns) == list(COLUMNS) and len(events) > 0
    assert events["simulated"].all() and set(events[ITEM]) <= set(cold)
    assert (events[TIME] == known[TIME].max() + 1).all() and (events[TIME] < split.test[TIME].min() + 1).all()
    assert is_liked(events[RATING]).all() and (events[RATING] == 5.0).all() and LIKE_THRESHOLD < 5.0
    assert (events.groupby(ITEM).size() <= 3).all() and not events.duplicated([USER, ITEM]).any()
    assert result.items == len(cold) and result.llm_calls == len(llm.prompts) == 6 * len(cold)
    assert result.cache_hits == 0 and result.rejected == 0
    # The prefilter, recomputed here: user = normalised mean of known item vectors, top 6 by cosine.
    enc, texts = HashEncoder(), render_item_texts(split.dataset)
    assert texts["0"] == f"{split.dataset.items.loc['0', 'title']}. Genres: {split.dataset.items.loc['0', 'genres']}"
    histories = known_events(split).groupby(USER)[ITEM].apply(list)
    means = np.stack([enc.encode([texts[i] for i in h]).mean(axis=0) for h in histories])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    for item, group in events.groupby(ITEM):
        cosine = means @ enc.encode([texts[item]])[0]
        top = list(histories.index[np.argsort(-cosine, kind="stable")[:6]])
        assert set(group[USER]) <= set(top)
        assert [top.index(u) + 1 for u in group[USER]] == group["prefilter_rank"].tolist()
        assert group["p_yes"].is_monotonic_decreasing and group["p_yes"].between(0, 1).all()
    # Kept = the top P(Yes) among all prefiltered (from the cache: no new call).
    everyone = run(split, tmp_path, Recording(lm), keep_users=6)
    assert everyone.llm_calls == 0 and everyone.cache_hits == result.llm_calls
    top3 = everyone.events.groupby(ITEM, sort=False).head(3).reset_index(drop=True)
    pd.testing.assert_frame_equal(top3, events)
    strict = run(split, tmp_path, Recording(lm), min_p_yes=float(events["p_yes"].median()))
    assert 0 < len(strict.events) < len(events) and (strict.events["p_yes"] >= events["p_yes"].median()).all()
    assert result.summary()["calls_per_item"] == 6.0 and result.summary()["events"] == len(events)


def test_no_test_event_is_used(split, lm, tmp_path) -> None:
    llm = Recording(lm)
    base = run(split, tmp_path / "a", llm).events
    rng = np.random.default_rng(3)
    shuffled = split.test.copy()
    shuffled[ITEM] = rng.permutation(shuffled[ITEM].to_numpy())
    shuffled[USER] = rng.permutation(shuffled[USER].to_numpy())
    poisoned = pd.concat([split.test, split.test.assign(**{ITEM: "0", TIME: split.test[TIME] + 5})])
    for k, test in enumerate((shuffled, split.test.iloc[:0], poisoned)):
        other = dataclasses.replace(split, test=test.reset_index(drop=True))
        other_llm = Recording(lm)
        pd.testing.assert_frame_equal(run(other, tmp_path / str(k), other_llm).events, base)
        assert sorted(map(str, other_llm.prompts)) == sorted(map(str, llm.prompts))
    # Every prompt's history is exactly a user's latest known titles: nothing from the test part.
    titles = split.dataset.items["title"]
    known = known_events(split).groupby(USER)[ITEM].apply(lambda s: tuple(titles[list(s)[-4:]]))
    assert {history_of(p) for p in llm.prompts} <= set(known)
    test_only = set(split.test[ITEM]) - set(split.known("test")[ITEM])
    assert test_only and not {titles[i] for i in test_only} & {t for p in llm.prompts for t in history_of(p)}
    for user, group in split.test.groupby(USER):  # a user's own test items never show in prompts about them
        mine = {titles[i] for i in set(group[ITEM]) - set(split.known("test").query(f"{USER} == @user")[ITEM])}
        assert not mine & set(known[user])


def test_a_second_run_makes_no_call_and_a_crashed_run_resumes(split, lm, tmp_path) -> None:
    reference = run(split, tmp_path / "ref", Recording(lm))
    crashing = Recording(lm, fail_on=8)  # item 1: batches of 4 + 2 committed; item 2's first batch dies
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(split, tmp_path / "run", crashing)
    resumed = run(split, tmp_path / "run", Recording(lm))
    assert resumed.cache_hits == 6 and resumed.llm_calls == reference.llm_calls - 6
    pd.testing.assert_frame_equal(resumed.events, reference.events)
    again_llm = Recording(lm)
    again = run(split, tmp_path / "run", again_llm)
    assert again.llm_calls == 0 and again_llm.prompts == [] and again.cache_hits == reference.llm_calls
    pd.testing.assert_frame_equal(again.events, reference.events)
    # Another prompt template is another cache key: scored again.
    prompt = tmp_path / "other.j2"
    prompt.write_text("{{ domain }}: {{ history | join(', ') }} -> {{ item }}? Yes or No.")
    assert run(split, tmp_path / "run", Recording(lm), prompt=str(prompt)).llm_calls == reference.llm_calls


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_logits_are_rejected_not_kept(split, lm, tmp_path, bad) -> None:
    first = split.unseen_items()[0]
    title = split.dataset.items.loc[first, "title"]
    result = run(split, tmp_path, Recording(lm, poison=f"arrived: {title}", bad=bad))
    assert result.rejected == 6 and first not in set(result.events[ITEM]) and len(result.events)
    again = run(split, tmp_path, Recording(lm))  # cached as rejected too
    assert again.llm_calls == 0 and again.rejected == 6


def test_augment_split_lets_itemcf_score_cold_items(split, lm, tmp_path) -> None:
    events = run(split, tmp_path, Recording(lm)).events
    train_before = split.train.copy()
    augmented = augment_split(split, events)
    pd.testing.assert_frame_equal(split.train, train_before)  # the given split is not changed
    assert "simulated" not in split.train.columns
    assert len(augmented.train) == len(split.train) + len(events)
    assert augmented.train["simulated"].dtype == bool and augmented.train["simulated"].sum() == len(events)
    assert augmented.test is split.test and augmented.valid is split.valid
    sim = augmented.train[augmented.train["simulated"]]
    assert set(zip(sim[USER], sim[ITEM])) == set(zip(events[USER], events[ITEM]))
    last_seq = split.train.groupby(USER)["event_seq"].max()
    assert (sim["event_seq"].to_numpy() > last_seq[sim[USER]].to_numpy()).all()
    cold = sorted(set(events[ITEM]))
    cases = split.eval_set("test")  # evaluation keeps the original split
    plain = build_scorer("itemcf", BuildContext(split, "test")).score(cases.histories, cold)
    retrained = build_scorer("itemcf", BuildContext(augmented, "test")).score(cases.histories, cold)
    assert np.ptp(plain, axis=0).max() == 0.0  # without simulated events a cold item scores the same for all
    assert np.ptp(retrained, axis=0).max() > 0.0
    with pytest.raises(ValueError, match="not in releases"):
        augment_split(split, events.assign(**{ITEM: "nope"}))
    with pytest.raises(ValueError, match="repeat known"):
        augment_split(split, split.train.head(2).assign(simulated=True))


def test_write_read_round_trip_and_bad_rows(split, lm, tmp_path) -> None:
    result = run(split, tmp_path, Recording(lm))
    path = write_simulated(tmp_path / "sim.csv", result)
    pd.testing.assert_frame_equal(read_simulated(path, split), result.events)
    pd.testing.assert_frame_equal(read_simulated(write_simulated(tmp_path / "e.csv", result.events)), result.events)
    lines = path.read_text().splitlines()
    with pytest.raises(ValueError, match=r"\.csv"):
        write_simulated(tmp_path / "sim.json", result)

    def broken(index: int, column: str, value: str) -> Path:
        rows = [line.split(",") for line in lines]
        rows[index][list(COLUMNS).index(column)] = value
        bad = tmp_path / f"bad-{column}.csv"
        bad.write_text("\n".join(",".join(r) for r in rows) + "\n")
        return bad

    with pytest.raises(DataFormatError, match=r"line 3, field 'p_yes'.*probability.*'high'"):
        read_simulated(broken(2, "p_yes", "high"))
    with pytest.raises(DataFormatError, match=r"line 2, field 'item_id'.*catalogue"):
        read_simulated(broken(1, ITEM, "999"), split)
    read_simulated(broken(1, ITEM, "999"))  # without a split any id is accepted
    with pytest.raises(DataFormatError, match=r"line 4, field 'timestamp'"):
        read_simulated(broken(3, TIME, "soon"))
    with pytest.raises(DataFormatError, match=r"line 1, field 'p_yes'"):
        read_simulated(broken(0, "p_yes", "prob"))
    with pytest.raises(DataFormatError, match="no such file"):
        read_simulated(tmp_path / "absent.csv")


def test_the_registered_embedding_scorer_and_a_base_model(split, tiny_sentence_model, tmp_path) -> None:
    from llmrec.llm.testing import tiny_lm

    llm = Recording(tiny_lm(chat=False, seed=1))
    cold = split.unseen_items()[:2]
    config = cfg(tmp_path, embedding={"model": str(tiny_sentence_model), "cache_dir": None})
    result = simulate_interactions(split, config, llm=llm, item_ids=cold)
    assert result.items == 2 and result.llm_calls == 12 and len(result.events) == 6
    assert all(isinstance(p, str) and p.endswith("Answer: ") for p in llm.prompts)
    assert set(result.events[ITEM]) == set(cold)


@pytest.mark.slow
def test_smollm2_scores_cold_items(split, tmp_path) -> None:
    from llmrec.llm.registry import PACKAGED_MODELS

    if not PACKAGED_MODELS["smollm2-135m"].is_installed():
        pytest.skip(PACKAGED_MODELS["smollm2-135m"].pip_install)
    config = cfg(tmp_path, prefilter_users=4, keep_users=2)
    result = simulate_interactions(split, config, item_ids=split.unseen_items()[:2], encoder=HashEncoder())
    assert result.llm_calls == 8 and len(result.events) == 4 and result.load_seconds > 0
    assert result.events["p_yes"].between(0, 1).all() and result.events["p_yes"].nunique() > 1
    again = simulate_interactions(split, config, item_ids=split.unseen_items()[:2], encoder=HashEncoder())
    assert again.llm_calls == 0 and again.load_seconds == 0
    pd.testing.assert_frame_equal(again.events, result.events)
