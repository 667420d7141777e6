"""Leakage tests: no test interaction reaches train, a history, or a vocabulary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrec.data.schema import ITEM, RATING, TIME, USER, Dataset, subsample_users
from llmrec.data.splits import leave_one_out_split, make_split, predefined_split, random_split, temporal_split
from llmrec.errors import DataFormatError

KEY = [USER, ITEM, TIME]


def make_dataset(n_users: int = 60, n_items: int = 80, n_events: int = 900, seed: int = 0) -> Dataset:
    """A realistically shaped log: users arrive over time, popular items skew, ties in time exist."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_events)
    popularity = rng.zipf(1.6, n_items).astype(float)
    items = rng.choice(n_items, n_events, p=popularity / popularity.sum())
    start = rng.integers(0, 5_000, n_users)  # users join at different times
    times = start[users] + rng.integers(0, 10_000, n_events) // 7 * 7  # coarse clock: many ties
    inter = pd.DataFrame({USER: users, ITEM: items, TIME: times, RATING: rng.integers(1, 6, n_events)})
    catalog = pd.DataFrame({ITEM: np.arange(n_items + 10), "title": [f"item {i}" for i in range(n_items + 10)]})
    return Dataset("synthetic", inter, catalog)


def events(df: pd.DataFrame) -> set[tuple]:
    return set(map(tuple, df[KEY + ["event_seq"]].astype(str).to_numpy()))


def assert_partition(split) -> None:
    parts = [events(split.train), events(split.valid), events(split.test)]
    total = len(split.train) + len(split.valid) + len(split.test)
    assert total == len(split.dataset.interactions)
    assert not parts[0] & parts[2] and not parts[0] & parts[1] and not parts[1] & parts[2]


def assert_histories_precede_targets(split, part: str) -> None:
    """Every case's history is exactly the known events before its target(s)."""
    known = split.known(part)
    held = split.test if part == "test" else split.valid
    es = split.eval_set(part, min_history=0)
    if split.group_targets:
        first = held.groupby(USER)[TIME].min()
        when = [(first[u], None) for u in es.users]
    else:  # one case per held-out event, in the held-out table's order (nothing dropped at min 0)
        when = list(zip(held[TIME], held["event_seq"]))
    assert len(when) == len(es)
    for user, hist, (t, seq) in zip(es.users, es.histories, when):
        user_known = known[known[USER] == user].sort_values("event_seq")
        if split.name == "leave_one_out":
            before = user_known[user_known["event_seq"] < seq]
        else:
            before = user_known[user_known[TIME] < t]
        # Exactly the known events before the target: none later, none held out, none missing.
        assert hist == before[ITEM].tolist()


@pytest.mark.parametrize("kind", ["temporal", "leave_one_out", "random"])
def test_split_partitions_events_and_histories_never_leak(kind):
    split = make_split(make_dataset(), kind)
    assert_partition(split)
    assert_histories_precede_targets(split, "test")
    if len(split.valid):
        assert_histories_precede_targets(split, "valid")


def test_temporal_split_every_train_event_is_before_every_test_event():
    split = temporal_split(make_dataset(), test_ratio=0.3)
    assert split.train[TIME].max() < split.test[TIME].min()
    share = len(split.test) / len(split.dataset.interactions)
    assert 0.25 <= share <= 0.4  # ties at the cut move to test, so roughly 30%


def test_temporal_split_with_valid_keeps_time_order():
    split = temporal_split(make_dataset(), test_ratio=0.2, valid_ratio=0.1)
    assert split.train[TIME].max() < split.valid[TIME].min() <= split.valid[TIME].max() < split.test[TIME].min()
    # Valid cases may only know train; test cases may know train + valid.
    assert len(split.known("valid")) == len(split.train)
    assert len(split.known("test")) == len(split.train) + len(split.valid)


def test_cold_items_are_exactly_test_items_without_training_events():
    split = temporal_split(make_dataset())
    cold = split.cold_items("test")
    vocab = split.train_items()
    assert cold, "the synthetic log should produce cold-start items"
    assert not cold & vocab
    assert cold == set(split.test[ITEM]) - set(split.train[ITEM])
    assert split.item_popularity("test").index.isin(list(cold)).sum() == 0


def test_leave_one_out_holds_out_the_last_two_events_per_user():
    ds = make_dataset()
    split = leave_one_out_split(ds)
    seqs = ds.interactions.groupby(USER).size()
    eligible = seqs[seqs >= 3].index
    assert set(split.test[USER]) == set(eligible)
    for user in list(eligible)[:20]:
        full = split.dataset.interactions[split.dataset.interactions[USER] == user]
        last = full.iloc[-1]
        held = split.test[split.test[USER] == user].iloc[0]
        assert (held[ITEM], held[TIME]) == (last[ITEM], last[TIME])
    # The test history includes the validation event (it happened before), the valid history does not.
    test_cases = split.eval_set("test")
    valid_cases = split.eval_set("valid")
    t = dict(zip(test_cases.users, test_cases.histories))
    v = dict(zip(valid_cases.users, valid_cases.histories))
    user = test_cases.users[0]
    assert t[user][:-1] == v[user]


def test_random_split_is_seeded_and_near_the_ratio():
    ds = make_dataset()
    a, b, c = random_split(ds, seed=1), random_split(ds, seed=1), random_split(ds, seed=2)
    assert events(a.test) == events(b.test) != events(c.test)
    assert abs(len(a.test) / len(ds.interactions) - 0.2) < 0.05


def test_eval_set_drops_short_histories_and_counts_them():
    split = temporal_split(make_dataset())
    every = split.eval_set("test", min_history=0)
    kept = split.eval_set("test", min_history=1)
    assert kept.dropped["short_history"] == sum(len(h) == 0 for h in every.histories)
    assert all(len(h) >= 1 for h in kept.histories)
    capped = split.eval_set("test", max_history=5)
    assert all(len(h) <= 5 for h in capped.histories)
    assert [h[-5:] for h in kept.histories] == capped.histories


def test_history_ratings_align_with_history_items():
    split = leave_one_out_split(make_dataset())
    es = split.eval_set("test")
    known = split.known("test")
    user, hist, rates = es.users[0], es.histories[0], es.history_ratings[0]
    rows = known[known[USER] == user].sort_values("event_seq")
    assert rows[ITEM].tolist()[: len(hist)] == hist
    assert rows[RATING].tolist()[: len(hist)] == rates


def test_predefined_split_uses_the_source_history():
    inter = pd.DataFrame({USER: ["a"] * 4 + ["b"] * 3, ITEM: ["1", "2", "3", "4", "2", "5", "6"],
                          TIME: [0, 1, 2, 3, 0, 1, 2]})
    seqs = pd.DataFrame({USER: ["a", "b"], "history": [["1", "2", "3"], ["2", "5"]], "target": ["4", "6"]})
    ds = Dataset("tiny", inter, pd.DataFrame({ITEM: list("123456")}), eval_sequences=seqs)
    split = predefined_split(ds)
    es = split.eval_set("test")
    assert dict(zip(es.users, es.histories)) == {"a": ["1", "2", "3"], "b": ["2", "5"]}
    assert dict(zip(es.users, es.targets)) == {"a": ["4"], "b": ["6"]}
    assert set(split.train[ITEM]) == {"1", "2", "3", "5"}


def test_predefined_split_rejects_a_history_that_is_not_the_known_prefix():
    inter = pd.DataFrame({USER: ["a"] * 3, ITEM: ["1", "2", "3"], TIME: [0, 1, 2]})
    seqs = pd.DataFrame({USER: ["a"], "history": [["2", "1"]], "target": ["3"]})
    split = predefined_split(Dataset("tiny", inter, pd.DataFrame({ITEM: list("123")}), eval_sequences=seqs))
    with pytest.raises(DataFormatError, match="history"):
        split.eval_set("test")


def test_auto_split_uses_the_source_split_when_there_is_one():
    inter = pd.DataFrame({USER: ["a"] * 4, ITEM: ["1", "2", "3", "4"], TIME: [0, 1, 2, 3]})
    seqs = pd.DataFrame({USER: ["a"], "history": [["1", "2", "3"]], "target": ["4"]})
    with_source = Dataset("tiny", inter, pd.DataFrame({ITEM: list("1234")}), eval_sequences=seqs)
    assert make_split(with_source, "auto").name == predefined_split(with_source).name
    assert make_split(make_dataset(), "auto").name == leave_one_out_split(make_dataset()).name


def test_subsample_users_keeps_whole_users_and_the_whole_catalogue():
    ds = make_dataset(n_users=60)
    small = subsample_users(ds, 10, seed=3)
    kept = set(small.interactions[USER])
    assert len(kept) == 10 and small.items.equals(ds.items)
    for user in kept:  # every kept user keeps every event
        assert (small.interactions[USER] == user).sum() == (ds.interactions[USER] == user).sum()
    assert set(subsample_users(ds, 10, seed=3).interactions[USER]) == kept  # seeded
    assert set(subsample_users(ds, 10, seed=4).interactions[USER]) != kept
    assert subsample_users(ds, 10_000) is ds


def test_unknown_split_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown split 'weekly'"):
        make_split(make_dataset(), "weekly")


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_users=st.integers(2, 15),
    n_events=st.integers(10, 150),
    kind=st.sampled_from(["temporal", "leave_one_out", "random"]),
)
def test_no_split_ever_leaks_on_random_logs(seed, n_users, n_events, kind):
    try:
        split = make_split(make_dataset(n_users=n_users, n_items=20, n_events=n_events, seed=seed), kind)
    except DataFormatError:
        return  # a log whose timestamps cannot be split by time: refused, which is correct
    assert_partition(split)
    assert_histories_precede_targets(split, "test")
    assert not split.cold_items("test") & split.train_items()


def test_real_movielens_temporal_split_has_cold_items_and_no_leak(require_data):
    path = require_data("ml-100k", "u.data")
    inter = pd.read_csv(path, sep="\t", names=[USER, ITEM, RATING, TIME])
    items = pd.DataFrame({ITEM: sorted(inter[ITEM].unique())})
    split = temporal_split(Dataset("ml-100k", inter, items))
    assert split.train[TIME].max() < split.test[TIME].min()
    assert len(split.cold_items()) > 50  # ML-100K adds many movies late
    assert_histories_precede_targets(split, "test")
