"""GIRL's data: a profile text per user, a text per item, matches and mismatches, split by user.

* **job-views**: an applicant's profile is their past positions (``Experience.csv``), the
  descriptions of those positions where present, and their positions of interest; a job's text is
  its position, company, city and industry (``prompts/item_text/job-views.j2``, the title repeats
  the position). A view is a match. Only a minority of applicants have experience rows or positions
  of interest: each profile uses what the applicant has, and applicants with neither are counted as
  cold users (no profile to generate from; popularity is what serves them) and left out.
* **ml-100k**: a user's profile is their liked movies (rating > 3) before their latest likes; the
  latest likes are the matches. The same pipeline, to show it is not job-specific.

Mismatches are items the user never matched, sampled with a seed (``hard``: from the same city or
industry as the matched job, or the same first genre, falling back to random). Users are split
once, seeded: no user is on both the training and the held-out side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.schema import ITEM, RATING, TIME, USER, Dataset, is_liked
from llmrec.girl.config import GirlConfig
from llmrec.llm.sanitize import clean_catalogue_text

DESCRIPTION_COLUMN = "Job.Description"


@dataclass(frozen=True)
class Match:
    """One (user, matched item) pair; ``negative`` is a sampled mismatch for the reward model."""

    user: str
    item: str
    negative: str | None = None


@dataclass
class GirlData:
    """Profiles, item texts and matches of one domain, with the user split fixed."""

    domain: str
    profiles: dict[str, str]
    item_text: dict[str, str]
    matches: dict[str, list[str]]
    """user -> matched items, oldest first (all of them: none is ever a negative)."""
    train_users: list[str]
    test_users: list[str]
    groups: dict[str, list[str]] = field(default_factory=dict)
    """item -> the keys of its hard-negative groups (city, industry / first genre)."""
    counts: dict = field(default_factory=dict)

    def target(self, user: str) -> str:
        """The held-out match of a user: their latest."""
        return self.matches[user][-1]

    def examples(self, users: Sequence[str], per_user: int) -> list[Match]:
        """Each user's latest ``per_user`` matches (SFT pairs)."""
        return [Match(u, item) for u in users for item in self.matches[u][-per_user:]]

    def pairs(self, users: Sequence[str], per_user: int, seed: int, hard: bool = False) -> list[Match]:
        """(user, match, mismatch) triples; the mismatch is never one of the user's matches."""
        rng = np.random.default_rng(seed)
        catalogue = np.asarray(sorted(self.item_text))
        by_group: dict[str, list[str]] = {}
        if hard:
            for item, keys in self.groups.items():
                for key in keys:
                    by_group.setdefault(key, []).append(item)
        out = []
        for match in self.examples(users, per_user):
            seen = set(self.matches[match.user])
            pool = [i for key in self.groups.get(match.item, []) for i in by_group.get(key, [])] if hard else []
            pool = [i for i in pool if i not in seen]
            negative = str(rng.choice(pool)) if pool else None
            while negative is None:
                draw = str(catalogue[rng.integers(len(catalogue))])
                negative = None if draw in seen else draw
            out.append(Match(match.user, match.item, negative))
        return out

    def split_overlap(self) -> set[str]:
        """Users on both sides of the split (always empty; tests check it)."""
        return set(self.train_users) & set(self.test_users)


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def experience_column(folder: str | Path, column: str = DESCRIPTION_COLUMN) -> pd.Series:
    """Per applicant, the distinct values of an ``Experience.csv`` column (descriptions, cities,
    states of their past positions), "; "-joined; empty when the file is absent."""
    from llmrec.data.loaders.job_views import EXPERIENCE_FILE, joined_text

    path = Path(folder) / EXPERIENCE_FILE
    return joined_text(path, column) if path.exists() else pd.Series(dtype=str)


def job_profiles(dataset: Dataset, max_chars: int) -> tuple[dict[str, str], dict]:
    """Profile text of every applicant who has experience rows or positions of interest."""
    users = dataset.users if dataset.users is not None else pd.DataFrame(index=dataset.interactions[USER].unique())
    extra = {c: experience_column(dataset.source, c) if dataset.source else pd.Series(dtype=str)
             for c in (DESCRIPTION_COLUMN, "City", "State.Name")}
    profiles: dict[str, str] = {}
    has = {"experience": 0, "descriptions": 0, "positions_of_interest": 0, "location": 0}
    for user in users.index.astype(str):
        parts = []
        for column, label in (("experience", "Past positions"), ("positions_of_interest", "Interested in")):
            value = users.loc[user, column] if column in users.columns else None
            if isinstance(value, str) and value.strip():
                has[column] += 1
                parts.append(f"{label}: {clean_catalogue_text(value)}")
        text = extra[DESCRIPTION_COLUMN].get(user)
        if parts and isinstance(text, str) and text.strip():
            has["descriptions"] += 1
            parts.insert(1, f"Duties: {clean_catalogue_text(text)}")
        place = [v for v in (extra["City"].get(user), extra["State.Name"].get(user)) if isinstance(v, str) and v]
        if parts and place:  # where the past positions were: job views are mostly local
            has["location"] += 1
            parts.insert(0, f"Worked in: {clean_catalogue_text(' / '.join(place))}")
        if parts:
            profiles[user] = _cut(". ".join(parts), max_chars)
    n_users = int(dataset.interactions[USER].nunique())
    counts = {"users_total": n_users, "users_with_profile": len(profiles),
              "cold_users_no_experience_no_interest": n_users - len(profiles),
              **{f"users_with_{k}": v for k, v in has.items()}}
    return profiles, counts


def job_groups(items: pd.DataFrame) -> dict[str, list[str]]:
    """Hard-negative groups of jobs: same city, same industry."""
    out: dict[str, list[str]] = {}
    for item, row in items.iterrows():
        keys = [f"{col}={str(row[col]).strip().lower()}" for col in ("city", "industry")
                if col in items.columns and isinstance(row[col], str) and row[col].strip()]
        out[str(item)] = keys
    return out


def movie_profiles(dataset: Dataset, item_text: dict[str, str], history_len: int, n_targets: int,
                   max_chars: int) -> tuple[dict[str, str], dict[str, list[str]], dict]:
    """MovieLens: profile = liked movies before the latest ``n_targets`` likes; matches = those likes."""
    inter = dataset.interactions
    liked = inter[is_liked(inter[RATING])] if RATING in inter.columns else inter
    liked = liked.sort_values([USER, TIME], kind="stable")
    profiles: dict[str, str] = {}
    matches: dict[str, list[str]] = {}
    for user, group in liked.groupby(USER, sort=False):
        items = group[ITEM].astype(str).tolist()
        if len(items) < n_targets + 2:
            continue
        shown = items[:-n_targets][-history_len:]
        profiles[str(user)] = _cut("Liked movies: " + "; ".join(item_text[i] for i in shown), max_chars)
        matches[str(user)] = items[-n_targets:]
    n_users = int(inter[USER].nunique())
    counts = {"users_total": n_users, "users_with_profile": len(profiles),
              "cold_users_too_few_likes": n_users - len(profiles)}
    return profiles, matches, counts


def movie_groups(items: pd.DataFrame) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item, genres in (items["genres"] if "genres" in items.columns else pd.Series(dtype=str)).items():
        first = str(genres).split(",")[0].strip() if isinstance(genres, str) and genres else ""
        out[str(item)] = [f"genre={first}"] if first else []
    return out


def split_users(users: Sequence[str], test_share: float, seed: int, train_cap: int = 0,
                test_cap: int = 0) -> tuple[list[str], list[str]]:
    """A seeded split of ``users`` into (train, held-out), each optionally capped; disjoint by construction."""
    order = [str(u) for u in np.random.default_rng(seed).permutation(sorted(str(u) for u in users))]
    n_test = max(1, int(round(test_share * len(order))))
    test, train = order[:n_test], order[n_test:]
    return (train[:train_cap] if train_cap else train), (test[:test_cap] if test_cap else test)


def build_girl_data(dataset: Dataset, config: GirlConfig) -> GirlData:
    """GirlData for ``dataset`` (job-views or ml-100k), split by user with ``config.seed``."""
    from llmrec.data.text import item_text as render_items

    texts = {str(k): clean_catalogue_text(v) for k, v in render_items(dataset).items()}
    if dataset.domain == "job":
        profiles, counts = job_profiles(dataset, config.max_profile_chars)
        inter = dataset.interactions.sort_values([USER, TIME], kind="stable")
        all_matches = {str(u): list(dict.fromkeys(g[ITEM].astype(str))) for u, g in inter.groupby(USER, sort=False)}
        matches = {u: all_matches[u] for u in profiles if u in all_matches}
        groups = job_groups(dataset.items)
    else:
        profiles, matches, counts = movie_profiles(dataset, texts, config.history_len, config.max_examples_per_user,
                                                   config.max_profile_chars)
        groups = movie_groups(dataset.items)
    eligible = [u for u in profiles if matches.get(u) and all(texts.get(i) for i in matches[u])]
    train, test = split_users(eligible, config.test_share, config.seed, config.train_users, config.test_users)
    counts.update({"users_eligible": len(eligible), "train_users": len(train), "test_users": len(test),
                   "items": len(texts), "split": "by user, seeded", "seed": config.seed})
    return GirlData(domain=dataset.domain, profiles={u: profiles[u] for u in eligible}, item_text=texts,
                    matches={u: matches[u] for u in eligible}, train_users=train, test_users=test, groups=groups,
                    counts=counts)


def load_girl_data(config: GirlConfig, data_dir: str | Path | None = None) -> tuple[Dataset, GirlData]:
    """Load ``config.dataset`` through the data registry and build its GirlData."""
    from llmrec.data.registry import load_dataset

    dataset = load_dataset(config.dataset, data_dir)
    return dataset, build_girl_data(dataset, config)
