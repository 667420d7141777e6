"""Click data for CTR models (DIEN): the events a user liked, as an implicit-feedback data set.

On rated data a click is a liked rating (``is_liked``: MovieLens 4 or 5 of 5); the other events are
dropped, so a behaviour sequence holds clicks only. Data without ratings (Amazon next-item files) is
all clicks already and is returned unchanged. Negatives are sampled at evaluation time
(``llmrec.eval.ctr``), never stored.
"""

from __future__ import annotations

import dataclasses

from llmrec.data.schema import LIKE_THRESHOLD, RATING, Dataset, is_liked


def clicks_dataset(dataset: Dataset, like_threshold: float = LIKE_THRESHOLD) -> Dataset:
    """``dataset`` with only its liked events (rating > ``like_threshold``); the catalogue stays whole."""
    inter = dataset.interactions
    if RATING not in inter.columns:
        return dataset
    kept = inter[is_liked(inter[RATING], like_threshold)].reset_index(drop=True)
    if kept.empty:
        raise ValueError(f"{dataset.name}: no rating above {like_threshold:g}, so no clicks")
    meta = {**dataset.meta, "clicks": f"rating > {like_threshold:g}", "events_before_clicks": int(len(inter))}
    return dataclasses.replace(dataset, name=f"{dataset.name}-clicks", interactions=kept, meta=meta)
