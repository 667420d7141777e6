"""Content-embedding generation (CEG): a frozen language model reads each item's text and
mean-pools its token hidden states into content embeddings (LEARN, section 3.1).

Any Hugging Face encoder or decoder works: the hidden states of one selectable layer are averaged
over the text's real tokens (attention-masked, so padding never counts). Besides the plain mean we
keep the means of ``segments`` contiguous pieces of the text plus their token counts; the
token-weighted mean of the segments *is* the plain mean, and the attention item tower reads the
segments as a short sequence (a few "content tokens" per item instead of every token state, which
would cost ``max_text_tokens`` times the disk).

Texts are sorted by token length before batching, so a batch holds similar lengths and little
padding. Results are cached on disk keyed by (model fingerprint, layer, max_text_tokens, segments, text
hash) in chunks that are each written atomically: an interrupted run resumes where it stopped, and
a changed text or a different model never reuses a stale vector.

Why not ``llmrec.embed``'s cache: that stores one vector per text; CEG stores ``segments`` vectors
plus token counts per text and is keyed by a layer as well.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from llmrec.learn.config import CEGConfig
from llmrec.utils.devices import resolve_device
from llmrec.utils.io import atomic_path
from llmrec.utils.paths import cache_root

log = logging.getLogger(__name__)

PACKAGED_ENCODER = "minilm"


@dataclass
class ContentEmbeddings:
    """CEG output for a set of items, row ``i`` belonging to ``item_ids[i]``."""

    item_ids: list[str]
    segments: np.ndarray
    """(n_items, n_segments, dim) float32: mean hidden state of each contiguous token segment."""
    counts: np.ndarray
    """(n_items, n_segments) int32: real tokens in each segment (0 for a segment a short text lacks)."""
    model_key: str = ""
    stats: dict = field(default_factory=dict)
    """How the embeddings were obtained: computed / cached counts, seconds, items per second."""

    def __post_init__(self) -> None:
        if self.segments.ndim != 3 or self.counts.shape != self.segments.shape[:2]:
            raise ValueError(f"segments {self.segments.shape} and counts {self.counts.shape} do not align")
        if len(self.item_ids) != len(self.segments):
            raise ValueError(f"{len(self.item_ids)} item ids for {len(self.segments)} rows")
        self._index = {item: i for i, item in enumerate(self.item_ids)}

    @property
    def dim(self) -> int:
        return int(self.segments.shape[2])

    @property
    def n_segments(self) -> int:
        return int(self.segments.shape[1])

    def pooled(self) -> np.ndarray:
        """(n_items, dim): the plain attention-masked mean over every token of each text."""
        weights = self.counts.astype(np.float32)[..., None]
        return (self.segments * weights).sum(1) / np.maximum(weights.sum(1), 1.0)

    def index(self) -> dict[str, int]:
        return self._index

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def __len__(self) -> int:
        return len(self.item_ids)


# --- loading a frozen model -----------------------------------------------------------------------

def load_frozen_model(config: CEGConfig):
    """Return ``(model, tokenizer, name)`` for ``config.text_model``: a base model (no LM head). Nothing
    is ever downloaded: 'minilm' is the packaged sentence encoder; a packaged LLM name
    (``smollm2-135m``, ``qwen2.5-0.5b``, ``gemma3-270m``) or a ``.gguf`` file goes through the LLM
    layer's converted safetensors folder; anything else must be a local model folder."""
    from transformers import AutoModel, AutoTokenizer

    name = config.text_model
    folder = resolve_model_folder(name)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=config.trust_remote_code)
    # AutoModel on a causal-LM checkpoint builds its base model (hidden states, no LM head).
    model = AutoModel.from_pretrained(folder, dtype=getattr(torch, config.dtype),
                                      trust_remote_code=config.trust_remote_code)
    return model, tokenizer, name


def resolve_model_folder(name: str) -> str:
    """The local Hugging Face folder for a CEG model name (see ``load_frozen_model``)."""
    from llmrec.llm.registry import resolve_model

    return str(resolve_model("minilm" if name == PACKAGED_ENCODER else name).local("CEG model"))


def model_fingerprint(model: torch.nn.Module, name: str) -> str:
    """A short key that changes when the architecture or any weight changes (so two random tiny
    models, or two checkpoints of one architecture, never share cache entries)."""
    digest = hashlib.sha256(name.encode())
    config = getattr(model, "config", None)
    if config is not None:
        digest.update(config.to_json_string(use_diff=False).encode())
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            flat = param.detach().reshape(-1)
            # A sum and a few sampled values: cheap even for large models, and any real change shows.
            picks = flat[:: max(1, flat.numel() // 7)][:8].float().cpu().numpy()
            digest.update(f"{param_name}:{float(flat.float().sum()):.6e}:{picks.tobytes().hex()}".encode())
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name)[-40:] or "model"
    return f"{slug}-{digest.hexdigest()[:12]}"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


# --- the generator ------------------------------------------------------------------------------

class ContentEmbeddingGenerator:
    """Frozen-model content embeddings with a resumable on-disk cache.

    ``model``/``tokenizer`` may be passed in (tests build tiny random models from a config);
    otherwise ``config.text_model`` is loaded on first use.
    """

    def __init__(self, config: CEGConfig | None = None, model=None, tokenizer=None, name: str | None = None):
        self.config = config or CEGConfig()
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither")
        self._model, self._tokenizer = model, tokenizer
        if name is None:
            name = self.config.text_model if model is None else \
                (getattr(getattr(model, "config", None), "_name_or_path", "") or "custom")
        self._name = name
        self._key: str | None = None
        self._device: torch.device | None = None

    def load(self) -> ContentEmbeddingGenerator:
        """Load the frozen model now (otherwise it loads on first use), e.g. before timing ``encode``."""
        self._ensure_model()
        return self

    # Loaded on first use; the cache key needs the weights' fingerprint, so even a full cache hit
    # loads the model once (under a second for the packaged models once the LLM layer cached them).
    def _ensure_model(self) -> None:
        if self._model is None:
            t0 = time.perf_counter()
            self._model, self._tokenizer, self._name = load_frozen_model(self.config)
            log.info("CEG: loaded %s in %.1f s", self._name, time.perf_counter() - t0)
        self._model.eval().requires_grad_(False)
        if self._device is None:
            self._device = resolve_device(self.config.device)
            self._model.to(self._device)
        tok = self._tokenizer
        if tok.pad_token_id is None:  # decoders often have none; padded positions are masked anyway
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        tok.padding_side = "right"  # causal models: real tokens never attend to trailing padding

    @property
    def model_key(self) -> str:
        """Model fingerprint plus pooling settings: the cache folder's name."""
        if self._key is None:
            self._ensure_model()
            c = self.config
            self._key = f"{model_fingerprint(self._model, self._name)}/L{c.layer}-M{c.max_text_tokens}-K{c.segments}"
        return self._key

    def cache_folder(self) -> Path:
        """Where this model's and these settings' chunks live."""
        root = cache_root() / "ceg" if self.config.cache_dir == "auto" else Path(self.config.cache_dir).expanduser()
        return root / self.model_key

    # --- without the cache -------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, texts: Sequence[str], progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Segment means ``(n, segments, dim)`` and token counts ``(n, segments)`` of ``texts``,
        in input order, batched by token length."""
        self._ensure_model()
        if len(texts) == 0:
            dim = self._model.config.hidden_size
            return np.zeros((0, self.config.segments, dim), np.float32), np.zeros((0, self.config.segments), np.int32)
        texts = [t if t.strip() else "(no text)" for t in texts]  # an empty text would have no tokens
        encoded = self._tokenizer(list(texts), truncation=True, max_length=self.config.max_text_tokens,
                                  add_special_tokens=True)["input_ids"]
        order = np.argsort([-len(ids) for ids in encoded], kind="stable")  # longest first: OOM shows early
        segments: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
        counts: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
        bar = tqdm(total=len(texts), desc="CEG", unit="item", disable=not progress, leave=False)
        for start in range(0, len(order), self.config.encode_batch_size):
            rows = order[start:start + self.config.encode_batch_size]
            batch = self._tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors="pt")
            seg, cnt = self._pool(batch["input_ids"].to(self._device), batch["attention_mask"].to(self._device))
            for j, i in enumerate(rows):
                segments[i], counts[i] = seg[j], cnt[j]
            bar.update(len(rows))
        bar.close()
        return np.stack(segments).astype(np.float32), np.stack(counts).astype(np.int32)

    def _pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        out = self._model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden_states = out.hidden_states
        layer = self.config.layer
        if not -len(hidden_states) <= layer < len(hidden_states):
            raise ValueError(f"CEG layer {layer} out of range: the model has {len(hidden_states)} hidden "
                             f"states (embeddings + {len(hidden_states) - 1} blocks)")
        return segment_mean_pool(hidden_states[layer].float(), attention_mask, self.config.segments)

    # --- with the cache ------------------------------------------------------------------------
    def __call__(self, texts: Mapping[str, str], progress: bool = True) -> ContentEmbeddings:
        """Content embeddings for ``{item_id: text}``, reusing and extending the disk cache."""
        t0 = time.perf_counter()
        item_ids = list(texts)
        hashes = [text_hash(texts[i]) for i in item_ids]
        cache = _ChunkCache(self.cache_folder()) if self.config.cache_dir else None
        known = cache.load(set(hashes)) if cache else {}
        missing = list(dict.fromkeys(h for h in hashes if h not in known))
        text_of = {h: texts[i] for i, h in zip(item_ids, hashes)}
        computed_seconds = 0.0
        if missing:
            log.info("CEG: %d of %d texts to embed with %s (%d cached)", len(missing), len(set(hashes)),
                     self._name, len(set(hashes)) - len(missing))
            bar = tqdm(total=len(missing), desc=f"CEG {Path(self._name).name}", unit="item", disable=not progress)
            # Sort the missing texts by length once, so each chunk (and each batch) is length-homogeneous.
            lengths = self._token_lengths([text_of[h] for h in missing])
            missing = [missing[i] for i in np.argsort(lengths, kind="stable")[::-1]]
            for start in range(0, len(missing), self.config.chunk_size):
                chunk = missing[start:start + self.config.chunk_size]
                c0 = time.perf_counter()
                seg, cnt = self.encode([text_of[h] for h in chunk])
                computed_seconds += time.perf_counter() - c0
                if cache:
                    cache.write(chunk, seg, cnt)
                known.update({h: (seg[j], cnt[j]) for j, h in enumerate(chunk)})
                bar.update(len(chunk))
            bar.close()
        if not hashes:
            segments, counts = self.encode([])
        else:
            segments = np.stack([known[h][0] for h in hashes]).astype(np.float32)
            counts = np.stack([known[h][1] for h in hashes]).astype(np.int32)
        stats = {"items": len(item_ids), "computed": len(missing), "cached": len(set(hashes)) - len(missing),
                 "seconds": time.perf_counter() - t0, "compute_seconds": computed_seconds,
                 "items_per_second": len(missing) / computed_seconds if computed_seconds else None}
        return ContentEmbeddings(item_ids, segments, counts, model_key=self.model_key, stats=stats)

    def _token_lengths(self, texts: list[str]) -> list[int]:
        ids = self._tokenizer(texts, truncation=True, max_length=self.config.max_text_tokens)["input_ids"]
        return [len(x) for x in ids]


def segment_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor, n_segments: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``hidden`` (B, T, D) over each of ``n_segments`` contiguous pieces of every row's real
    tokens. Returns segment means (B, K, D) and token counts (B, K).

    Token ``t`` of a text with ``n`` real tokens goes to segment ``floor(t * K / n)``, so segments
    differ in size by at most one token; a text shorter than ``K`` leaves some segments empty.
    """
    mask = attention_mask.to(hidden.dtype)
    n_real = mask.sum(1, keepdim=True).clamp(min=1)
    # Real tokens are contiguous from the left for right padding; the cumulative count makes this
    # correct for left padding too.
    position = (mask.cumsum(1) - 1).clamp(min=0)
    segment = torch.div(position * n_segments, n_real, rounding_mode="floor").long().clamp(max=n_segments - 1)
    onehot = torch.nn.functional.one_hot(segment, n_segments).to(hidden.dtype) * mask[..., None]
    sums = torch.einsum("btd,btk->bkd", hidden, onehot)
    counts = onehot.sum(1)
    means = sums / counts.clamp(min=1)[..., None]
    return means.cpu().numpy(), counts.round().long().cpu().numpy()


class _ChunkCache:
    """Chunks of cached segment means, one safetensors file each, named by the hash of their texts.

    A chunk is written through a temporary file and renamed, so a crash never leaves a half file;
    a later run loads whatever chunks exist and computes only what is missing.
    """

    def __init__(self, folder: Path):
        self.folder = folder

    def load(self, wanted: set[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        from safetensors import safe_open

        found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("chunk-*.safetensors")):
            try:
                with safe_open(str(path), framework="np") as f:
                    hashes = json.loads(f.metadata()["hashes"])
                    rows = [j for j, h in enumerate(hashes) if h in wanted and h not in found]
                    if not rows:
                        continue
                    seg, cnt = f.get_tensor("segments"), f.get_tensor("counts")
                # A chunk whose arrays do not hold one row per listed hash (a hand-edited or foreign
                # file) would hand out another text's vector, or fail with an IndexError.
                if seg.ndim != 3 or cnt.shape != seg.shape[:2] or len(seg) != len(hashes):
                    raise ValueError(f"{len(hashes)} hashes for segments {seg.shape} and counts {cnt.shape}")
            except Exception as err:  # a foreign or damaged file: recompute rather than trust it
                log.warning("CEG cache: ignoring unreadable %s (%s)", path, err)
                continue
            for j in rows:
                found[hashes[j]] = (seg[j], cnt[j])
        return found

    def write(self, hashes: list[str], segments: np.ndarray, counts: np.ndarray) -> Path:
        from safetensors.numpy import save_file

        name = hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]
        path = self.folder / f"chunk-{name}.safetensors"
        with atomic_path(path) as tmp:
            save_file({"segments": np.ascontiguousarray(segments, dtype=np.float32),
                       "counts": np.ascontiguousarray(counts, dtype=np.int32)},
                      str(tmp), metadata={"hashes": json.dumps(hashes)})
        return path
