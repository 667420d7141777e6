"""Inner-product nearest-neighbour indexes over (unit) vectors, one API for exact and approximate.

``add(ids, vectors)`` then ``search(queries, k) -> (ids, scores)``, both ``(n_queries, k)`` with
rows sorted by descending score (k is capped at the index size). With unit vectors the inner
product is the cosine.

* ``BruteForceIndex``: numpy matrix product + ``argpartition``; exact, no dependency, fine up to a
  few hundred thousand items.
* ``FaissIndex``: faiss ``IndexFlatIP`` (exact, multi-threaded BLAS) or, for large catalogues,
  ``"hnsw"`` (graph, no training) or ``"ivf"`` (trained on the first ``add``). Approximate kinds
  may return fewer than k hits for a query; those slots hold id ``None`` and score ``-inf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np

IndexKind = Literal["brute", "flat", "hnsw", "ivf"]


class VectorIndex(Protocol):
    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...


def _as_matrix(vectors: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{what} have dimension {array.shape[1]}, the index holds dimension {dim}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return array


class BruteForceIndex:
    """Exact top-k by inner product with numpy."""

    def __init__(self, dim: int | None = None, query_batch: int = 1024) -> None:
        self.dim = dim
        self.query_batch = query_batch
        self._ids: list[str] = []
        self._chunks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        vectors = _as_matrix(vectors, self.dim, "vectors")
        if len(ids) != len(vectors):
            raise ValueError(f"got {len(ids)} ids for {len(vectors)} vectors")
        self.dim = vectors.shape[1]
        self._ids.extend(str(i) for i in ids)
        self._chunks.append(vectors)
        self._matrix = None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = _as_matrix(queries, self.dim, "queries")
        k = min(int(k), len(self))
        ids_out = np.empty((len(queries), k), dtype=object)
        scores_out = np.empty((len(queries), k), dtype=np.float32)
        if k <= 0:
            return ids_out, scores_out
        if self._matrix is None:
            self._matrix = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
            self._chunks = [self._matrix]
        id_array = np.asarray(self._ids, dtype=object)
        # Batches keep the (queries x items) score block small for big catalogues.
        for start in range(0, len(queries), self.query_batch):
            block = queries[start:start + self.query_batch] @ self._matrix.T
            if k < block.shape[1]:
                top = np.argpartition(-block, k - 1, axis=1)[:, :k]
            else:
                top = np.broadcast_to(np.arange(block.shape[1]), block.shape).copy()
            top_scores = np.take_along_axis(block, top, axis=1)
            # Sort by score, ties by insertion order, so results are reproducible.
            order = np.lexsort((top, -top_scores), axis=1)
            top = np.take_along_axis(top, order, axis=1)
            ids_out[start:start + len(block)] = id_array[top]
            scores_out[start:start + len(block)] = np.take_along_axis(top_scores, order, axis=1)
        return ids_out, scores_out


class FaissIndex:
    """faiss inner-product index: ``kind="flat"`` exact, ``"hnsw"`` or ``"ivf"`` approximate.

    ``hnsw_m``/``ef_search`` trade memory/time for recall in HNSW; ``nlist``/``nprobe`` do the same
    for IVF (``nlist`` defaults to about 4·sqrt(n), at most n/39, of the first batch added, which
    trains it).
    """

    def __init__(
        self,
        dim: int,
        kind: Literal["flat", "hnsw", "ivf"] = "flat",
        *,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 16,
    ) -> None:
        import faiss

        self._faiss = faiss
        self.dim = int(dim)
        self.kind = kind
        self.nlist = nlist
        self.nprobe = nprobe
        self._ids: list[str] = []
        self._index: Any
        if kind == "flat":
            self._index = faiss.IndexFlatIP(self.dim)
        elif kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(self.dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = ef_construction
            self._index.hnsw.efSearch = ef_search
        elif kind == "ivf":
            self._index = None  # built when the first vectors arrive: nlist depends on their count
        else:
            raise ValueError(f"unknown faiss index kind {kind!r}: expected 'flat', 'hnsw' or 'ivf'")

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        vectors = _as_matrix(vectors, self.dim, "vectors")
        if len(ids) != len(vectors):
            raise ValueError(f"got {len(ids)} ids for {len(vectors)} vectors")
        if self._index is None:
            self._index = self._train_ivf(vectors)
        self._index.add(vectors)
        self._ids.extend(str(i) for i in ids)

    def _train_ivf(self, vectors: np.ndarray):
        faiss = self._faiss
        # ~4·sqrt(n) lists, but at least 39 training points per list (faiss's own minimum).
        nlist = self.nlist or max(1, min(int(4 * np.sqrt(len(vectors))), len(vectors) // 39))
        if len(vectors) < nlist:
            raise ValueError(f"IVF with nlist={nlist} needs at least {nlist} vectors in the first add, "
                             f"got {len(vectors)}")
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(self.nprobe, nlist)
        self._quantizer = quantizer  # faiss does not own it from Python; keep it alive
        return index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = _as_matrix(queries, self.dim, "queries")
        k = min(int(k), len(self))
        ids_out = np.empty((len(queries), max(k, 0)), dtype=object)
        if k <= 0:
            return ids_out, np.empty((len(queries), 0), dtype=np.float32)
        scores, positions = self._index.search(queries, k)
        id_array = np.asarray(self._ids + [None], dtype=object)  # -1 (no hit) maps to None
        ids_out[:] = id_array[np.where(positions < 0, len(self._ids), positions)]
        scores = np.where(positions < 0, -np.inf, scores).astype(np.float32)
        return ids_out, scores


def make_index(kind: IndexKind, dim: int, **options) -> BruteForceIndex | FaissIndex:
    """``"brute"`` -> BruteForceIndex; ``"flat"``/``"hnsw"``/``"ivf"`` -> FaissIndex."""
    if kind == "brute":
        return BruteForceIndex(dim, **options)
    return FaissIndex(dim, kind, **options)
