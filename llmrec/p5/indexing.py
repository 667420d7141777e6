"""Item indexing for P5-style generative recommendation: how an item becomes a string of ID tokens.

P5 (Geng et al., RecSys 2022) names items by numbers that its tokenizer splits into sub-tokens;
Hua et al. ("How to Index Item IDs for Recommendation Foundation Models", SIGIR-AP 2023) showed
that the original numbering is assigned while walking each user's *whole* sequence, test event
included, so a user's test item tends to get the number right after their last history item. Every
scheme here except :class:`LeakyOriginalIndex` is fitted from ``split.known(part)`` (and the item
catalogue) only, so an ID can never encode the evaluated events.

Token choice (one token per ID symbol, named with a scheme prefix so vocabularies never clash):

* numbered schemes (random, sequential, original): the 1-based number in zero-padded decimal, one
  token per digit, e.g. 57 of 1682 items -> ``("<seq_0>", "<seq_0>", "<seq_5>", "<seq_7>")``. Close
  numbers share leading tokens, as P5's SentencePiece pieces do (the mechanism that lets a model
  exploit the leak); fixed width keeps the IDs prefix-free. ``digits=False`` gives one atomic token
  per item instead, ``("<seq_57>",)``.
* collaborative: one token per cluster level then the position in the leaf,
  ``("<cf1_3>", "<cf2_12>", "<cfi_4>")``; items with no known event go under ``<cf1_cold>``.
* semantic: one token per codebook level then a collision index, ``("<sem1_3>", "<sem2_12>",
  "<sem3_7>", "<sem4_0>")``.

Every scheme's IDs are prefix-free: no complete ID is the beginning of another, so a decoder that
has produced a complete ID can only stop (see :mod:`llmrec.p5.trie`).
"""

from __future__ import annotations

import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
from scipy import sparse

from llmrec.data.schema import ITEM, TIME, USER
from llmrec.data.splits import Split
from llmrec.embed.encoder import Encoder

T = TypeVar("T", bound="ItemIndex")


def catalogue(split: Split, part: str = "test") -> list[str]:
    """The items an index covers, sorted by item id: the catalogue, plus items of known events that
    the catalogue lacks (they appear in histories). Never reads the evaluated part."""
    items = {str(i) for i in split.dataset.items.index}
    items.update(split.known(part)[ITEM].astype(str))
    return sorted(items)


def _known_walk(events: pd.DataFrame) -> list[str]:
    """Items in order of first occurrence, walking users (sorted by id) and each one's events in
    time order (ties keep the table's order, which the splits keep chronological)."""
    ordered = events.sort_values([USER, TIME], kind="stable")
    return list(dict.fromkeys(ordered[ITEM].astype(str)))


def _natural_key(token: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", token))


class ItemIndex(ABC):
    """An item indexing scheme: ``fit`` on a split, then item <-> tuple of ID tokens.

    ``fit`` reads ``split.known(part)`` and the catalogue only (except the leaky original scheme).
    Schemes are dataclasses whose fields are their options (with help text) and compare by
    identity: the fitted IDs are state, not options.
    """

    name: ClassVar[str] = ""
    leaky: ClassVar[bool] = False
    _tokens: dict[str, tuple[str, ...]]
    _items: dict[tuple[str, ...], str]

    @abstractmethod
    def fit(self: T, split: Split, part: str = "test") -> T:
        """Assign every item of :func:`catalogue` its ID; returns ``self``."""

    def _assign(self, tokens: dict[str, tuple[str, ...]]) -> None:
        inverse: dict[tuple[str, ...], str] = {}
        for item, toks in tokens.items():
            if toks in inverse:  # a bug in a scheme, never a data problem
                raise AssertionError(f"{self.name}: items {inverse[toks]!r} and {item!r} share the ID {toks}")
            inverse[toks] = item
        self._tokens, self._items = tokens, inverse

    def _fitted(self) -> dict[str, tuple[str, ...]]:
        if not hasattr(self, "_tokens"):
            raise RuntimeError(f"the {self.name} index is not fitted: call fit(split) first")
        return self._tokens

    def tokens(self, item_id: str) -> tuple[str, ...]:
        """The item's ID as a sequence of ID tokens."""
        try:
            return self._fitted()[str(item_id)]
        except KeyError:
            raise KeyError(f"item {item_id!r} is not in the {self.name} index "
                           f"({len(self._tokens)} items: the catalogue and the known events)") from None

    def item_for(self, tokens: Sequence[str]) -> str | None:
        """The item whose ID is ``tokens``, or None when no item has that ID."""
        self._fitted()
        return self._items.get(tuple(tokens))

    @property
    def vocabulary(self) -> list[str]:
        """Every ID token the fitted index uses (to add to a tokenizer), in natural order."""
        return sorted({t for toks in self._fitted().values() for t in toks}, key=_natural_key)

    def items(self) -> list[str]:
        """Every indexed item, in ID order."""
        return sorted(self._fitted(), key=lambda i: [_natural_key(t) for t in self._tokens[i]])

    def __len__(self) -> int:
        return len(self._fitted())

    def __contains__(self, item: object) -> bool:
        return item in self._fitted()


# --- numbered schemes ---------------------------------------------------------------------------

@dataclass(eq=False)
class _NumberedIndex(ItemIndex):
    """Items numbered 1..n; subclasses choose the order."""

    prefix: ClassVar[str] = ""
    digits: bool = field(default=True, metadata={
        "help": "True: one token per decimal digit of the zero-padded number (P5's sub-token sharing); "
                "False: one atomic token per item"})

    def _number(self, order: list[str]) -> None:
        width = len(str(len(order)))
        self._order = order
        self._number_of = {item: n for n, item in enumerate(order, start=1)}
        if self.digits:
            self._assign({item: tuple(f"<{self.prefix}_{d}>" for d in str(n).zfill(width))
                          for item, n in self._number_of.items()})
        else:
            self._assign({item: (f"<{self.prefix}_{n}>",) for item, n in self._number_of.items()})

    def number(self, item_id: str) -> int:
        """The item's 1-based number."""
        self.tokens(item_id)  # the clear KeyError
        return self._number_of[str(item_id)]

    def item_at(self, number: int) -> str | None:
        """The item numbered ``number``, or None outside 1..n."""
        self._fitted()
        return self._order[number - 1] if 1 <= number <= len(self._order) else None


@dataclass(eq=False)
class RandomIndex(_NumberedIndex):
    """P5's random indexing: a seeded random permutation of the catalogue gives the numbers."""

    name: ClassVar[str] = "random"
    prefix: ClassVar[str] = "rand"
    seed: int = field(default=0, metadata={"help": "seed of the permutation"})

    def fit(self, split: Split, part: str = "test") -> RandomIndex:
        items = catalogue(split, part)
        perm = np.random.default_rng(self.seed).permutation(len(items))
        self._number([items[i] for i in perm])
        return self


@dataclass(eq=False)
class SequentialIndex(_NumberedIndex):
    """P5's sequential indexing without the leak: numbers follow first occurrence while walking the
    users' *known* sequences (users by id, events by time); items without a known event (cold or
    test-only) come after, sorted by item id, so their numbers carry no label."""

    name: ClassVar[str] = "sequential"
    prefix: ClassVar[str] = "seq"

    def fit(self, split: Split, part: str = "test") -> SequentialIndex:
        walked = _known_walk(split.known(part))
        seen = set(walked)
        self._number(walked + [i for i in catalogue(split, part) if i not in seen])
        return self


@dataclass(eq=False)
class LeakyOriginalIndex(_NumberedIndex):
    """The original P5 numbering, kept only to measure its leak; never use it to report results.

    Numbers follow first occurrence while walking each user's *whole* sequence (every event of the
    data set, the evaluated ones included; users by id, events by time), so a user's test item is
    often numbered right after their last history item and shares its leading digit tokens.
    """

    name: ClassVar[str] = "original (leaky)"
    leaky: ClassVar[bool] = True
    prefix: ClassVar[str] = "orig"

    def fit(self, split: Split, part: str = "test") -> LeakyOriginalIndex:
        walked = _known_walk(split.dataset.interactions)  # the leak: test events included
        seen = set(walked)
        self._number(walked + [i for i in catalogue(split, part) if i not in seen])
        return self


# --- collaborative indexing ---------------------------------------------------------------------

def co_occurrence(events: pd.DataFrame, items: Sequence[str]) -> sparse.csr_matrix:
    """Item x item counts of users who interacted with both (diagonal zero), rows in ``items`` order."""
    position = pd.Index(items)
    cols = position.get_indexer(events[ITEM].astype(str))
    keep = cols >= 0
    users, rows = np.unique(events[USER].to_numpy()[keep], return_inverse=True)
    x = sparse.csr_matrix((np.ones(int(keep.sum())), (rows, cols[keep])), shape=(len(users), len(items)))
    x.data[:] = 1.0  # duplicates summed by the constructor: a user counts once per item
    graph = (x.T @ x).tocsr()
    graph.setdiag(0)
    graph.eliminate_zeros()
    return graph


def _chunks(n: int, k: int) -> np.ndarray:
    """Labels cutting ``n`` ordered members into ``k`` near-equal consecutive groups."""
    return np.arange(n) * k // n


@dataclass(eq=False)
class CollaborativeIndex(ItemIndex):
    """OpenP5's collaborative indexing: spectral clustering of the co-occurrence graph of known events.

    A node with more than ``leaf_size`` items is split into ``n_clusters`` children, recursively, for
    at most ``depth`` levels; an item's ID is its cluster path plus its position in the leaf (items
    sorted by id). Items with no known event have no edges: they go under a separate ``cold``
    branch, cut into the same shape by item-id order.
    """

    name: ClassVar[str] = "collaborative"
    n_clusters: int = field(default=20, metadata={"help": "children of every split node"})
    depth: int = field(default=3, metadata={"help": "most cluster levels before the within-leaf index"})
    leaf_size: int = field(default=100, metadata={
        "help": "nodes with more items than this are split (at the depth limit leaves may be larger)"})
    seed: int = field(default=0, metadata={"help": "seed of the spectral embedding"})

    def __post_init__(self) -> None:
        if self.n_clusters < 2 or self.depth < 1 or self.leaf_size < self.n_clusters:
            raise ValueError("CollaborativeIndex needs n_clusters >= 2, depth >= 1 and leaf_size >= n_clusters, "
                             f"got {self.n_clusters}, {self.depth}, {self.leaf_size}")

    def fit(self, split: Split, part: str = "test") -> CollaborativeIndex:
        items = catalogue(split, part)
        known = split.known(part)
        warm = sorted(set(known[ITEM].astype(str)))
        graph = co_occurrence(known, warm)
        tokens: dict[str, tuple[str, ...]] = {}
        self._grow(np.arange(len(warm)), warm, 1, (), lambda m: self._spectral(graph, m), tokens)
        cold = [i for i in items if i not in tokens]
        self._grow(np.arange(len(cold)), cold, 2, ("<cf1_cold>",), lambda m: _chunks(len(m), self.n_clusters),
                   tokens)
        self._assign(tokens)
        return self

    def _grow(self, members: np.ndarray, names: list[str], level: int, path: tuple[str, ...],
              cut: Callable[[np.ndarray], np.ndarray], out: dict[str, tuple[str, ...]]) -> None:
        if len(members) <= self.leaf_size or level > self.depth:
            for j, m in enumerate(members):
                out[names[m]] = (*path, f"<cfi_{j}>")
            return
        labels = cut(members)
        if len(np.unique(labels)) < 2:  # the graph gave no split: fall back to order, so depth still bounds leaves
            labels = _chunks(len(members), self.n_clusters)
        for rank, label in enumerate(np.unique(labels)):
            self._grow(members[labels == label], names, level + 1, (*path, f"<cf{level}_{rank}>"), cut, out)

    def _spectral(self, graph: sparse.csr_matrix, members: np.ndarray) -> np.ndarray:
        from sklearn.cluster import SpectralClustering

        sub = graph[members][:, members]
        # A small self-loop gives isolated items a degree, which keeps the normalised Laplacian
        # well defined; it adds nothing between items.
        sub = (sub + sparse.identity(len(members), format="csr") * 1e-3).tocsr()
        model = SpectralClustering(n_clusters=self.n_clusters, affinity="precomputed", assign_labels="cluster_qr",
                                   random_state=self.seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Graph is not fully connected")
            return np.asarray(model.fit_predict(sub))


# --- semantic indexing --------------------------------------------------------------------------

def residual_kmeans(vectors: np.ndarray, levels: int, codebook_size: int, seed: int = 0) -> np.ndarray:
    """(n, levels) codes: level l clusters what levels < l left unexplained (RQ-KMeans)."""
    from sklearn.cluster import KMeans

    residual = np.asarray(vectors, dtype=np.float64).copy()
    codes = np.zeros((len(residual), levels), dtype=np.int64)
    for level in range(levels):
        # Never ask for more clusters than distinct points (identical items stay together).
        k = min(codebook_size, len(np.unique(residual.round(10), axis=0)))
        if k < 2:
            continue  # nothing left to tell apart: code 0; the collision level separates them
        km = KMeans(n_clusters=k, n_init=3, random_state=seed + level).fit(residual)
        codes[:, level] = km.labels_
        residual -= km.cluster_centers_[km.labels_]
    return codes


@dataclass(eq=False)
class SemanticIndex(ItemIndex):
    """TIGER-style semantic IDs: residual k-means codes of item-text embeddings plus a collision index.

    The embeddings come from ``embeddings`` + ``embedding_ids`` (e.g. an ``EmbeddingRanker``'s
    ``item_vectors`` and ``item_ids``), else from ``encoder`` (an Encoder, a model name, or None for
    the default sentence encoder) over the catalogue's text. Text is content, not interactions, so
    cold items get IDs like any other. Items that share every code get a last token 0, 1, ... in
    item-id order; unique ones get 0, so every ID has ``levels + 1`` tokens.
    """

    name: ClassVar[str] = "semantic"
    levels: int = field(default=3, metadata={"help": "codebook levels (residual k-means rounds)"})
    codebook_size: int = field(default=256, metadata={"help": "codes per level"})
    seed: int = field(default=0, metadata={"help": "seed of k-means"})
    embeddings: np.ndarray | None = field(default=None, repr=False, metadata={
        "help": "item vectors, one row per id of embedding_ids"})
    embedding_ids: Sequence[str] | None = field(default=None, repr=False, metadata={
        "help": "the item id of each row of embeddings"})
    encoder: Encoder | str | None = field(default=None, repr=False, metadata={
        "help": "encoder of item text when no embeddings are given (an Encoder or a model name)"})
    template: str | None = field(default=None, metadata={"help": "item-text template for the encoder"})

    def __post_init__(self) -> None:
        if self.levels < 1 or self.codebook_size < 2:
            raise ValueError(f"SemanticIndex needs levels >= 1 and codebook_size >= 2, "
                             f"got {self.levels}, {self.codebook_size}")

    def fit(self, split: Split, part: str = "test") -> SemanticIndex:
        items = catalogue(split, part)
        codes = residual_kmeans(self._vectors(split, items), self.levels, self.codebook_size, self.seed)
        seen: dict[tuple[int, ...], int] = {}
        tokens: dict[str, tuple[str, ...]] = {}
        for item, row in zip(items, codes):
            code = tuple(int(c) for c in row)
            clash = seen.get(code, 0)
            seen[code] = clash + 1
            tokens[item] = (*(f"<sem{level + 1}_{c}>" for level, c in enumerate(code)),
                            f"<sem{self.levels + 1}_{clash}>")
        self._assign(tokens)
        return self

    def _vectors(self, split: Split, items: list[str]) -> np.ndarray:
        if self.embeddings is not None:
            if self.embedding_ids is None or len(self.embedding_ids) != len(self.embeddings):
                raise ValueError("SemanticIndex: embeddings need embedding_ids, one per row")
            rows = pd.Index([str(i) for i in self.embedding_ids]).get_indexer(items)
            if (rows < 0).any():
                missing = [i for i, r in zip(items, rows) if r < 0]
                raise ValueError(f"SemanticIndex: {len(missing)} indexed items have no embedding "
                                 f"(e.g. {missing[0]!r}); embed the whole catalogue")
            return np.asarray(self.embeddings)[rows]
        from llmrec.embed.encoder import load_sentence_encoder
        from llmrec.embed.files import render_item_texts

        encoder = self.encoder if isinstance(self.encoder, Encoder) else (
            load_sentence_encoder(self.encoder) if self.encoder else load_sentence_encoder())
        # Items of known events missing from the catalogue have no text: they embed as "".
        texts = render_item_texts(split.dataset, self.template).reindex(items).fillna("")
        return encoder.encode(list(texts), show_progress=False)


INDEXES: dict[str, type[ItemIndex]] = {
    "random": RandomIndex,
    "sequential": SequentialIndex,
    "collaborative": CollaborativeIndex,
    "semantic": SemanticIndex,
    "original": LeakyOriginalIndex,
}
"""Schemes by name; "original" is the leaky P5 numbering, for measuring the leak only."""


def make_index(name: str, **options: Any) -> ItemIndex:
    """An unfitted index by name (a key of INDEXES or a scheme's ``name``), with its options."""
    by_name = {**INDEXES, **{cls.name: cls for cls in INDEXES.values()}}
    if name not in by_name:
        raise ValueError(f"unknown item index {name!r}; choose one of {sorted(INDEXES)}")
    cls = by_name[name]
    allowed = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"the {cls.name} index has no option {unknown[0]!r}; its options are {sorted(allowed)}")
    return cls(**options)
