"""Module weights as safetensors beside a JSON description, written atomically (for the small
PyTorch models that are not ``PreTrainedModel``s: DIEN, the two-tower model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from llmrec.utils.io import atomic_path, write_json

WEIGHTS_NAME = "model.safetensors"


def save_module(module: nn.Module, folder: str | Path, meta_name: str, meta: dict[str, Any]) -> Path:
    """Write ``module``'s state dict to ``folder/model.safetensors`` and ``meta`` to ``folder/meta_name``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    write_json(folder / meta_name, meta)
    return folder


def read_meta(folder: str | Path, meta_name: str) -> dict[str, Any]:
    path = Path(folder) / meta_name
    if not path.is_file():
        raise FileNotFoundError(f"no saved model in {folder}: {meta_name} is missing")
    return json.loads(path.read_text())


def load_weights(module: nn.Module, folder: str | Path, map_location: str = "cpu") -> nn.Module:
    """Load ``folder/model.safetensors`` into ``module`` (strict: every tensor must match)."""
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(Path(folder) / WEIGHTS_NAME), device=map_location))
    return module.eval()
