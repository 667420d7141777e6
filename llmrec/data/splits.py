"""Splits: temporal ratio (with cold-start items), global-time leave-one-out, leave-one-out, random,
predefined.

Every split returns a :class:`Split` with train / valid / test interaction tables and builds
:class:`EvalSet` cases on demand. The rule that keeps evaluation honest lives here, once:

* a case's history holds only events that happened before its targets, taken from the parts the
  model may know (train for valid cases; train + valid for test cases);
* vocabularies and popularity come from ``split.known(part)`` alone;
* cold-start items are held-out items with no interaction in what is known before them.

Two of the literature's protocols train on the future: ``leave_one_out`` (each user's last event
is test, but other users' later events are in train) and ``random``. Histories still end before
each target, yet a trained model has seen events from after it (on ML-100K, for the median test
event 38% of training events are later in global time). They are kept because papers use them,
say so in ``Split.summary()`` (``train_events_after_median_test``) and in the CLI help; the
``temporal`` and ``temporal_loo`` splits never do it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM, RATING, TIME, USER, Dataset
from llmrec.errors import DataFormatError

_SEQ = "event_seq"  # position of an event in its user's time-ordered sequence (ties keep source order)


@dataclass
class EvalSet:
    """Evaluation cases: for each case a user, the history before the targets, and the targets.

    ``histories[i]`` is time-ordered (oldest first). ``history_ratings[i]`` aligns with it when the
    data has ratings. ``dropped`` counts cases left out and why (e.g. an empty history).
    """

    part: str
    users: list[str]
    histories: list[list[str]]
    targets: list[list[str]]
    history_ratings: list[list[float]] | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, indices: list[int] | np.ndarray) -> EvalSet:
        idx = [int(i) for i in indices]
        return EvalSet(
            part=self.part,
            users=[self.users[i] for i in idx],
            histories=[self.histories[i] for i in idx],
            targets=[self.targets[i] for i in idx],
            history_ratings=None if self.history_ratings is None else [self.history_ratings[i] for i in idx],
            dropped=dict(self.dropped),
        )


@dataclass
class Split:
    """Train / valid / test interactions of one data set, split one way."""

    name: str
    dataset: Dataset
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    group_targets: bool
    """True: one case per user holding all their held-out events (temporal split). False: one
    case per held-out event (leave-one-out, random)."""
    fixed_histories: dict[str, dict[tuple[str, str], list[str]]] | None = None
    """For predefined splits: the history the source file gives for (user, target)."""
    first_per_user: bool = False
    """Cases come from each user's first held-out event only (global-time leave-one-out); the
    part's later events are still known to the next part."""

    @property
    def trains_on_future(self) -> bool:
        """True for protocols whose training events may be later in time than a test event."""
        return self.name in ("leave_one_out", "random")

    def held(self, part: str) -> pd.DataFrame:
        """The held-out events of ``part`` that become evaluation targets."""
        if part not in ("valid", "test"):
            raise ValueError(f"part must be 'valid' or 'test', got {part!r}")
        held = self.test if part == "test" else self.valid
        if self.first_per_user and len(held):
            held = held.sort_values([USER, _SEQ], kind="stable").groupby(USER, sort=False).head(1)
        return held

    def check_part(self, part: str) -> None:
        """Raise a clear error when ``part`` holds no event to evaluate, saying why."""
        if len(self.held(part)):
            return
        why = {
            ("predefined", "valid"): "the source fixes only test cases; evaluate --part test, or use another split",
            ("random", "valid"): "the random split has no validation part; use --part test",
            ("temporal", "valid"): "the temporal split was made without a validation part (valid_ratio 0)",
            ("temporal_loo", "valid"): "the split was made without a validation part (valid_ratio 0)",
        }.get((self.name, part), "no user has an event in it")
        raise ValueError(f"nothing to evaluate: the {self.name} split of {self.dataset.name} has no "
                         f"{part} events ({why})")

    # --- what a model may know -------------------------------------------------------------
    def known(self, part: str) -> pd.DataFrame:
        """Events a model may use when predicting ``part`` ('valid' -> train; 'test' -> train+valid)."""
        if part == "valid":
            return self.train
        if part == "test":
            return pd.concat([self.train, self.valid], ignore_index=True)
        raise ValueError(f"part must be 'valid' or 'test', got {part!r}")

    def train_items(self) -> set[str]:
        """The item vocabulary a model may build: items with at least one training interaction."""
        return set(self.train[ITEM].unique())

    def item_popularity(self, part: str = "test") -> pd.Series:
        """Interaction counts per item from the events known before ``part``."""
        return self.known(part)[ITEM].value_counts()

    def cold_items(self, part: str = "test") -> set[str]:
        """Items of ``part`` with no interaction in what is known before it: the cold-start items."""
        return set(self.held(part)[ITEM].unique()) - set(self.known(part)[ITEM].unique())

    def unseen_items(self, part: str = "test") -> list[str]:
        """Catalogue items with no event known before ``part``, sorted: the cold-start items as a
        model may know them. Unlike :meth:`cold_items` it never reads ``part`` itself (which items
        the held-out period brings is test information), so LLM steps that prepare cold items use it."""
        seen = set(self.known(part)[ITEM].astype(str))
        return sorted(i for i in self.dataset.items.index.astype(str) if i not in seen)

    # --- cases ---------------------------------------------------------------------------------
    def eval_set(self, part: str = "test", min_history: int = 1, max_history: int | None = None) -> EvalSet:
        """Build evaluation cases for ``part``; cases with fewer than ``min_history`` events are
        dropped and counted. ``max_history`` keeps only the most recent events."""
        held = self.held(part)
        known = self.known(part).sort_values([USER, _SEQ], kind="stable")
        has_rating = RATING in known.columns
        # Per user: time-ordered arrays of what is known, so each case's history is one slice.
        by_user: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = {
            u: (g[ITEM].to_numpy(), g[TIME].to_numpy(), g[_SEQ].to_numpy(),
                g[RATING].to_numpy(dtype=float) if has_rating else None)
            for u, g in known.groupby(USER, sort=False)
        }
        nothing = (np.array([], dtype=object), np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                   np.array([], dtype=float) if has_rating else None)
        users: list[str] = []
        histories: list[list[str]] = []
        targets: list[list[str]] = []
        ratings: list[list[float]] | None = [] if has_rating else None
        dropped = {"short_history": 0}

        def add(user: str, end: int, tgt: list[str], start: int = 0) -> None:
            items, _, _, rates = by_user.get(user, nothing)
            if max_history is not None:
                start = max(start, end - max_history)
            if end - start < min_history:
                dropped["short_history"] += 1
                return
            users.append(user)
            histories.append([str(i) for i in items[start:end]])
            targets.append(tgt)
            if ratings is not None:
                ratings.append(rates[start:end].tolist() if rates is not None else [])

        if self.fixed_histories is not None:
            fixed = self.fixed_histories[part]
            for user, item in zip(held[USER], held[ITEM]):
                items = by_user.get(user, nothing)[0]
                wanted = fixed[(user, item)]
                # The source's history for this target must be the user's known prefix; if a
                # loader ever broke that, fail loudly rather than evaluate on a different history.
                if [str(i) for i in items[: len(wanted)]] != wanted:
                    raise DataFormatError(self.dataset.source or self.dataset.name,
                                          "the given history to equal the user's known events",
                                          field="history", got=f"user {user}")
                add(user, len(wanted), [item])
        elif self.group_targets:
            for user, g in held.groupby(USER, sort=False):
                # Every known event is earlier by construction; searchsorted on time re-checks it,
                # so a bad split can never leak (the leakage tests check this too).
                times = by_user.get(user, nothing)[1]
                add(user, int(np.searchsorted(times, g[TIME].min(), side="left")),
                    list(dict.fromkeys(g[ITEM].tolist())))
        else:
            strictly_earlier = self.name == "random"  # scattered events: only earlier times are "before"
            for user, t, seq, item in zip(held[USER], held[TIME], held[_SEQ], held[ITEM]):
                _, times, seqs, _ = by_user.get(user, nothing)
                end = np.searchsorted(times, t, side="left") if strictly_earlier else np.searchsorted(seqs, seq)
                add(user, int(end), [item])
        return EvalSet(part=part, users=users, histories=histories, targets=targets,
                       history_ratings=ratings, dropped=dropped)

    def summary(self) -> dict:
        test = self.held("test")
        times = np.sort(self.train[TIME].to_numpy())
        median_test = float(np.median(test[TIME])) if len(test) else float("nan")
        later = 1.0 - np.searchsorted(times, median_test, side="right") / len(times) if len(times) and len(test) \
            else 0.0
        out = {
            "split": self.name,
            "train": int(len(self.train)),
            "valid": int(len(self.valid)),
            "test": int(len(test)),
            "train_items": len(self.train_items()),
            "cold_test_items": len(self.cold_items("test")),
            "test_events_on_cold_items": int(test[ITEM].isin(self.cold_items("test")).sum()),
            # Share of training events later in time than the median test event: 0 for time-respecting
            # splits; meaningless where timestamps are only per-user order (Amazon RecBole files).
            "train_events_after_median_test": round(float(later), 4),
            "trains_on_future": self.trains_on_future,
        }
        if self.dataset.timestamps_are_order:
            out["timestamps_are_order"] = True
        return out


def _with_seq(df: pd.DataFrame) -> pd.DataFrame:
    out = df.sort_values([USER, TIME], kind="stable").reset_index(drop=True)
    out[_SEQ] = out.groupby(USER).cumcount()
    return out


def _time_parts(dataset: Dataset, test_ratio: float, valid_ratio: float
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """All events, and those before the valid cut, between the cuts, and at or after the test cut.

    The cuts are the ``1 - test_ratio`` (and ``1 - test_ratio - valid_ratio``) quantiles of event
    times; events that share a cut-off timestamp all go to the later part, so every earlier part is
    strictly earlier in time.
    """
    if not 0 < test_ratio < 1 or not 0 <= valid_ratio < 1 - test_ratio:
        raise ValueError("need 0 < test_ratio < 1 and 0 <= valid_ratio < 1 - test_ratio, "
                         f"got {test_ratio}, {valid_ratio}")
    df = _with_seq(dataset.interactions)
    times = np.sort(df[TIME].to_numpy(), kind="stable")
    n = len(times)
    test_cut = times[min(n - 1, int(np.floor(n * (1 - test_ratio))))]
    valid_cut = times[min(n - 1, int(np.floor(n * (1 - test_ratio - valid_ratio))))] if valid_ratio else test_cut
    train = df[df[TIME] < valid_cut]
    after = df[df[TIME] >= test_cut]
    if len(train) == 0 or len(after) == 0:
        raise DataFormatError(dataset.source or dataset.name, "timestamps spread enough to split by time",
                              field=TIME, got=f"{df[TIME].nunique()} distinct values")
    return df, train, df[(df[TIME] >= valid_cut) & (df[TIME] < test_cut)], after


def temporal_split(dataset: Dataset, test_ratio: float = 0.3, valid_ratio: float = 0.0) -> Split:
    """Global time split: the earliest ``1 - test_ratio`` of events train, the rest test.

    Events that share the cut-off timestamp all go to the later part, so every training event is
    strictly earlier than every test event. Items seen only in test are the cold-start items.
    ``valid_ratio`` (of all events) is carved from the end of the training period.
    """
    df, train, valid, test = _time_parts(dataset, test_ratio, valid_ratio)
    return Split("temporal", dataset, train.reset_index(drop=True), valid.reset_index(drop=True),
                 test.reset_index(drop=True), group_targets=True)


def leave_one_out_split(dataset: Dataset, min_events: int = 3) -> Split:
    """Per user: last event test, second-to-last valid, the rest train (the literature's protocol).

    Users with fewer than ``min_events`` events stay entirely in train. Trains on the future:
    other users' events later than a test event are in train (see ``temporal_loo_split``).
    """
    df = _with_seq(dataset.interactions)
    length = df.groupby(USER)[_SEQ].transform("max") + 1
    eligible = length >= min_events
    is_test = eligible & (df[_SEQ] == length - 1)
    is_valid = eligible & (df[_SEQ] == length - 2)
    return Split("leave_one_out", dataset, df[~is_test & ~is_valid].reset_index(drop=True),
                 df[is_valid].reset_index(drop=True), df[is_test].reset_index(drop=True), group_targets=False)


def random_split(dataset: Dataset, test_ratio: float = 0.2, seed: int = 42) -> Split:
    """Random per-event split (TensorFlow Recommenders' 80/20). Histories still hold only events
    strictly earlier than each target; the rest of a user's train events are never shown. Trains
    on the future: training events are scattered over the whole time range."""
    df = _with_seq(dataset.interactions)
    rng = np.random.default_rng(seed)
    is_test = rng.random(len(df)) < test_ratio
    return Split("random", dataset, df[~is_test].reset_index(drop=True), df.iloc[0:0].copy(),
                 df[is_test].reset_index(drop=True), group_targets=False)


def temporal_loo_split(dataset: Dataset, test_ratio: float = 0.1, valid_ratio: float = 0.0) -> Split:
    """Global-time leave-one-out: a cut-off time T (the ``1 - test_ratio`` quantile of all event
    times); train is every event before T, and each user's *first* event at or after T is their
    test target. Every training event is earlier than every test event, so nothing is learnt from
    the future (unlike ``leave_one_out_split``). Later events of a user after T are not used.

    ``valid_ratio`` > 0 carves a second cut-off Tv before T: events in [Tv, T) form the valid part
    (each user's first one is a validation target) and train ends at Tv; test cases still know
    every event before T.
    """
    df, train, valid, after = _time_parts(dataset, test_ratio, valid_ratio)
    test = after.sort_values([USER, _SEQ], kind="stable").groupby(USER, sort=False).head(1)
    return Split("temporal_loo", dataset, train.reset_index(drop=True), valid.reset_index(drop=True),
                 test.reset_index(drop=True), group_targets=False, first_per_user=True)


def predefined_split(dataset: Dataset) -> Split:
    """The split a source fixes (``dataset.eval_sequences``: user, history, target).

    Each target event becomes a test case with exactly the source's history; everything else is
    train. Used for the RecFormer / LLMRank validation files.
    """
    if dataset.eval_sequences is None:
        raise ValueError(f"data set {dataset.name!r} has no predefined evaluation sequences")
    df = _with_seq(dataset.interactions)
    seqs = dataset.eval_sequences
    key = set(zip(seqs[USER].astype(str), seqs["target"].astype(str)))
    # The target is the last event of its user's sequence in these files.
    last = df.groupby(USER)[_SEQ].transform("max") == df[_SEQ]
    is_test = last & pd.Series([k in key for k in zip(df[USER], df[ITEM])], index=df.index)
    fixed = {"test": {(str(u), str(t)): [str(i) for i in h]
                      for u, h, t in zip(seqs[USER], seqs["history"], seqs["target"])}, "valid": {}}
    return Split("predefined", dataset, df[~is_test].reset_index(drop=True), df.iloc[0:0].copy(),
                 df[is_test].reset_index(drop=True), group_targets=False, fixed_histories=fixed)


SPLITS: dict[str, Callable[..., Split]] = {
    "temporal": temporal_split,
    "temporal_loo": temporal_loo_split,
    "leave_one_out": leave_one_out_split,
    "loo": leave_one_out_split,
    "random": random_split,
    "predefined": predefined_split,
}

SPLIT_HELP = (
    "temporal: global time cut, latest 30%% of events test, cold-start items appear; "
    "temporal_loo: global-time leave-one-out (train before a cut-off, each user's next event test); "
    "leave_one_out / loo: each user's last event test, TRAINS ON THE FUTURE (other users' later events); "
    "random: random events test, TRAINS ON THE FUTURE; predefined: the source's own cases; "
    "auto: predefined when the source has one, else leave_one_out"
)
"""What each split means, for CLI help (argparse formatting: %% is a percent sign)."""


def make_split(dataset: Dataset, kind: str, **kwargs) -> Split:
    """Split ``dataset`` by name: temporal, leave_one_out (loo), random, predefined, or auto (the
    source's own split when it ships one, else leave_one_out)."""
    if kind == "auto":
        kind = "predefined" if dataset.eval_sequences is not None else "leave_one_out"
    try:
        fn = SPLITS[kind]
    except KeyError:
        raise ValueError(f"unknown split {kind!r}; choose one of {sorted([*SPLITS, 'auto'])}") from None
    return fn(dataset, **kwargs)
