"""A content-addressed, crash-safe, on-disk cache of text embeddings.

Key: (encoder ``model_id``, sha256 of the exact text). An item whose text changed gets a new key and
is encoded again; identical texts share one vector; two models never share entries.

Layout (one folder per model under ``cache_dir``)::

    <cache_dir>/<model slug>/
        model.json            {"model_id": ..., "dim": ...}
        index.json            {"shards": ["shard-<uuid>", ...]}   the only list of live shards
        shard-<uuid>.npy      float32 (n, dim), unit rows
        shard-<uuid>.keys     n lines, the sha256 of each row's text

A call that finds new texts encodes them ``shard_size`` at a time and, after each piece, writes
one new shard (vectors, then keys) and replaces ``index.json``, so a run killed halfway (even
with kill -9) keeps every finished piece and a re-run encodes only the rest. Every file is
written through ``llmrec.utils.io`` (temporary file + rename). A crash before the index is
replaced leaves an unreferenced shard (or a temporary file) and the old index, so the old cache
loads unchanged; the next writer removes such leftovers. Writers hold an exclusive ``flock`` on
``.lock`` and re-read the index before adding to it, so two processes filling one cache do not
drop each other's shards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from llmrec.embed.encoder import Encoder
from llmrec.errors import DataFormatError
from llmrec.utils.io import atomic_path, atomic_write, write_json
from llmrec.utils.paths import cache_root

logger = logging.getLogger(__name__)

# Under $LLMREC_CACHE_DIR when set (read at import), like the converted models.
DEFAULT_CACHE_DIR = str(cache_root() / "embeddings")
#: Texts encoded between two shard writes: what an interrupted run can lose at most. Small enough
#: to lose seconds of work, large enough that a catalogue of 100k items makes ~100 shards.
DEFAULT_SHARD_SIZE = 1024
_SHARD_FILE = re.compile(r"(shard-[0-9a-f]{12})\.(?:npy|keys)")


def text_key(text: str) -> str:
    """The cache key of one text: sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeds texts with ``encoder``, encoding only texts it has not seen before.

    ``hits`` / ``misses`` count items over the cache's lifetime (an item is a miss when its text
    was not stored before the call); ``encoded`` counts distinct texts actually sent to the
    encoder. ``last_hits`` / ``last_misses`` describe the latest ``embed`` call. New texts are
    stored ``shard_size`` at a time as they are encoded (see the module docstring).
    """

    def __init__(self, cache_dir: str | Path, encoder: Encoder, batch_size: int = 64, show_progress: bool = True,
                 shard_size: int = DEFAULT_SHARD_SIZE):
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        self.encoder = encoder
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.shard_size = shard_size
        self.root = Path(cache_dir).expanduser()
        self.folder = self.root / _slug(encoder.model_id)
        self.hits = self.misses = self.encoded = 0
        self.last_hits = self.last_misses = 0
        self._shards: list[str] = []
        self._where: dict[str, tuple[int, int]] = {}  # text key -> (shard number, row)
        self._arrays: list[np.ndarray] = []
        self._load()

    def __len__(self) -> int:
        return len(self._where)

    def embed(self, ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts`` (``(n, dim)`` float32, unit rows), in the order given.

        ``ids`` name the items in messages; the cache itself keys on the text only.
        """
        if len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids and {len(texts)} texts")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text of item {ids[i]!r} is {type(text).__name__}, expected str")
        keys = [text_key(t) for t in texts]
        missing: dict[str, str] = {}  # key -> text, first occurrence order, deduplicated
        n_miss = 0
        for key, text in zip(keys, texts):
            if key not in self._where:
                n_miss += 1
                missing.setdefault(key, text)
        if missing:
            pending = list(missing.items())
            several = len(pending) > self.shard_size
            # One bar over the whole call; per-piece encoder bars would restart every shard.
            bar = tqdm(total=len(pending), desc="embedding", unit="text",
                       disable=not (self.show_progress and several))
            for start in range(0, len(pending), self.shard_size):
                piece = pending[start:start + self.shard_size]
                new_vectors = self.encoder.encode([text for _, text in piece], batch_size=self.batch_size,
                                                  show_progress=self.show_progress and not several)
                new_vectors = np.ascontiguousarray(new_vectors, dtype=np.float32)
                if new_vectors.shape != (len(piece), self.encoder.dim):
                    raise ValueError(
                        f"encoder {self.encoder.model_id!r} returned shape {new_vectors.shape} "
                        f"for {len(piece)} texts, expected {(len(piece), self.encoder.dim)}"
                    )
                # Stored before the next piece is encoded: a kill now loses this piece at most.
                self._store([key for key, _ in piece], new_vectors)
                bar.update(len(piece))
            bar.close()
        out = np.empty((len(keys), self.encoder.dim), dtype=np.float32)
        where = np.array([self._where[key] for key in keys], dtype=np.int64).reshape(-1, 2)
        for shard in np.unique(where[:, 0]):
            rows = where[:, 0] == shard
            out[rows] = self._arrays[shard][where[rows, 1]]
        self.last_hits, self.last_misses = len(keys) - n_miss, n_miss
        self.hits += self.last_hits
        self.misses += self.last_misses
        self.encoded += len(missing)
        logger.info(
            "embedding cache %s: %d hits, %d misses (%d texts encoded)",
            self.folder, self.last_hits, self.last_misses, len(missing),
        )
        return out

    def compact(self) -> None:
        """Merge all shards into one (many small runs leave many small shards)."""
        if len(self._shards) <= 1:
            return
        with self._lock():
            self._load()
            keys = list(self._where)
            vectors = np.stack([self._arrays[s][r] for s, r in self._where.values()]) if keys else None
            old = list(self._shards)
            self._shards, self._arrays, self._where = [], [], {}
            if vectors is not None:
                self._write_shard(keys, vectors)
            self._write_index()
            for name in old:  # only after the new index no longer names them
                for suffix in (".npy", ".keys"):
                    with contextlib.suppress(FileNotFoundError):
                        (self.folder / f"{name}{suffix}").unlink()

    # -- storage -------------------------------------------------------------------------------

    def _load(self) -> None:
        self._shards, self._arrays, self._where = [], [], {}
        model_file = self.folder / "model.json"
        if model_file.exists():
            stored = json.loads(model_file.read_text())
            if stored.get("model_id") != self.encoder.model_id:
                # Slugs carry a hash of the id, so this means a hand-copied or corrupted folder.
                raise DataFormatError(model_file, f"model_id {self.encoder.model_id!r}",
                                      field="model_id", got=stored.get("model_id"))
        index_file = self.folder / "index.json"
        if not index_file.exists():
            return
        try:
            names = json.loads(index_file.read_text())["shards"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataFormatError(index_file, "a JSON object with a 'shards' list", got=str(err)) from err
        for name in names:
            self._attach(name)

    def _attach(self, name: str) -> None:
        for suffix in (".npy", ".keys"):
            if not (self.folder / f"{name}{suffix}").exists():
                raise DataFormatError(self.folder / "index.json", f"shard file {name}{suffix} to exist",
                                      field="shards", got=name)
        vectors = np.load(self.folder / f"{name}.npy", mmap_mode="r")
        keys = (self.folder / f"{name}.keys").read_text().split()
        if vectors.shape != (len(keys), self.encoder.dim):
            raise DataFormatError(self.folder / f"{name}.npy", f"shape ({len(keys)}, {self.encoder.dim})",
                                  got=vectors.shape)
        shard = len(self._arrays)
        self._shards.append(name)
        self._arrays.append(vectors)
        for row, key in enumerate(keys):
            self._where.setdefault(key, (shard, row))

    def _store(self, keys: list[str], vectors: np.ndarray) -> None:
        with self._lock() as exclusive:
            # Another process may have added shards since we loaded: pick them up, keep theirs.
            self._refresh()
            if exclusive:
                self._sweep()
            self._write_shard(keys, vectors)
            self._write_index()

    def _refresh(self) -> None:
        """Attach shards other writers added since we last read the index (a full reload if the
        index no longer starts with ours, e.g. after another process compacted the cache)."""
        index_file = self.folder / "index.json"
        try:
            names = json.loads(index_file.read_text())["shards"] if index_file.exists() else []
        except (json.JSONDecodeError, KeyError, TypeError):
            names = None
        if names is None or names[: len(self._shards)] != self._shards:
            self._load()  # reports a damaged index with its file
            return
        for name in names[len(self._shards):]:
            self._attach(name)

    def _sweep(self) -> None:
        """Delete what killed writers left: temporary files and shards the index does not name.

        Only called under the exclusive lock: no live writer can own such a file then.
        """
        live = set(self._shards)
        for path in self.folder.iterdir():
            shard = _SHARD_FILE.fullmatch(path.name)
            # Temporary files of llmrec.utils.io start with "." and hold ".tmp".
            temporary = path.name.startswith(".") and ".tmp" in path.name
            if temporary or (shard is not None and shard.group(1) not in live):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    logger.info("embedding cache: removed %s, left by an interrupted run", path)

    def _write_shard(self, keys: list[str], vectors: np.ndarray) -> None:
        name = f"shard-{uuid.uuid4().hex[:12]}"
        with atomic_path(self.folder / f"{name}.npy") as tmp:
            np.save(tmp, vectors)
        with atomic_write(self.folder / f"{name}.keys") as handle:
            handle.write("\n".join(keys) + "\n")
        shard = len(self._arrays)
        self._shards.append(name)
        self._arrays.append(vectors)
        for row, key in enumerate(keys):
            self._where.setdefault(key, (shard, row))

    def _write_index(self) -> None:
        model_file = self.folder / "model.json"
        if not model_file.exists():
            write_json(model_file, {"model_id": self.encoder.model_id, "dim": self.encoder.dim})
        write_json(self.folder / "index.json", {"shards": self._shards})

    @contextlib.contextmanager
    def _lock(self) -> Iterator[bool]:
        """Hold the folder's writer lock; yields whether it is a real exclusive lock."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; single-writer use is still safe
            yield False
            return
        with open(self.folder / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _slug(model_id: str) -> str:
    """A folder name for ``model_id``: readable prefix plus a hash, so distinct ids never collide."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id.split("@")[0]).strip("-.")[-60:] or "model"
    return f"{readable}-{hashlib.sha256(model_id.encode()).hexdigest()[:16]}"


def embed_with_cache(
    encoder: Encoder,
    ids: Sequence[str],
    texts: Sequence[str],
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    batch_size: int = 64,
    show_progress: bool = True,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> tuple[np.ndarray, dict[str, int]]:
    """Embed ``texts`` through an ``EmbeddingCache`` in ``cache_dir`` (or directly when it is None).

    Returns the vectors and ``{"hits", "misses", "encoded"}`` for this call. With a cache, new
    texts are stored every ``shard_size`` texts, so an interrupted call resumes where it stopped.
    """
    if cache_dir is None:
        vectors = encoder.encode(list(texts), batch_size=batch_size, show_progress=show_progress)
        return np.ascontiguousarray(vectors, dtype=np.float32), {"hits": 0, "misses": len(texts),
                                                                 "encoded": len(texts)}
    cache = EmbeddingCache(cache_dir, encoder, batch_size=batch_size, show_progress=show_progress,
                           shard_size=shard_size)
    vectors = cache.embed(ids, texts)
    return vectors, {"hits": cache.hits, "misses": cache.misses, "encoded": cache.encoded}
